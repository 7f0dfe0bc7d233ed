"""The agent's state as typed values: counters are ints, policy states one vocabulary.

Built by ``Agent.status()`` on the agent thread, then read from any thread:
the dataclasses are frozen, their mappings copies, so a reader (a Prometheus
scrape) never sees a counter change under it.
"""

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

# Upper bounds (seconds) of the kernel-to-exporter latency buckets.
LATENCY_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


@dataclass
class LatencyHistogram:
    """Time from the kernel's timestamp to the hand-off to the exporters, bucketed."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bound >= seconds, else +Inf
        self.total += seconds


class PolicyLoadState(StrEnum):
    """Where a tracing policy is, in the one vocabulary of every reader: Tetragon's.

    The values are the words of Tetragon's `tetra tracingpolicy list` and of its
    ``tetragon_tracingpolicy_loaded{state}`` metric (tetra.proto's
    TracingPolicyState without ``TP_STATE_``, lower case): the exit summary, the
    log, a CRD's status, `tetra tracingpolicy list` and `tetra status` say them;
    ``api_name`` is the enum's name, which GetStatus and ``-o json`` carry."""

    LOADING = "loading"
    ENABLED = "enabled"
    DISABLED = "disabled"
    LOAD_ERROR = "load_error"

    @property
    def api_name(self) -> str:
        return f"TP_STATE_{self.name}"


@dataclass(frozen=True)
class HookStatus:
    """One hook of a policy; ``seen`` and ``posted`` are None while the policy is not in the kernel."""

    hook: str
    mechanism: str
    attach: str
    returns: bool
    seen: int | None = None
    posted: int | None = None


@dataclass(frozen=True)
class PolicyStatus:
    id: int
    name: str
    source: str
    state: PolicyLoadState
    mode: str
    hooks: tuple[HookStatus, ...] = ()
    namespace: str = ""
    error: str = ""
    scope_cgroups: int | None = None  # pod-scoped policies: the cgroups they apply to now
    load_seconds: float | None = None  # from the request to attached
    origin: str = ""  # cache | built | compiled

    def summary(self) -> dict[str, object]:
        """The exit summary's entry: only what is set, hooks with counters once loaded."""
        entry: dict[str, object] = {"id": self.id, "name": self.name, "source": self.source,
                                    "state": self.state.value, "mode": self.mode}
        if self.namespace:
            entry["namespace"] = self.namespace
        if self.error:
            entry["error"] = self.error
        if self.scope_cgroups is not None:
            entry["scope_cgroups"] = self.scope_cgroups
        if self.load_seconds is not None:
            entry["load_seconds"], entry["origin"] = round(self.load_seconds, 3), self.origin
        entry["hooks"] = [{"hook": h.hook, "mechanism": h.mechanism, "attach": h.attach, "return": h.returns,
                           **({} if h.seen is None else {"seen": h.seen, "posted": h.posted})}
                          for h in self.hooks]
        return entry


@dataclass(frozen=True)
class SensorStatus:
    """A set of programs loaded together, and the mechanism each hook attached by."""

    name: str
    hooks: Mapping[str, str]  # hook -> mechanism


@dataclass(frozen=True)
class KernelCount:
    """Records of one opcode the kernel handed to the ring buffer, and those it had no room for."""

    opcode: str
    sent: int
    lost: int


@dataclass(frozen=True)
class ExporterStatus:
    """A sink's own report: where it writes, whether that works, its counters.

    ``lines``: a line exporter (JSON file, stdout); the exit summary's export
    fields count these, as they always did."""

    name: str
    target: str
    state: str = "ok"
    counters: Mapping[str, int] = field(default_factory=dict)
    lines: bool = False


@runtime_checkable
class Reporting(Protocol):
    """A sink that reports itself in the status."""

    def state(self) -> ExporterStatus: ...


@dataclass(frozen=True)
class SubscriberStatus:
    id: int
    peer: str
    queued: int
    sent: int
    dropped: int
    cel_errors: int = 0


@dataclass(frozen=True)
class StreamStatus:
    """The gRPC event streams: drops at full queues (all subscribers ever), events that did not
    convert, the streams open now, and the CEL filter evaluations that failed (all subscribers ever)."""

    dropped: int = 0
    convert_errors: int = 0
    subscribers: tuple[SubscriberStatus, ...] = ()
    cel_errors: int = 0


class Streaming(Protocol):
    """What reports the event streams (api/broadcast.py's Broadcaster)."""

    def streams(self) -> StreamStatus: ...


# What became of a GetUrl / DnsLookup request (tetra/agent/user_actions.py); all but done and failed were not made.
USER_ACTION_OUTCOMES = ("done", "failed", "rate_limited", "dropped_queue_full", "dropped_at_close")


def user_action_table(counts: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    """(action word, outcome) counts as {word: {outcome: count}}, every outcome present (status, summary)."""
    table: dict[str, dict[str, int]] = {}
    for (word, outcome), count in sorted(counts.items()):
        table.setdefault(word, dict.fromkeys(USER_ACTION_OUTCOMES, 0))[outcome] = count
    return table


# the exporter counters that are losses: the status's exporter_errors sums them
EXPORTER_LOSSES = ("write_errors", "lines_dropped", "dropped_queue_full", "dropped_at_close", "dropped_writer_error")
# the hand-off's drop counters (tetra/export/handoff.py)
HANDOFF_DROPS = ("dropped_queue_full", "dropped_at_close", "dropped_writer_error")


@dataclass(frozen=True)
class AgentStatus:
    """Everything an operator needs to trust the event stream, at one moment."""

    node_name: str
    uptime_seconds: float
    sensors: tuple[SensorStatus, ...]
    policies: tuple[PolicyStatus, ...]
    events: Mapping[str, int]  # sent to the exporters, by type
    rates: Mapping[str, float]  # events per second by type, over the last few seconds
    pipeline: Mapping[str, int]  # every counter of the pipeline (records, decode_errors, ...)
    kernel: tuple[KernelCount, ...]
    ringbuf_received: int
    cache_size: int
    cache_capacity: int
    cache_evictions: int
    exporters: tuple[ExporterStatus, ...]
    streams: StreamStatus | None = None  # None: no API server
    # policy events by (policy, mode, action): tetra/agent/stats.py's ActionKey
    actions: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    latency: tuple[tuple[int, ...], float] = ((), 0.0)  # bucket counts (LATENCY_BUCKETS, +Inf), sum
    kernel_throttled: int = 0  # --cgroup-rate: process events the kernel dropped, their cgroup throttled
    throttled_cgroups: int = 0  # --cgroup-rate: cgroups throttled now
    # GetUrl / DnsLookup requests by (action word, outcome): USER_ACTION_OUTCOMES
    user_actions: Mapping[tuple[str, str], int] = field(default_factory=dict)

    @property
    def kernel_sent(self) -> int:
        return sum(k.sent for k in self.kernel)

    @property
    def kernel_lost(self) -> int:
        return sum(k.lost for k in self.kernel)

    @property
    def exporter_errors(self) -> int:
        """Write errors and dropped lines of every exporter."""
        return sum(count for e in self.exporters for key, count in e.counters.items() if key in EXPORTER_LOSSES)
