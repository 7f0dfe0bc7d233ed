"""Where the kernel's special filesystems are mounted (from /proc/mounts)."""

import re
from pathlib import Path

from tetra.errors import KernelError


def mount_points(fstype: str) -> list[str]:
    """Where filesystems of ``fstype`` are mounted, octal escapes decoded."""
    points = []
    for line in Path("/proc/mounts").read_text().splitlines():
        _source, point, kind, *_rest = line.split()
        if kind == fstype:
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), point))
    return points


def cgroup2_mount() -> str:
    """The first cgroup v2 mount point (``/sys/fs/cgroup`` or, hybrid, ``.../unified``)."""
    points = mount_points("cgroup2")
    if not points:
        raise KernelError("no cgroup2 filesystem in /proc/mounts")
    return points[0]
