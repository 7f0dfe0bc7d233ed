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


class BootClock:
    """Turns boot-time nanoseconds into RFC 3339 UTC timestamps with nanoseconds."""

    def __init__(self) -> None:
        self.epoch_ns = time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        self._second = -1
        self._prefix = ""

    def now_ktime(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    def rfc3339(self, ktime_ns: int) -> str:
        """"2026-11-26T10:00:00.123456789Z"; the date part is cached per second."""
        seconds, nanos = divmod(self.epoch_ns + ktime_ns, 1_000_000_000)
        if seconds != self._second:
            stamp = datetime.fromtimestamp(seconds, tz=timezone.utc)
            self._prefix = stamp.strftime("%Y-%m-%dT%H:%M:%S")
            self._second = seconds
        return f"{self._prefix}.{nanos:09d}Z"
