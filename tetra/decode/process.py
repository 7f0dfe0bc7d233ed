"""Decoders of the process sensor's records: exec, clone, exit, and throttle (--cgroup-rate)."""

from dataclasses import dataclass, field

from tetra.decode.registry import register
from tetra.errors import DecodeError
from tetra.wire import layouts
from tetra.wire.constants import BINARY_MAX, THROTTLE_EXEC, THROTTLE_START, ExecFlags, Op

_EXEC = layouts.EXEC.codec
_CLONE = layouts.CLONE.codec
_EXIT = layouts.EXIT.codec
_THROTTLE = layouts.THROTTLE.codec
_EXEC_CRED = layouts.EXEC_CRED.codec
_NS = layouts.NS.codec
_EXEC_ENV = layouts.EXEC_ENV.codec
_CONTEXT = int(ExecFlags.CRED | ExecFlags.NS | ExecFlags.ENV)

# Tetragon's names for what went wrong while reading an exec (plain ints: an
# IntFlag `&` costs a Python call per test on the hot path).
_FLAG_NAMES = tuple((int(bit), name) for bit, name in (
    (ExecFlags.TRUNC_FILENAME, "truncFilename"),
    (ExecFlags.FILENAME_UNRESOLVED, "errorFilename"),
    (ExecFlags.TRUNC_ARGS, "truncArgs"),
    (ExecFlags.ARGS_ERROR, "errorArgs"),
    (ExecFlags.TRUNC_CWD, "truncCWD"),
    (ExecFlags.CWD_ERROR, "errorCWD"),
    (ExecFlags.TRUNC_ENV, "truncEnv"),  # tetra's: Tetragon has no word for these two
    (ExecFlags.ENV_ERROR, "errorEnv"),
))


def text(raw: bytes) -> str:
    """Kernel bytes as text: bytes that are not UTF-8 become \\xNN escapes."""
    return raw.decode("utf-8", "backslashreplace")


@dataclass(slots=True)
class ExecRecord:
    """A process image started (live from the kernel, or read from /proc)."""

    ktime: int
    pid: int
    tid: int
    ppid: int
    uid: int
    gid: int
    auid: int
    cgroup_id: int
    filename: str
    cwd: str
    argv: list[str]
    cgroup_name: str
    flags: list[str] = field(default_factory=list)
    # With --enable-process-cred: struct tetra_exec_cred's fields (layouts.EXEC_CRED); from /proc,
    # what it cannot tell is None.
    cred: tuple[int | None, ...] | None = None
    # With --enable-process-ns: inode numbers in layouts.NS_NAMES order, then the pid in its own pid namespace.
    ns: tuple[int, ...] | None = None
    # With --enable-process-environment-variables: "NAME=value" strings, in the order of the block.
    env: list[str] | None = None


@dataclass(slots=True)
class CloneRecord:
    """A new process (not a thread) forked from ppid."""

    ktime: int
    pid: int
    tid: int
    ppid: int
    cgroup_id: int


@dataclass(slots=True)
class ExitRecord:
    """The last thread of a process ended; exit_code is the kernel's wait status."""

    ktime: int
    pid: int
    tid: int
    exit_code: int


@dataclass(slots=True)
class ThrottleRecord:
    """--cgroup-rate: a process event the kernel dropped, of which user space must hear (lib/cgroup_rate.h)."""

    ktime: int
    pid: int  # the process whose event was dropped
    cgroup_id: int
    cgroup_name: str  # "" unless ``start``
    start: bool  # a CPU began throttling the cgroup
    exec: bool  # the event was an exec of pid: the image the cache holds for it ended


