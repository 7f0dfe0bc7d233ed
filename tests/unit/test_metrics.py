"""The Prometheus rendering of the agent's status."""

import socket
import urllib.request

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from tetra.export.metrics import SnapshotCollector, parse_address, serve
from tetra.status.model import (AgentStatus, ExporterStatus, HookStatus, KernelCount, LatencyHistogram,
                                PolicyLoadState, PolicyStatus, StreamStatus)


def _status() -> AgentStatus:
    latency = LatencyHistogram()
    latency.observe(0.0002)
    latency.observe(3.0)
    hook = HookStatus("__x64_sys_openat", "kprobe", "kprobe", False, seen=10, posted=3)
    return AgentStatus(
        node_name="n", uptime_seconds=1.0, sensors=(),
        policies=(PolicyStatus(1, "p", "file", PolicyLoadState.ENABLED, "enforce", (hook,)),
                  PolicyStatus(2, "q", "file", PolicyLoadState.LOAD_ERROR, "enforce")),
        events={"process_exec": 7}, rates={}, pipeline={"decode_errors": 1, "sink_errors": 0},
        kernel=(KernelCount("exec", 7, 2),), ringbuf_received=5, cache_size=5, cache_capacity=100,
        cache_evictions=1,
        exporters=(ExporterStatus("json", "/x", "ok", {"bytes_written": 99, "write_errors": 3, "lines_dropped": 5,
                                                        "bytes_dropped": 250, "reopens": 2, "dropped_queue_full": 4},
                                  lines=True),
                   ExporterStatus("export-filters", "json", "ok", {"filtered_out": 6, "rate_limited": 2,
                                                                   "cel_errors": 3})),
        streams=StreamStatus(dropped=4, cel_errors=8),
        actions={("p", "enforce", "KPROBE_ACTION_SIGKILL"): 2, ("p", "monitor", "KPROBE_ACTION_SIGKILL"): 5},
        latency=(tuple(latency.counts), latency.total),
        user_actions={("GetUrl", "done"): 3, ("GetUrl", "rate_limited"): 4, ("DnsLookup", "failed"): 1},
    )


def render(status: AgentStatus) -> str:
    collector = SnapshotCollector()
    collector.update(status)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


def test_every_loss_and_count_is_a_metric() -> None:
    text = render(_status())
    for line in (
        'tetra_policy_hook_calls_total{hook="__x64_sys_openat",policy="p"} 10.0',
        'tetra_observer_ringbuf_events_total{op="exec"} 7.0',
        'tetra_events_dropped_total{stage="decode"} 1.0',
        'tetra_events_dropped_total{stage="subscriber_queue"} 4.0',
        'tetra_events_dropped_total{stage="export_filter"} 6.0',
        'tetra_events_dropped_total{stage="export_rate_limit"} 2.0',
        'tetra_events_dropped_total{stage="json_queue"} 4.0',
        'tetra_export_bytes_total{exporter="json"} 99.0',
        'tetra_events_dropped_total{stage="export_file"} 5.0',
        'tetra_export_errors_total{exporter="json"} 3.0',
        'tetra_export_dropped_bytes_total{exporter="json"} 250.0',
        'tetra_export_reopens_total{exporter="json"} 2.0',
        'tetra_policy_actions_total{action="KPROBE_ACTION_SIGKILL",mode="enforce",policy="p"} 2.0',
        'tetra_policy_actions_total{action="KPROBE_ACTION_SIGKILL",mode="monitor",policy="p"} 5.0',
        'tetra_event_handling_latency_seconds_bucket{le="0.0005"} 1.0',
        'tetra_event_handling_latency_seconds_bucket{le="+Inf"} 2.0',
        "tetra_event_handling_latency_seconds_count 2.0",
        'tetra_filter_cel_errors_total{filter="export"} 3.0',
        'tetra_filter_cel_errors_total{filter="stream"} 8.0',
        'tetra_user_actions_total{action="GetUrl",outcome="done"} 3.0',
        'tetra_user_actions_total{action="GetUrl",outcome="rate_limited"} 4.0',
        'tetra_user_actions_total{action="DnsLookup",outcome="failed"} 1.0',
    ):
        assert line in text, line


def test_tetragons_names_and_labels_where_tetragon_has_the_number() -> None:
    """Tetragon's dashboards and alerts query these: its names, its label names and values."""
    text = render(_status())
    for line in (
        'tetragon_events_total{type="PROCESS_EXEC"} 7.0',
        'tetragon_policy_events_total{hook="__x64_sys_openat",policy="p"} 3.0',
        'tetragon_tracingpolicy_loaded{state="enabled"} 1.0',
        'tetragon_tracingpolicy_loaded{state="load_error"} 1.0',
        'tetragon_tracingpolicy_loaded{state="disabled"} 0.0',
        'tetragon_bpf_missed_events_total{error="ENOSPC",msg_op="exec"} 2.0',
        "tetragon_observer_ringbuf_events_received_total 5.0",
        "tetragon_notify_overflowed_events_total 4.0",
        "tetragon_export_ratelimit_events_dropped_total 2.0",
        "tetragon_process_cache_size 5.0",
        "tetragon_process_cache_capacity 100.0",
        "tetragon_process_cache_evictions_total 1.0",
    ):
        assert line in text, line
    assert "tetra_events_total" not in text and "tetra_process_cache" not in text  # one name per number


def test_the_endpoint_has_the_agents_cpu_and_memory() -> None:
    collector = SnapshotCollector()
    collector.update(_status())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = serve(f"127.0.0.1:{port}", collector)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    scraped = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if " " in line
               and not line.startswith("#")}
    assert scraped["process_resident_memory_bytes"] > 1 << 20
    assert scraped["process_cpu_seconds_total"] > 0
    assert scraped['tetragon_events_total{type="PROCESS_EXEC"}'] == 7


def test_no_api_server_no_stream_drops() -> None:
    status = _status()
    text = render(AgentStatus(**{**status.__dict__, "streams": None}))
    assert 'tetra_events_dropped_total{stage="subscriber_queue"} 0.0' in text


def test_nothing_before_the_first_status() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector())
    assert b"tetra" not in generate_latest(registry)


def test_addresses() -> None:
    assert parse_address(":2112") == ("0.0.0.0", 2112)
    assert parse_address("localhost:9090") == ("localhost", 9090)
    assert parse_address("[::1]:9090") == ("::1", 9090)
