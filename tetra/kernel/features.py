"""What the running kernel offers tetra, measured rather than guessed.

Config files and version numbers mislead on custom kernels (the CI kernel has
the ``bpf`` LSM active yet refuses LSM programs; its header tree is for 6.1), so
every line here comes from doing the thing: reading the file the kernel
exports, creating the map, loading the program, attaching it. When the kernel
refuses, its own words (the verifier's last line, libbcc's message) become the
line's ``detail``.

::

    _CHECKS: (name, group, measure), in report order
        │
        └─ _measure(check): fd 2 captured (libbcc and the verifier log write there)
               │  measure(modules) returns the detail, or raises with the reason
               │
               ├─ /proc, /sys, /lib/modules            kernel group
               └─ _Modules: one bcc build per C source, built on first use,
                  a failed build remembered as its reason, every module
                  cleaned up (detached, closed) when the report is done
        ──> list[Feature]

C layout (probes/features/): ``main.c`` holds every program that is loaded by name with an
explicit type (none starts with a prefix bcc attaches on its own, such as
``kprobe__`` or ``tracepoint__``). bcc attaches ``kfunc__``/``lsm__``
functions and creates maps while it builds a module, so fentry, BPF LSM and the
ring buffer each sit in a module of their own: there a failure is a build
failure, reported on its line without taking the other checks down. No program
reads a kernel struct (the header tree may be for another kernel), and the
helper checks only load their program: it is never attached, so it never runs.
A build costs about 0.25 s of clang; the whole report takes about a second.
"""

import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from bcc import BPF, BPFAttachType

from tetra.errors import KernelError, SensorError
from tetra.kernel.mounts import cgroup2_mount, mount_points
from tetra.kernel.probes import probe_source


@dataclass(frozen=True)
class Feature:
    """One measured capability.

    ``available`` says whether tetra can use it; ``detail`` says what was
    measured, or the kernel's reason for refusing.
    """

    name: str
    group: str
    available: bool
    detail: str


GROUPS = ("kernel", "attach", "helpers")

_TRACEPOINT = "sched:sched_process_exec"  # fires on exec only: attaching costs nothing elsewhere
_KERNEL_FUNCTION = "do_sys_openat2"  # the kprobe, kretprobe and fentry target
_LSM_HOOK = "file_open"
_LIBC_SYMBOL = "getpid"

_MAIN = "features/main.c"
_FENTRY = "features/fentry.c"
_LSM = "features/lsm.c"
_RINGBUF = "features/ringbuf.c"


# --- measuring ---------------------------------------------------------------


@contextmanager
def _captured_stderr() -> Iterator[Callable[[], str]]:
    """Send file descriptor 2 to a temporary file; yield a reader of what was written.

    libbcc prints the kernel's reasons (verifier log, failed tracefs writes) to
    fd 2 and raises a bare ``Exception`` with a vaguer text.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: _read_from_start(sink)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _read_from_start(sink: IO[bytes]) -> str:
    """Everything written to ``sink`` so far."""
    sink.seek(0)
    return sink.read().decode(errors="replace")


def _kernel_reason(log: str, err: Exception) -> str:
    """The most telling line: the verifier's verdict, else libbcc's last word, else ``err``.

    A verifier log ends with the verdict followed by "processed N insns ...".
    """
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for verdict, line in zip(lines, lines[1:]):
        if line.startswith("processed "):
            return f"verifier: {verdict}"
    return lines[-1] if lines else str(err)


class _Modules:
    """bcc modules built on first use, keyed by C source, cleaned up on exit."""

    def __init__(self) -> None:
        self._built: dict[str, BPF | SensorError] = {}

    def built(self, source: str) -> BPF:
        """The module compiled from probes/<source>, built on first use;
        ``SensorError`` when its build failed."""
        if source not in self._built:
            self._built[source] = _build(source)
        module = self._built[source]
        if isinstance(module, SensorError):
            raise SensorError(str(module))
        return module

    def __enter__(self) -> "_Modules":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for module in self._built.values():
            if isinstance(module, BPF):
                module.cleanup()


def _build(source: str) -> BPF | SensorError:
    """Compile and load ``source``, or the kernel's reason why not."""
    with _captured_stderr() as log:
        try:
            return BPF(text=probe_source(source).encode())
        except Exception as err:  # bcc raises bare Exception
            return SensorError(_kernel_reason(log(), err))


