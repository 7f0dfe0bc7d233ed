"""Attaching cgroup programs through BPF links, so that they leave with the agent.

A program attached the old way (BPF_PROG_ATTACH) stays on its cgroup until
someone detaches it: an agent that crashed would leave its network denials in
force with nobody to report them. A BPF link is released when its last
descriptor closes, which the kernel does for a process that dies.
"""

import ctypes
import os

from tetra.errors import SensorError


class CgroupLinks:
    """The links of one sensor's cgroup programs; ``close`` detaches them all."""

    def __init__(self) -> None:
        self._fds: list[int] = []

    def attach(self, prog_fd: int, cgroup: str, attach_type: int) -> None:
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
        if fd < 0:
            reason = os.strerror(-fd) if fd < -1 else "refused"
            raise SensorError(f"cannot attach a program to cgroup {cgroup}: {reason}")
        self._fds.append(fd)

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())
