"""Processes that were running before the agent, read from /proc.

They become ExecRecords flagged ``procFS`` and go through the same cache path as
live execs, parents first (sorted by start time), so the children that run
later have parents. The start time is /proc/<pid>/stat field 22 (clock ticks
since boot, the kernel's start_boottime), on the same clock as live events.
Credentials and namespaces are read too (status, ns/*); the cache shows them
only with --enable-process-cred / --enable-process-ns. The environment
(environ, its first ENV_MAX bytes as at exec in the kernel) is read only when
asked: --enable-process-environment-variables.
"""

import fcntl
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from tetra.decode.process import ExecRecord, environment, text
from tetra.wire.constants import ENV_MAX
from tetra.wire.layouts import NS_NAMES

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
NO_AUID = 0xFFFFFFFF
PF_KTHREAD = 0x00200000
NS_GET_PARENT = 0xB702  # ioctl on a namespace fd (linux/nsfs.h): its parent's fd
NS_GET_OWNER_UID = 0xB704  # ioctl on a user namespace fd: the uid that created it
_USER_NS_MAX_LEVEL = 32  # the kernel nests user namespaces at most 32 deep
AT_SECURE = 23  # the auxv entry: the kernel ran the image in secure mode (privileges raised)


def _read(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _environ(pid_dir: Path, flags: list[str]) -> list[str]:
    """The environment the process was started with, bounded as the kernel bounds it: past
    ENV_MAX bytes it is cut, and "truncEnv" added to ``flags``; unreadable, "errorEnv"."""
    try:
        with open(pid_dir / "environ", "rb") as f:
            block = f.read(ENV_MAX + 1)
    except OSError:
        flags.append("errorEnv")
        return []
    truncated = len(block) > ENV_MAX
    if truncated:
        flags.append("truncEnv")
    return environment(block[:ENV_MAX], truncated)


def _stat_fields(pid_dir: Path) -> tuple[str, int, int, bool]:
    """(comm, ppid, start ticks, is kernel thread) from /proc/<pid>/stat.

    comm may contain spaces and parentheses: it ends at the last ')'.
    """
    raw = _read(pid_dir / "stat")
    comm = raw[raw.index(b"(") + 1:raw.rindex(b")")]
    fields = raw[raw.rindex(b")") + 2:].split()
    return text(comm), int(fields[1]), int(fields[19]), bool(int(fields[6]) & PF_KTHREAD)


def _status(pid_dir: Path) -> dict[bytes, list[bytes]]:
    """The lines of /proc/<pid>/status as name -> values."""
    result = {}
    for line in _read(pid_dir / "status").splitlines():
        name, _, values = line.partition(b":")
        result[name] = values.split()
    return result


def _user_ns(pid_dir: Path) -> tuple[int, int | None, int | None]:
    """(inode, level, owner uid) of the process's user namespace; None where it cannot be told."""
    try:
        fd = os.open(pid_dir / "ns" / "user", os.O_RDONLY)
    except OSError:
        return 0, None, None
    try:
        inum = os.fstat(fd).st_ino
        owner_buf = bytearray(4)
        owner: int | None = None
        try:
            fcntl.ioctl(fd, NS_GET_OWNER_UID, owner_buf)
            owner = int.from_bytes(owner_buf, "little")
        except OSError:
            pass
        level = 0
        at = os.dup(fd)
        while level < _USER_NS_MAX_LEVEL:
            try:
                parent = fcntl.ioctl(at, NS_GET_PARENT)
            except OSError:  # EPERM: no parent the agent can see, the initial namespace
                break
            os.close(at)
            at = parent
            level += 1
        os.close(at)
        return inum, level, owner
    finally:
        os.close(fd)


def _secureexec(pid_dir: Path) -> int | None:
    """AT_SECURE from /proc/<pid>/auxv ((type, value) pairs of native words), None if unreadable."""
    try:
        auxv = _read(pid_dir / "auxv")
    except OSError:
        return None
    for at_type, value in struct.iter_unpack("=QQ", auxv[:len(auxv) // 16 * 16]):
        if at_type == AT_SECURE:
            return int(value != 0)
        if at_type == 0:
            break
    return None


def _executable(pid_dir: Path) -> tuple[int | None, ...]:
    """(links, inode, uid, gid, mode) of the file the process runs (0 links: deleted, or a memfd)."""
    try:
        st = os.stat(pid_dir / "exe")
    except OSError:
        return None, None, None, None, None
    return st.st_nlink, st.st_ino, st.st_uid, st.st_gid, st.st_mode


def _credentials(status: dict[bytes, list[bytes]], pid_dir: Path) -> tuple[int | None, ...]:
    """The fields of ExecRecord.cred: ids and capabilities from status, the executable and
    AT_SECURE; /proc shows no securebits and no user namespace's group (None)."""
    uid, euid, suid, fsuid = (int(v) for v in status[b"Uid"][:4])
    gid, egid, sgid, fsgid = (int(v) for v in status[b"Gid"][:4])
    permitted, effective, inheritable = (int(status[key][0], 16) for key in (b"CapPrm", b"CapEff", b"CapInh"))
    user_ns, level, owner = _user_ns(pid_dir)
    return (uid, gid, suid, sgid, euid, egid, fsuid, fsgid, None, user_ns,
            permitted, effective, inheritable, level, owner, None, *_executable(pid_dir), _secureexec(pid_dir))


def namespaces(pid_dir: Path) -> tuple[int, ...]:
    """The inode of each of the process's namespaces (layouts.NS_NAMES order), 0 where none."""
    result = []
    for name in NS_NAMES:
        try:
            result.append(os.stat(pid_dir / "ns" / name).st_ino)
        except OSError:
            result.append(0)
    return tuple(result)


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


def read_process(pid: int, proc: Path = Path("/proc"), cgroup2_root: Path | None = None,
                 env: bool = False) -> ExecRecord | None:
    """One process as an ExecRecord, or None when it is gone or not a process; ``env``: with
    its environment."""
    pid_dir = proc / str(pid)
    try:
        comm, ppid, start_ticks, kthread = _stat_fields(pid_dir)
        status = _status(pid_dir)
        uid, gid = int(status[b"Uid"][0]), int(status[b"Gid"][0])
        cred = _credentials(status, pid_dir)
        ns_pid = int(status[b"NSpid"][-1]) if b"NSpid" in status else pid  # its pid in its own pid namespace
        cmdline = _read(pid_dir / "cmdline")
        try:
            auid = int(_read(pid_dir / "loginuid") or NO_AUID)
        except (OSError, ValueError):
            auid = NO_AUID
        cgroup_id, cgroup_name = _cgroup(pid_dir, cgroup2_root)
    except (OSError, ValueError, IndexError, KeyError):
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
    flags = ["procFS"]
    return ExecRecord(
        ktime=start_ticks * _TICK_NS, pid=pid, tid=pid, ppid=ppid, uid=uid, gid=gid,
        auid=auid, cgroup_id=cgroup_id, filename=binary, cwd=cwd, argv=argv,
        cgroup_name=cgroup_name, flags=flags, cred=cred, ns=(*namespaces(pid_dir), ns_pid),
        env=_environ(pid_dir, flags) if env else None,
    )


def scan(proc: Path = Path("/proc"), cgroup2_root: Path | None = None, env: bool = False) -> Iterator[ExecRecord]:
    """Every process in /proc, oldest first, so parents come before children."""
    pids = [int(name) for name in os.listdir(proc) if name.isdigit()]
    records = [r for r in (read_process(pid, proc, cgroup2_root, env) for pid in pids) if r is not None]
    records.sort(key=lambda r: (r.ktime, r.pid))
    return iter(records)
