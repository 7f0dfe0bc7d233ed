"""Prometheus metrics (``--metrics-server``), from the agent's status (tetra/status/model.py).

The agent thread takes its status every tick (the same numbers `tetra
status` shows: BPF maps may only be read there) and hands it to
``SnapshotCollector.update``; the HTTP server's thread renders the latest
status when scraped. So a scrape never touches the kernel or blocks the
agent, and metrics and status can never disagree.

Where Tetragon has a metric for the same number, it has Tetragon's name and
labels, so that its dashboards and alerts work unchanged; the others have
the ``tetra_`` prefix. Every place an event can be lost has its counter:

==================================================  ===========================================
metric                                              what
==================================================  ===========================================
tetragon_events_total{type}                         events sent to the exporters; type as
                                                    Tetragon's: PROCESS_EXEC, PROCESS_KPROBE, ...
tetragon_policy_events_total{policy,hook}           events each policy hook posted
tetragon_tracingpolicy_loaded{state}                policies by state: enabled, disabled,
                                                    loading, load_error
tetragon_bpf_missed_events_total{msg_op,error}      records the kernel ring buffer had no room
                                                    for; msg_op is tetra's opcode name (exec,
                                                    generic, ...), error always ENOSPC
tetragon_observer_ringbuf_events_received_total     records read from the ring buffer
tetragon_notify_overflowed_events_total             events dropped at full subscriber queues
tetragon_export_ratelimit_events_dropped_total      events the export rate limit dropped
tetragon_process_cache_size / _capacity             process cache entries
tetragon_process_cache_evictions_total              entries evicted because the cache was full
process_cpu_seconds_total, process_resident_...     the agent's CPU and memory (prometheus_client)
tetra_policy_hook_calls_total{policy,hook}          calls each hook saw in the kernel
tetra_observer_ringbuf_events_total{op}             records handed to the ring buffer
tetra_events_dropped_total{stage}                   every drop after the kernel, by stage: decode,
                                                    subscriber queue, export filter, export rate
                                                    limit, sinks, each exporter's queue
                                                    (json_queue, otlp_queue, ...): the two
                                                    tetragon_ drop counters above are in it too
tetra_export_bytes_total{exporter}                  bytes written by an exporter
tetra_export_errors_total{exporter}                 write errors of an exporter
tetra_export_dropped_bytes_total{exporter}          bytes of the lines an exporter dropped (full disk)
tetra_export_reopens_total{exporter}                export file reopened (SIGHUP, moved or deleted)
tetra_policy_actions_total{policy,mode,action}      policy events by action (KPROBE_ACTION_POST,
                                                    _SIGKILL, ...); mode monitor when the policy's
                                                    monitoring mode withheld the action, else
                                                    enforce (Tetragon has no such metric)
tetra_event_handling_latency_seconds                kernel timestamp -> hand-off to the exporters
tetra_filter_cel_errors_total{filter}               CEL expressions that failed on an event (a
                                                    non-match): filter is export (the agent's
                                                    allow/deny lists) or stream (GetEvents filters)
tetra_cgroup_rate_throttled_events_total            process events the kernel dropped while their
                                                    cgroup was over --cgroup-rate
tetra_cgroup_rate_throttled_cgroups                 cgroups throttled now (--cgroup-rate)
tetra_user_actions_total{action,outcome}            GetUrl / DnsLookup requests of policies: done,
                                                    failed, or not made (rate_limited,
                                                    dropped_queue_full, dropped_at_close);
                                                    Tetragon has no such metric
==================================================  ===========================================
"""

import logging
import threading
from collections.abc import Iterator

from prometheus_client import ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from tetra.errors import ExportError
from tetra.status.model import HANDOFF_DROPS, LATENCY_BUCKETS, AgentStatus, ExporterStatus, PolicyLoadState

log = logging.getLogger(__name__)

# pipeline counters that are drops, with their stage label
_PIPELINE_DROPS = {"decode_errors": "decode", "sink_errors": "sink", "process_unknown": "process_unknown",
                   "policy_unknown": "policy_unknown"}
# exporter counters that are drops, with their stage label
_EXPORTER_DROPS = {"filtered_out": "export_filter", "rate_limited": "export_rate_limit",
                   "lines_dropped": "export_file", "dropped_send_failed": "otlp_send"}
