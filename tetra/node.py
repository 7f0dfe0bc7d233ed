"""Who and when: the node name and the conversion of kernel boot time to wall time.

Probes stamp events with bpf_ktime_get_boot_ns() (CLOCK_BOOTTIME, which keeps
counting through suspend, like /proc/<pid>/stat start times), so live events and
processes read from /proc share one clock. Wall time = boot epoch + ktime.
"""

import os
import socket
import time
from datetime import datetime, timezone


def node_name() -> str:
    """NODE_NAME (as Kubernetes sets it) or the host name, as Tetragon does."""
    return os.environ.get("NODE_NAME") or socket.gethostname()


def rfc3339_fraction(nanos: int) -> str:
    """The fraction of a second as protojson writes it: none, or 3, 6 or 9 digits.

    Tetragon's JSON is protojson, and tetra's gRPC events go through protobuf
    Timestamps: writing the same digits keeps the two byte-for-byte equal.
    """
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1_000 == 0:
        return f".{nanos // 1_000:06d}"
    return f".{nanos:09d}"


class BootClock:
    """Turns boot-time nanoseconds into RFC 3339 UTC timestamps (protojson's digits)."""

    def __init__(self, epoch_ns: int | None = None) -> None:
        """``epoch_ns``: the wall-clock time of boot; measured now unless given (a replay gives the recorded one)."""
        self.epoch_ns = time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME) if epoch_ns is None else epoch_ns
        self._second = -1
        self._prefix = ""

    def now_ktime(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    def rfc3339(self, ktime_ns: int) -> str:
        """"2026-11-26T10:00:00.123456789Z", or "...:00.500Z" when the digits end in zeros.

        The date part is cached per second.
        """
        seconds, nanos = divmod(self.epoch_ns + ktime_ns, 1_000_000_000)
        if seconds != self._second:
            stamp = datetime.fromtimestamp(seconds, tz=timezone.utc)
            self._prefix = stamp.strftime("%Y-%m-%dT%H:%M:%S")
            self._second = seconds
        if nanos % 1_000:  # nearly every kernel time stamp: 9 digits, without a call
            return f"{self._prefix}.{nanos:09d}Z"
        return f"{self._prefix}{rfc3339_fraction(nanos)}Z"
