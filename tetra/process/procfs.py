"""Processes that were running before the agent, read from /proc.

They become ExecRecords flagged ``procFS`` and go through the same cache path as
live execs, parents first (sorted by start time), so the children that run
later have parents. The start time is /proc/<pid>/stat field 22 (clock ticks
since boot, the kernel's start_boottime), on the same clock as live events.
"""

import os
from collections.abc import Iterator
from pathlib import Path

from tetra.decode.process import ExecRecord, text

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
NO_AUID = 0xFFFFFFFF
PF_KTHREAD = 0x00200000


def _read(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _stat_fields(pid_dir: Path) -> tuple[str, int, int, bool]:
    """(comm, ppid, start ticks, is kernel thread) from /proc/<pid>/stat.

    comm may contain spaces and parentheses: it ends at the last ')'.
    """
    raw = _read(pid_dir / "stat")
    comm = raw[raw.index(b"(") + 1:raw.rindex(b")")]
    fields = raw[raw.rindex(b")") + 2:].split()
    return text(comm), int(fields[1]), int(fields[19]), bool(int(fields[6]) & PF_KTHREAD)


def _ids(pid_dir: Path) -> tuple[int, int]:
    """Real uid and gid from /proc/<pid>/status."""
    uid = gid = 0
    for line in _read(pid_dir / "status").splitlines():
        if line.startswith(b"Uid:"):
            uid = int(line.split()[1])
        elif line.startswith(b"Gid:"):
            gid = int(line.split()[1])
            break
    return uid, gid


def _cgroup(pid_dir: Path, cgroup2_root: Path | None) -> tuple[int, str]:
    """(cgroup v2 id, leaf name): the id is the inode of the cgroup directory."""
    for line in _read(pid_dir / "cgroup").splitlines():
        if line.startswith(b"0::"):
            rel = text(line[3:]).strip()
            leaf = rel.rsplit("/", 1)[-1]
            try:
                inode = os.stat(cgroup2_root / rel.lstrip("/")).st_ino if cgroup2_root else 0
            except OSError:
                inode = 0
            return inode, leaf
    return 0, ""


def read_process(pid: int, proc: Path = Path("/proc"), cgroup2_root: Path | None = None) -> ExecRecord | None:
    """One process as an ExecRecord, or None when it is gone or not a process."""
    pid_dir = proc / str(pid)
    try:
        comm, ppid, start_ticks, kthread = _stat_fields(pid_dir)
        uid, gid = _ids(pid_dir)
        cmdline = _read(pid_dir / "cmdline")
        try:
            auid = int(_read(pid_dir / "loginuid") or NO_AUID)
        except (OSError, ValueError):
            auid = NO_AUID
        cgroup_id, cgroup_name = _cgroup(pid_dir, cgroup2_root)
    except (OSError, ValueError, IndexError):
        return None
    try:
        binary = os.readlink(pid_dir / "exe")
    except OSError:
        binary = ""
    try:
        cwd = os.readlink(pid_dir / "cwd")
    except OSError:
        cwd = ""
    body = cmdline[:-1] if cmdline.endswith(b"\0") else cmdline
    argv = [text(a) for a in body.split(b"\0")] if body else []
    if kthread:
        binary = f"[{comm}]"  # kernel threads have no executable
    elif not binary and argv:
        binary = argv[0]  # caught mid-exec: the new image has no exe link yet
    return ExecRecord(
        ktime=start_ticks * _TICK_NS, pid=pid, tid=pid, ppid=ppid, uid=uid, gid=gid,
        auid=auid, cgroup_id=cgroup_id, filename=binary, cwd=cwd, argv=argv,
        cgroup_name=cgroup_name, flags=["procFS"],
    )


def scan(proc: Path = Path("/proc"), cgroup2_root: Path | None = None) -> Iterator[ExecRecord]:
    """Every process in /proc, oldest first, so parents come before children."""
    pids = [int(name) for name in os.listdir(proc) if name.isdigit()]
    records = [r for r in (read_process(pid, proc, cgroup2_root) for pid in pids) if r is not None]
    records.sort(key=lambda r: (r.ktime, r.pid))
    return iter(records)