# the drops of each exporter's hand-off queue (tetra/export/handoff.py): stage "<exporter>_<suffix>",
# e.g. otlp_queue, json_queue (the export file), stdout_close
_HANDOFF_SUFFIX = {"dropped_queue_full": "queue", "dropped_at_close": "close", "dropped_writer_error": "writer"}
assert set(_HANDOFF_SUFFIX) == set(HANDOFF_DROPS)


class SnapshotCollector(Collector):
    """Prometheus metrics rendered from the latest status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: AgentStatus | None = None

    def update(self, status: AgentStatus) -> None:
        """The latest status (frozen: the scraper's thread reads it as it is)."""
        with self._lock:
            self._status = status

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            status = self._status
        if status is None:
            return
        by_action = CounterMetricFamily("tetra_policy_actions", "Policy events by policy, mode and action.",
                                        labels=["policy", "mode", "action"])
        for key, count in sorted(status.actions.items()):
            by_action.add_metric(list(key), count)
        yield by_action
        counts, total = status.latency
        if counts:
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            yield HistogramMetricFamily("tetra_event_handling_latency_seconds",
                                        "From the kernel's timestamp to the hand-off to the exporters.",
                                        buckets=buckets, sum_value=total)
        yield from self._events(status)
        yield from self._policies(status)
        yield from self._losses(status)
        yield from self._cache(status)
        yield from self._exporters(status)

    def _events(self, status: AgentStatus) -> Iterator[Metric]:
        events = CounterMetricFamily("tetragon_events", "Events sent to the exporters, by type.", labels=["type"])
        for kind, count in sorted(status.events.items()):
            events.add_metric([kind.upper()], count)  # process_exec -> PROCESS_EXEC, as Tetragon's label
        yield events

    def _policies(self, status: AgentStatus) -> Iterator[Metric]:
        posted = CounterMetricFamily("tetragon_policy_events", "Events posted by each policy hook.",
                                     labels=["policy", "hook"])
        calls = CounterMetricFamily("tetra_policy_hook_calls", "Calls each policy hook saw in the kernel.",
                                    labels=["policy", "hook"])
        states = dict.fromkeys(PolicyLoadState, 0)  # every state, zeros included, as Tetragon's
        for policy in status.policies:
            states[policy.state] += 1
            for hook in policy.hooks:
                posted.add_metric([policy.name, hook.hook], hook.posted or 0)
                calls.add_metric([policy.name, hook.hook], hook.seen or 0)
        by_state = GaugeMetricFamily("tetragon_tracingpolicy_loaded", "Tracing policies by state.", labels=["state"])
        for state, count in states.items():
            by_state.add_metric([state.value], count)
        yield from (posted, calls, by_state)

    def _losses(self, status: AgentStatus) -> Iterator[Metric]:
        lost = CounterMetricFamily("tetragon_bpf_missed_events",
                                   "Records the kernel ring buffer had no room for.", labels=["msg_op", "error"])
        sent = CounterMetricFamily("tetra_observer_ringbuf_events", "Records handed to the kernel ring buffer.",
                                   labels=["op"])
        for entry in status.kernel:
            lost.add_metric([entry.opcode, "ENOSPC"], entry.lost)  # a ring buffer reservation that failed
            sent.add_metric([entry.opcode], entry.sent)
        received = CounterMetricFamily("tetragon_observer_ringbuf_events_received",
                                       "Records read from the ring buffer.", value=status.ringbuf_received)
        dropped = CounterMetricFamily("tetra_events_dropped", "Events dropped after the kernel, by stage.",
                                      labels=["stage"])
        for key, stage in _PIPELINE_DROPS.items():
            dropped.add_metric([stage], status.pipeline.get(key, 0))
        streams = status.streams
        overflowed = streams.dropped if streams else 0
        dropped.add_metric(["subscriber_queue"], overflowed)
        dropped.add_metric(["grpc_convert"], streams.convert_errors if streams else 0)
        by_stage: dict[str, int] = {}
        for exporter in status.exporters:
            for stage, count in _exporter_drops(exporter):
                by_stage[stage] = by_stage.get(stage, 0) + count
        for stage, count in by_stage.items():
            dropped.add_metric([stage], count)
        notify = CounterMetricFamily("tetragon_notify_overflowed_events",
                                     "Events dropped because a subscriber's queue was full.", value=overflowed)
        rate_limited = CounterMetricFamily("tetragon_export_ratelimit_events_dropped",
                                           "Events the export rate limit dropped.",
                                           value=by_stage.get(_EXPORTER_DROPS["rate_limited"], 0))
        cel = CounterMetricFamily("tetra_filter_cel_errors", "CEL filter expressions that failed on an event "
                                  "(counted as not matching).", labels=["filter"])
        cel.add_metric(["export"], sum(e.counters.get("cel_errors", 0) for e in status.exporters
                                       if e.name == "export-filters"))
        cel.add_metric(["stream"], streams.cel_errors if streams else 0)
        throttled = CounterMetricFamily("tetra_cgroup_rate_throttled_events",
                                        "Process events the kernel dropped while their cgroup was over --cgroup-rate.",
                                        value=status.kernel_throttled)
        cgroups = GaugeMetricFamily("tetra_cgroup_rate_throttled_cgroups", "Cgroups throttled now (--cgroup-rate).",
                                    value=status.throttled_cgroups)
        user = CounterMetricFamily("tetra_user_actions", "GetUrl / DnsLookup requests the agent made for policies, "
                                   "by outcome (rate_limited and dropped_* were not made).",
                                   labels=["action", "outcome"])
        for (word, outcome), count in sorted(status.user_actions.items()):
            user.add_metric([word, outcome], count)
        yield from (lost, received, sent, dropped, notify, rate_limited, cel, throttled, cgroups, user)

    def _cache(self, status: AgentStatus) -> Iterator[Metric]:
        yield GaugeMetricFamily("tetragon_process_cache_size", "Processes in the cache.", value=status.cache_size)
        yield GaugeMetricFamily("tetragon_process_cache_capacity", "Most processes the cache keeps.",
                                value=status.cache_capacity)
        yield CounterMetricFamily("tetragon_process_cache_evictions", "Processes evicted because the cache was full.",
                                  value=status.cache_evictions)

    def _exporters(self, status: AgentStatus) -> Iterator[Metric]:
        written = CounterMetricFamily("tetra_export_bytes", "Bytes written by an exporter.", labels=["exporter"])
        errors = CounterMetricFamily("tetra_export_errors", "Write errors of an exporter.", labels=["exporter"])
        dropped = CounterMetricFamily("tetra_export_dropped_bytes", "Bytes of the lines an exporter dropped.",
                                      labels=["exporter"])
        reopens = CounterMetricFamily("tetra_export_reopens", "Export file reopened (SIGHUP, moved or deleted).",
                                      labels=["exporter"])
        for exporter in status.exporters:
            counters, name = exporter.counters, exporter.name
            if "bytes_written" in counters:
                written.add_metric([name], counters["bytes_written"])
            if "write_errors" in counters or "send_errors" in counters:
                errors.add_metric([name], counters.get("write_errors", 0) + counters.get("send_errors", 0))
            if "bytes_dropped" in counters:
                dropped.add_metric([name], counters["bytes_dropped"])
            if "reopens" in counters:
                reopens.add_metric([name], counters["reopens"])
        yield from (written, errors, dropped, reopens)


def _exporter_drops(exporter: ExporterStatus) -> Iterator[tuple[str, int]]:
    """(stage, count) of each drop counter one exporter reports in the status."""
    name = exporter.name
    for key, value in exporter.counters.items():
        if key in _HANDOFF_SUFFIX:
            yield f"{name}_{_HANDOFF_SUFFIX[key]}", value
        elif key == "lines_dropped" and name != "json":
            yield f"{name}_write", value  # stdout: its writes failed
        elif key in _EXPORTER_DROPS:
            yield _EXPORTER_DROPS[key], value


def parse_address(address: str, flag: str = "--metrics-server") -> tuple[str, int]:
    """":2112" (all interfaces, as Tetragon's flag), "localhost:2112" or "[::1]:2112"."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ExportError(f"{flag} {address!r}: expected [host]:port, e.g. :2112 or localhost:2112")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(address: str, collector: SnapshotCollector) -> object:
    """Start the HTTP endpoint in a daemon thread; returns the server (shut down at exit)."""
    host, port = parse_address(address)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)  # the agent's CPU, memory and fds: process_cpu_seconds_total, ...
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as err:
        raise ExportError(f"--metrics-server {address}: {err.strerror}") from err
    log.info("metrics serving at http://%s:%d/metrics", f"[{host}]" if ":" in host else host, port)
    return server