Measure = Callable[[_Modules], str]


@dataclass(frozen=True)
class _Check:
    """One line of the report: ``measure`` returns the detail or raises the reason."""

    name: str
    group: str
    measure: Measure


def _measure(check: _Check, modules: _Modules) -> Feature:
    """Run one check; any failure becomes an unavailable feature carrying its reason."""
    with _captured_stderr() as log:
        try:
            detail = check.measure(modules)
        except Exception as err:  # bcc raises bare Exception
            return Feature(check.name, check.group, False, _kernel_reason(log(), err))
    return Feature(check.name, check.group, True, detail)


def probe_kernel() -> list[Feature]:
    """Measure every capability in report order; nothing stays attached or created."""
    with _Modules() as modules:
        return [_measure(check, modules) for check in _CHECKS]


# --- kernel: files the running kernel exports --------------------------------

_BTF = Path("/sys/kernel/btf/vmlinux")
_BTF_MAGIC = b"\x9f\xeb"  # 0xeB9F, little-endian: the first field of struct btf_header
_UTS_RELEASE = re.compile(r'#define\s+UTS_RELEASE\s+"([^"]+)"')
_LOCKDOWN = Path("/sys/kernel/security/lockdown")
_LOCKDOWN_SELECTED = re.compile(r"\[(\w+)\]")
_LOCKDOWN_EFFECT = {
    "integrity": "bpf_probe_write_user is refused",
    "confidentiality": "bpf_probe_write_user and reads of kernel memory are refused",
}


def _release(_: _Modules) -> str:
    return os.uname().release


def _btf(_: _Modules) -> str:
    if not _BTF.exists():
        raise KernelError(f"{_BTF} absent: struct offsets cannot be resolved")
    with _BTF.open("rb") as btf:
        magic = btf.read(len(_BTF_MAGIC))
    if magic != _BTF_MAGIC:
        raise KernelError(f"{_BTF} does not start with the BTF magic (got {magic.hex()})")
    return f"{_BTF}, {_BTF.stat().st_size / 2**20:.1f} MiB"


def _headers(_: _Modules) -> str:
    release = os.uname().release
    build = Path("/lib/modules", release, "build")
    if not build.is_dir():
        raise KernelError(f"{build} absent: bcc cannot compile C")
    utsrelease = build / "include/generated/utsrelease.h"
    match = _UTS_RELEASE.search(utsrelease.read_text()) if utsrelease.exists() else None
    if match is None:
        return f"present, release unknown ({utsrelease} has no UTS_RELEASE)"
    if match[1] == release:
        return f"present, from {release}, match the running kernel"
    return f"present, from {match[1]}, do not match: struct offsets come from BTF"


def _cgroup2(_: _Modules) -> str:
    return cgroup2_mount()


def _tracefs(_: _Modules) -> str:
    points = mount_points("tracefs")
    if not points:
        raise KernelError("not mounted: mount -t tracefs tracefs /sys/kernel/tracing")
    return ", ".join(points)


def _lockdown(_: _Modules) -> str:
    if not _LOCKDOWN.exists():
        if mount_points("securityfs"):
            return "none: this kernel has no lockdown LSM"
        raise KernelError(
            f"unknown: {_LOCKDOWN} absent, securityfs not mounted "
            "(bpf_probe_write_user below shows the effect)"
        )
    selected = _LOCKDOWN_SELECTED.search(_LOCKDOWN.read_text())
    mode = selected[1] if selected else "unknown"
    if mode in _LOCKDOWN_EFFECT:
        raise KernelError(f"{mode}: {_LOCKDOWN_EFFECT[mode]}")
    return mode


# --- attach: load and attach one program per mechanism -----------------------


def _tracepoint(modules: _Modules) -> str:
    modules.built(_MAIN).attach_tracepoint(tp=_TRACEPOINT, fn_name="on_tracepoint")
    return f"attached to {_TRACEPOINT}"


def _raw_tracepoint(modules: _Modules) -> str:
    event = _TRACEPOINT.split(":")[1]
    modules.built(_MAIN).attach_raw_tracepoint(tp=event, fn_name="on_raw_tracepoint")
    return f"attached to {event}"


