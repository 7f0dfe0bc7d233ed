"""--cgroup-rate: which cgroups the kernel throttles, told as Tetragon's process_throttle events.

::

    kernel (probes/lib/cgroup_rate.h)                 agent
    a CPU starts throttling ──throttle record──> Throttles.started ──> THROTTLE_START, once per throttle
    per-CPU counts (tetra_cgroup_rate) ──every tick──> Throttles.check ─┬─> THROTTLE_STOP once no CPU
                                                                        │   throttles the cgroup
                                                                        ├─> cgroups quiet for a minute:
                                                                        │   forgotten (their drops kept)
                                                                        └─> dropped: the status's total

As Tetragon's (pkg/cgrouprate): the kernel decides alone, per CPU, which
events go out, so a storm never reaches the ring buffer; the agent only tells.
A START goes out when the first CPU starts throttling a cgroup the agent does
not hold as throttled (the throttle records of the other CPUs are the same
news); a STOP when, on a tick, every CPU's count says its next event would go
out again (``throttling`` mirrors the kernel's test), so it comes at most a
tick after the kernel let events through again. The agent never writes the
counts, so no drop the kernel counted can be lost; the totals are the counts
of the map plus those of the cgroups forgotten. (A dropped exec's throttle
record also retires the image the process cache held for its pid:
agent/pipeline.py.)
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tetra.decode.process import ThrottleRecord
from tetra.export.event import Event
from tetra.node import BootClock
from tetra.wire.events import PROCESS_THROTTLE

MIN_INTERVAL_NS = 1_000_000  # the kernel computes in microseconds: 1 ms is the shortest interval
MAX_INTERVAL_NS = 3600 * 10**9  # keeps the kernel's products of counts and microseconds in 64 bits
FORGET_NS = 60 * 10**9  # a cgroup without events this long (and not throttled) leaves the map


@dataclass(frozen=True)
class CgroupRate:
    """At most ``events`` process events per ``interval_ns`` from one cgroup (per CPU, as Tetragon's)."""

    events: int
    interval_ns: int

    def __post_init__(self) -> None:
        if self.events < 1:
            raise ValueError(f"{self.events} events: the limit must be at least 1 (leave the flag out to disable)")
        if not MIN_INTERVAL_NS <= self.interval_ns <= MAX_INTERVAL_NS:
            raise ValueError("the interval must be between 1ms and 1h")

    def defines(self) -> dict[str, int | str | None]:
        """The -D defines that compile the rate check into the process probes."""
        return {"TETRA_CGROUP_RATE": None, "TETRA_CGROUP_RATE_EVENTS": self.events,
                "TETRA_CGROUP_RATE_INTERVAL_NS": self.interval_ns}


@dataclass(frozen=True)
class RateSlot:
    """One CPU's count of one cgroup: struct tetra_cgroup_rate."""

    window: int
    curr: int
    prev: int
    throttled: int
    dropped: int


def current_rate(slot: RateSlot, rate: CgroupRate, now: int) -> int:
    """The slot's rate at ktime ``now``, as the kernel computes it, before counting an event."""
    interval = rate.interval_ns
    since = now - slot.window
    if since >= 2 * interval:
        return 0
    window, curr, prev = slot.window, slot.curr, slot.prev
    if since >= interval:
        window, curr, prev = window + interval, 0, curr
    slide_us = (interval - (now - window)) // 1000
    return prev * slide_us // (interval // 1000) + curr


def throttling(slot: RateSlot, rate: CgroupRate, now: int) -> bool:
    """Whether the kernel would drop the slot's next event at ``now`` (cgroup_rate.h's test)."""
    if not slot.throttled:
        return False
    return now - slot.throttled < rate.interval_ns or current_rate(slot, rate, now) + 1 > rate.events


def throttle_event(kind: str, cgroup: str, node: str, time: str) -> Event:
    """Tetragon's process_throttle event; protojson leaves an empty cgroup name out."""
    body = {"type": kind, "cgroup": cgroup} if cgroup else {"type": kind}
    return Event({PROCESS_THROTTLE.key: body, "node_name": node, "time": time})


class Throttles:
    """The cgroups a START went out for and no STOP yet, and the kernel's drop counts."""

    def __init__(self, node: str, clock: BootClock) -> None:
        self.node = node
        self.clock = clock
        self.throttled: dict[int, str] = {}  # cgroup id -> leaf name
        self.dropped = 0  # events the kernel dropped, as of the last check
        self._forgotten = 0  # the drops of cgroups the map no longer holds

    def started(self, rec: ThrottleRecord) -> Event | None:
        """A CPU began throttling: THROTTLE_START, unless the cgroup is throttled already."""
        if rec.cgroup_id in self.throttled:
            return None
        self.throttled[rec.cgroup_id] = rec.cgroup_name
        return throttle_event("THROTTLE_START", rec.cgroup_name, self.node, self.clock.rfc3339(rec.ktime))

    def check(self, counts: Mapping[int, Sequence[RateSlot]], rate: CgroupRate, now: int) -> tuple[list[Event],
                                                                                                      list[int]]:
        """The kernel's counts (cgroup id -> its CPUs' slots) at ktime ``now``: the STOP events, and the
        cgroups to remove from the map (quiet for FORGET_NS; their drops stay in the total)."""
        stops: list[Event] = []
        time = self.clock.rfc3339(now)
        for cgroup_id in list(self.throttled):
            if not any(throttling(slot, rate, now) for slot in counts.get(cgroup_id, ())):
                stops.append(throttle_event("THROTTLE_STOP", self.throttled.pop(cgroup_id), self.node, time))
        forget = [cgroup_id for cgroup_id, slots in counts.items()
                  if cgroup_id not in self.throttled and _quiet(slots, rate, now)]
        gone = _dropped(counts[cgroup_id] for cgroup_id in forget)
        self._forgotten += gone
        self.dropped = self._forgotten + _dropped(counts.values()) - gone
        return stops, forget


def _quiet(slots: Sequence[RateSlot], rate: CgroupRate, now: int) -> bool:
    """No event for FORGET_NS nor two intervals on any CPU: its next event passes whatever the map holds."""
    idle = max(FORGET_NS, 2 * rate.interval_ns)
    return all(now - slot.window > idle for slot in slots)


def _dropped(groups: Iterable[Sequence[RateSlot]]) -> int:
    return sum(slot.dropped for slots in groups for slot in slots)
