"""``--export-rate-limit N``: at most N exported events a minute, and a report of the rest.

Tetragon (pkg/ratelimit) uses a token bucket (golang.org/x/time/rate) holding N
tokens, full at the start and refilled at N per minute, one token per event; so
a burst of N passes at once and then one event every 60/N seconds. N = 0 lets
nothing through; a negative N (the default, -1) means no limiter at all, which
is the caller's business. Every interval (one minute, a fixed ticker from the
start) in which events were dropped yields one event::

    {"rate_limit_info": {"number_of_dropped_process_events": 42}, "node_name": "...", "time": "..."}

(the name says process events, but every type counts, as in Tetragon). Time is
passed in as monotonic seconds, so tests drive the clock; the report's ``time``
comes from ``stamp`` (wall clock, RFC 3339 with nanoseconds, as events have).
"""

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from tetra.wire.events import RATE_LIMIT_INFO

INTERVAL = 60.0


def utc_now() -> str:
    """The wall clock as Tetragon writes times: ``2026-11-26T10:00:00.123456789Z``."""
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


class RateLimiter:
    """A token bucket of ``per_minute`` events, started at monotonic time ``now``."""

    def __init__(self, per_minute: int, node_name: str, now: float, stamp: Callable[[], str] = utc_now) -> None:
        if per_minute < 0:
            raise ValueError(f"events per minute must be 0 or more, got {per_minute}")
        self.capacity = float(per_minute)
        self.rate = per_minute / INTERVAL
        self.node_name = node_name
        self.stamp = stamp
        self.tokens = self.capacity
        self.last = now
        self.next_report = now + INTERVAL
        self.pending = 0  # dropped since the last report
        self.dropped = 0  # dropped in all, for metrics

    def admit(self, now: float) -> bool:
        """Take a token if there is one; count a drop otherwise."""
        if now > self.last:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.pending += 1
        self.dropped += 1
        return False

    def report(self, now: float) -> dict[str, Any] | None:
        """A rate_limit_info event when an interval has ended with drops in it; else None.

        Ticks missed by a late caller are skipped, as a Go ticker skips them, so
        there is at most one report per call and per interval.
        """
        if now < self.next_report:
            return None
        self.next_report += (int((now - self.next_report) // INTERVAL) + 1) * INTERVAL
        dropped, self.pending = self.pending, 0
        if not dropped:
            return None
        return {RATE_LIMIT_INFO.key: {"number_of_dropped_process_events": dropped},
                "node_name": self.node_name, "time": self.stamp()}