def _kprobe(modules: _Modules) -> str:
    modules.built(_MAIN).attach_kprobe(event=_KERNEL_FUNCTION, fn_name="on_kprobe")
    return f"attached to {_KERNEL_FUNCTION}"


def _kretprobe(modules: _Modules) -> str:
    modules.built(_MAIN).attach_kretprobe(event=_KERNEL_FUNCTION, fn_name="on_kretprobe")
    return f"attached to the return of {_KERNEL_FUNCTION}"


def _attached_while_built(source: str, target: str) -> Measure:
    """A check for a module whose program bcc loads and attaches as it builds it."""

    def measure(modules: _Modules) -> str:
        modules.built(source)
        return f"attached to {target}"

    return measure


def _uprobe(modules: _Modules) -> str:
    libc = BPF.find_library("c")
    if libc is None:
        raise KernelError("bcc found no libc to attach to")
    modules.built(_MAIN).attach_uprobe(name=libc, sym=_LIBC_SYMBOL, fn_name="on_uprobe")
    return f"attached to {_LIBC_SYMBOL} in {libc.decode()}"


@contextmanager
def _temporary_cgroup() -> Iterator[int]:
    """A new, empty cgroup v2 directory (as an open fd), removed on exit."""
    path = tempfile.mkdtemp(prefix="tetra-probe-", dir=cgroup2_mount())
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            yield fd
        finally:
            os.close(fd)
    finally:
        os.rmdir(path)


def _cgroup_sock_addr(modules: _Modules) -> str:
    connect4 = BPFAttachType.CGROUP_INET4_CONNECT
    program = modules.built(_MAIN).load_func(
        "on_connect4", BPF.CGROUP_SOCK_ADDR, attach_type=connect4
    )
    with _temporary_cgroup() as cgroup:
        BPF.attach_func(program, cgroup, connect4)
        BPF.detach_func(program, cgroup, connect4)
    return "connect4 program attached to a temporary cgroup v2 directory"


# --- helpers: a program calling the helper passes the verifier ---------------

_PROGRAM_TYPES = {"tracepoint": BPF.TRACEPOINT, "kprobe": BPF.KPROBE}


def _passes_verifier(function: str, kind: str) -> Measure:
    """A check that loads ``function`` of _MAIN as a ``kind`` program."""

    def measure(modules: _Modules) -> str:
        modules.built(_MAIN).load_func(function, _PROGRAM_TYPES[kind])
        return f"a {kind} program calling it passes the verifier"

    return measure


def _ring_buffer(modules: _Modules) -> str:
    modules.built(_RINGBUF).load_func("helper_ringbuf_output", BPF.TRACEPOINT)
    return "map created; a tracepoint program writing to it passes the verifier"


_CHECKS: tuple[_Check, ...] = (
    _Check("release", "kernel", _release),
    _Check("BTF", "kernel", _btf),
    _Check("kernel headers", "kernel", _headers),
    _Check("cgroup v2", "kernel", _cgroup2),
    _Check("tracefs", "kernel", _tracefs),
    _Check("lockdown", "kernel", _lockdown),
    _Check("tracepoint", "attach", _tracepoint),
    _Check("raw tracepoint", "attach", _raw_tracepoint),
    _Check("kprobe", "attach", _kprobe),
    _Check("kretprobe", "attach", _kretprobe),
    _Check("fentry", "attach", _attached_while_built(_FENTRY, _KERNEL_FUNCTION)),
    _Check("BPF LSM", "attach", _attached_while_built(_LSM, f"LSM hook {_LSM_HOOK}")),
    _Check("uprobe", "attach", _uprobe),
    _Check("cgroup sock_addr", "attach", _cgroup_sock_addr),
    _Check("bpf_send_signal", "helpers", _passes_verifier("helper_send_signal", "tracepoint")),
    _Check("bpf_override_return", "helpers", _passes_verifier("helper_override_return", "kprobe")),
    _Check(
        "bpf_probe_write_user", "helpers", _passes_verifier("helper_probe_write_user", "tracepoint")
    ),
    _Check("ring buffer", "helpers", _ring_buffer),
    _Check(
        "bpf_get_current_cgroup_id",
        "helpers",
        _passes_verifier("helper_current_cgroup_id", "tracepoint"),
    ),
    _Check("bpf_ktime_get_boot_ns", "helpers", _passes_verifier("helper_ktime_boot_ns", "tracepoint")),
)
