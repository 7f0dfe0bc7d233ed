"""The loader sensor: executable file mappings, for policies with ``spec.loader: true``
(probes/process/loader.c).

Loaded while at least one such policy is: each takes it when it loads and
gives it back when it unloads, and the last one out detaches it, so that no
syscall tracepoint stays enabled for nothing (they cost every syscall).
Its records go into the process sensor's ring buffer and are counted in its
``tetra_stats`` (opcode LOADER): loaded after the process sensor, closed before.
"""

from collections.abc import Mapping

from tetra.sensors.base import compile_sensor
from tetra.kernel.probes import cflags

SOURCE = "process/loader.c"
MECHANISMS = {"syscalls:sys_enter_mmap": "tracepoint", "syscalls:sys_exit_mmap": "tracepoint"}


class LoaderSensor:
    """Compiles and attaches the loader probes on first use, detaches them after the last."""

    name = "loader"

    def __init__(self, defines: Mapping[str, int | str | None]) -> None:
        """``defines``: the kernel offsets, TETRA_RINGBUF_PAGES and TETRA_AGENT_TGID (what policies get)."""
        self._cflags = cflags(defines)
        self._users: set[int] = set()
        self._bpf: object | None = None

    @property
    def loaded(self) -> bool:
        return self._bpf is not None

    @property
    def users(self) -> frozenset[int]:
        """The ids of the policies it is loaded for."""
        return frozenset(self._users)

    def acquire(self, policy_id: int) -> None:
        """Policy ``policy_id`` needs the sensor: loaded now if it is the first; SensorError if bcc
        cannot compile or attach it (the policy then did not load)."""
        if self._bpf is None:
            self._bpf = compile_sensor("loader", SOURCE, self._cflags)
        self._users.add(policy_id)

    def release(self, policy_id: int) -> None:
        """Policy ``policy_id`` no longer needs it: detached when no policy does."""
        self._users.discard(policy_id)
        if not self._users:
            self.close()

    def close(self) -> None:
        """Detach every program and free the maps."""
        self._users.clear()
        if self._bpf is not None:
            self._bpf.cleanup()  # type: ignore[attr-defined]
            self._bpf = None