def binary_in_part(rec: ExecRecord) -> bool:
    """Whether the kernel's matchBinaries sees only part of this binary's path
    (deeper than its path walk, longer than its binary map, or not resolved)."""
    name = rec.filename
    return ("truncFilename" in rec.flags or "errorFilename" in rec.flags
            or (len(name) >= BINARY_MAX // 4 and len(name.encode(errors="surrogateescape")) >= BINARY_MAX))


def absolute(filename: str, cwd: str) -> str:
    """The exec'd path made absolute against the cwd, as execve("./x") resolves it."""
    if filename.startswith("/") or not filename:
        return filename
    return cwd.rstrip("/") + "/" + filename.removeprefix("./")


def environment(block: bytes, truncated: bool) -> list[str]:
    """An environment block (NUL-separated NAME=value, as the kernel and /proc/PID/environ
    hold it) as strings. A block cut short ends in part of a string: that part is left out,
    a value cut in two would pass for the whole one."""
    entries = block.split(b"\0")
    if truncated or not block.endswith(b"\0"):
        entries.pop()
    return [entry.decode("utf-8", "backslashreplace") for entry in entries if entry]


def _check_size(raw: bytes, need: int, what: str) -> None:
    if len(raw) < need:
        raise DecodeError(f"{what} record of {len(raw)} bytes, need {need}")


@register(Op.EXEC)
def decode_exec(raw: bytes) -> ExecRecord:
    _check_size(raw, _EXEC.size, "exec")
    (_, _, _, _, ktime, pid, tid, ppid, uid, gid, auid, cgroup_id,
     flen, clen, alen, glen, exec_flags, _) = _EXEC.unpack_from(raw)
    at = _EXEC.size
    cred = ns = None
    env_len = 0
    if exec_flags & _CONTEXT:
        if exec_flags & ExecFlags.CRED:
            _check_size(raw, at + _EXEC_CRED.size, "exec")
            cred = _EXEC_CRED.unpack_from(raw, at)
            at += _EXEC_CRED.size
        if exec_flags & ExecFlags.NS:
            _check_size(raw, at + _NS.size, "exec")
            ns = _NS.unpack_from(raw, at)
            at += _NS.size
        if exec_flags & ExecFlags.ENV:
            _check_size(raw, at + _EXEC_ENV.size, "exec")
            env_len = _EXEC_ENV.unpack_from(raw, at)[0]
            at += _EXEC_ENV.size
    _check_size(raw, at + flen + clen + alen + glen + env_len, "exec")
    filename = raw[at:at + flen].rstrip(b"\0")
    at += flen
    cwd = text(raw[at:at + clen]) or "/"
    at += clen
    args = raw[at:at + alen]
    at += alen
    cgroup = raw[at:at + glen].rstrip(b"\0")
    env = (environment(raw[at + glen:at + glen + env_len], bool(exec_flags & ExecFlags.TRUNC_ENV))
           if exec_flags & ExecFlags.ENV else None)
    body = args[:-1] if args.endswith(b"\0") else args  # the last NUL ends argv
    argv = [a.decode("utf-8", "backslashreplace") for a in body.split(b"\0")] if args else []  # text(), inlined
    flags = ["execve"] + [name for bit, name in _FLAG_NAMES if exec_flags & bit] if exec_flags else ["execve"]
    return ExecRecord(ktime, pid, tid, ppid, uid, gid, auid, cgroup_id,
                      absolute(text(filename), cwd), cwd, argv, text(cgroup), flags, cred, ns, env)


@register(Op.CLONE)
def decode_clone(raw: bytes) -> CloneRecord:
    _check_size(raw, _CLONE.size, "clone")
    _, _, _, _, ktime, pid, tid, ppid, _, cgroup_id = _CLONE.unpack_from(raw)
    return CloneRecord(ktime, pid, tid, ppid, cgroup_id)


@register(Op.EXIT)
def decode_exit(raw: bytes) -> ExitRecord:
    _check_size(raw, _EXIT.size, "exit")
    _, _, _, _, ktime, pid, tid, exit_code, _ = _EXIT.unpack_from(raw)
    return ExitRecord(ktime, pid, tid, exit_code)


@register(Op.THROTTLE)
def decode_throttle(raw: bytes) -> ThrottleRecord:
    _check_size(raw, _THROTTLE.size, "throttle")
    _, flags, _, _, ktime, pid, _, cgroup_id, glen, _, _ = _THROTTLE.unpack_from(raw)
    _check_size(raw, _THROTTLE.size + glen, "throttle")
    name = raw[_THROTTLE.size:_THROTTLE.size + glen].rstrip(b"\0")
    return ThrottleRecord(ktime, pid, cgroup_id, text(name), bool(flags & THROTTLE_START), bool(flags & THROTTLE_EXEC))
