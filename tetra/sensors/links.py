"""Attachments a sensor holds as descriptors: cgroup programs (BPF links) and fmod_ret programs.

A cgroup program attached the old way (BPF_PROG_ATTACH) stays on its cgroup
until someone detaches it: an agent that crashed would leave its network
denials in force with nobody to report them. A BPF link, like the raw
tracepoint descriptor of a BPF trampoline program, is released when its last
descriptor closes, which the kernel does for a process that dies.
"""

import ctypes
import os

from tetra.errors import SensorError


class Links:
    """The attachments of one sensor; ``close`` detaches them all."""

    def __init__(self) -> None:
        self._fds: list[int] = []

    def attach_cgroup(self, prog_fd: int, cgroup: str, attach_type: int) -> None:
        from bcc.libbcc import lib  # imported here: tetra's unit tests run without bcc

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
        self._keep(fd, f"cannot attach a program to cgroup {cgroup}")

    def attach_trampoline(self, prog_fd: int, target: str) -> None:
        """A BPF tracing program (fmod_ret here) on the function it was loaded for."""
        from bcc.libbcc import lib

        self._keep(lib.bpf_attach_kfunc(prog_fd), f"cannot attach an fmod_ret program to {target}")

    def _keep(self, fd: int, failure: str) -> None:
        if fd < 0:
            raise SensorError(f"{failure}: {os.strerror(-fd) if fd < -1 else 'refused'}")
        self._fds.append(fd)

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())
