"""Every attachment a sensor makes, held as a descriptor the sensor owns.

A program stays attached while a descriptor of its attachment is open: a perf
event (tracepoint, kprobe, uprobe), a raw tracepoint descriptor, a BPF link
(cgroup programs), the descriptor of a BPF trampoline. bcc keeps one
descriptor per tracepoint *name* (and per uprobe address), so a second program
on the same tracepoint overwrote the first's descriptor in bcc's table and
``cleanup`` closed only the last: the others kept running after their policy
was deleted. Here each program's attachment is its own entry, detached on
``close`` whatever else shares its hook. Closing a descriptor is also what the
kernel does for a process that dies, so a crashed agent leaves nothing
attached either (cgroup programs are attached as links for that reason: the
old BPF_PROG_ATTACH stays on its cgroup until someone detaches it).
"""

import ctypes
import itertools
import os
from collections.abc import Callable

from tetra.errors import SensorError

# Legacy kprobe/uprobe events (kernels without the perf kprobe PMU) are created in
# tracefs under a name; each attachment gets its own, so none is shared.
_event_names = itertools.count()


def _libbcc() -> ctypes.CDLL:
    from bcc.libbcc import lib  # imported here: tetra's unit tests run without bcc

    return lib


# bcc's C bpf_attach_uprobe has taken a seventh argument, the semaphore's file offset, since 0.21; its Python
# declaration (Debian's python3-bpfcc 0.26 included) still passes six, leaving the seventh to whatever the
# stack holds, which the kernel would take for a counter to increment in every process mapping the binary.
# This prototype passes it (0: no semaphore); a bcc whose function has six arguments ignores the extra one.
_ATTACH_UPROBE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                                  ctypes.c_ulonglong, ctypes.c_int, ctypes.c_uint32, use_errno=True)


def _event_name(prefix: str) -> bytes:
    return f"{prefix}_tetra{os.getpid()}_{next(_event_names)}".encode()


class Links:
    """The attachments of one sensor; ``close`` detaches them all, newest first."""

    def __init__(self) -> None:
        self._detach: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return len(self._detach)

    def attach_tracepoint(self, prog_fd: int, target: str) -> None:
        """``target`` is ``category:name``."""
        category, name = target.split(":", 1)
        fd = _libbcc().bpf_attach_tracepoint(prog_fd, category.encode(), name.encode())
        self._keep_perf(fd, None, f"cannot attach a program to tracepoint {target}")

    def attach_raw_tracepoint(self, prog_fd: int, target: str) -> None:
        fd = _libbcc().bpf_attach_raw_tracepoint(prog_fd, target.encode())
        self._keep_fd(fd, f"cannot attach a program to raw tracepoint {target}")

    def attach_kprobe(self, prog_fd: int, symbol: str, at_return: bool) -> None:
        lib = _libbcc()
        event = _event_name("r" if at_return else "p")
        fd = lib.bpf_attach_kprobe(prog_fd, int(at_return), event, symbol.encode(), 0, 0)
        self._keep_perf(fd, lambda: lib.bpf_detach_kprobe(event),
                        f"cannot attach a {'kretprobe' if at_return else 'kprobe'} to {symbol}")

    def attach_uprobe(self, prog_fd: int, path: str, symbol: str, at_return: bool, address: int | None = None,
                      semaphore: int = 0) -> None:
        """At ``symbol`` of the binary, or at ``address`` (a USDT probe's location; ``symbol`` then names it).
        ``semaphore``: the file offset of a USDT probe's semaphore, which the kernel raises while attached."""
        from bcc import BPF

        lib = _libbcc()
        try:
            module, address = BPF._check_path_symbol(path.encode(), b"" if address is not None else symbol.encode(),
                                                     address, -1)
        except Exception as err:  # bcc raises bare Exception when the symbol is not found
            raise SensorError(f"cannot attach a uprobe to {path}:{symbol}: {err}") from err
        event = _event_name("r" if at_return else "p")
        attach = _ATTACH_UPROBE(("bpf_attach_uprobe", lib))
        fd = attach(prog_fd, int(at_return), event, module, address, -1, semaphore)
        self._keep_perf(fd, lambda: lib.bpf_detach_uprobe(event),
                        f"cannot attach a {'uretprobe' if at_return else 'uprobe'} to {path}:{symbol}")

    def attach_cgroup(self, prog_fd: int, cgroup: str, attach_type: int) -> None:
        lib = _libbcc()
        lib.bpf_link_create.restype = ctypes.c_int
        lib.bpf_link_create.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        try:
            cgroup_fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as err:
            raise SensorError(f"cannot open cgroup {cgroup}: {err.strerror}") from err
        try:
            fd = lib.bpf_link_create(prog_fd, cgroup_fd, attach_type, None)
        finally:
            os.close(cgroup_fd)
        self._keep_fd(fd, f"cannot attach a program to cgroup {cgroup}")

    def attach_trampoline(self, prog_fd: int, target: str) -> None:
        """A BPF tracing program (fmod_ret here) on the function it was loaded for."""
        self._keep_fd(_libbcc().bpf_attach_kfunc(prog_fd), f"cannot attach an fmod_ret program to {target}")

    def _keep_fd(self, fd: int, failure: str) -> None:
        _check(fd, failure)
        self._detach.append(lambda: os.close(fd))

    def _keep_perf(self, fd: int, remove_event: Callable[[], object] | None, failure: str) -> None:
        """A perf event descriptor: disabled and closed on detach, then its legacy
        tracefs event (if the kernel needed one) removed."""
        lib = _libbcc()
        if fd < 0 and remove_event is not None:
            remove_event()
        _check(fd, failure)

        def detach() -> None:
            lib.bpf_close_perf_event_fd(fd)
            if remove_event is not None:
                remove_event()

        self._detach.append(detach)

    def close(self) -> None:
        while self._detach:
            self._detach.pop()()


def _check(fd: int, failure: str) -> None:
    if fd < 0:
        err = ctypes.get_errno() or (-fd if fd < -1 else 0)
        raise SensorError(f"{failure}: {os.strerror(err) if err else 'refused'}")
