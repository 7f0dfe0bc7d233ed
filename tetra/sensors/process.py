"""The process lifecycle sensor: exec, clone and exit (probes/process/process.c).

Always loaded: every other event is attributed to a process through the cache
these events build. With --cgroup-rate it also limits them per cgroup, and
keeps the counts in its `tetra_cgroup_rate` map (probes/lib/cgroup_rate.h).
"""

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tetra.decode.process import ExecRecord
from tetra.errors import SensorError
from tetra.process.throttle import CgroupRate, RateSlot
from tetra.kernel.probes import cflags
from tetra.sensors.base import KernelCounts, compile_sensor, read_kernel_counts
from tetra.wire.constants import BIN_TAIL_LOST, BINARY_MAX, RINGBUF_PAGES
from tetra.wire.layouts import NS_NAMES

TRACEFS = Path("/sys/kernel/tracing")
SOURCE = "process/process.c"
# The tables this sensor owns and every policy module uses (probes/lib/emit.h, execve.h).
SHARED_TABLES = ("tetra_events", "tetra_stats", "tetra_execve")


def has_tracepoint_field(subsystem: str, event: str, field: str) -> bool:
    """Whether a tracepoint's format (tracefs) has a field: kernels differ."""
    fmt = TRACEFS / "events" / subsystem / event / "format"
    try:
        return f" {field};" in fmt.read_text()
    except OSError:
        return False


class ProcessSensor:
    """Compiles, loads and attaches the process probes; owns their ring buffer."""

    name = "process"

    def __init__(self, offsets: Mapping[str, int], ringbuf_pages: int = RINGBUF_PAGES,
                 process_cred: bool = False, process_ns: bool = False, process_env: bool = False,
                 cgroup_rate: CgroupRate | None = None) -> None:
        """``process_cred``/``process_ns``/``process_env``: exec records carry the
        credentials/namespaces/environment (compiled in only when asked: they cost every exec);
        ``cgroup_rate``: the limit, compiled in only when given."""
        if ringbuf_pages <= 0 or ringbuf_pages & (ringbuf_pages - 1):
            raise SensorError(f"ring buffer pages must be a power of two, got {ringbuf_pages}")
        defines: dict[str, int | str | None] = dict(offsets)
        defines["TETRA_RINGBUF_PAGES"] = ringbuf_pages
        if process_cred:
            defines["TETRA_PROCESS_CRED"] = None
        if process_ns:
            defines["TETRA_PROCESS_NS"] = None
        if cgroup_rate is not None:
            defines.update(cgroup_rate.defines())
        self.cgroup_rate = cgroup_rate
        if process_env:
            defines["TETRA_PROCESS_ENV"] = None
        if has_tracepoint_field("sched", "sched_process_exit", "group_dead"):
            defines["TETRA_HAVE_GROUP_DEAD"] = None
        self._cflags = cflags(defines)
        self._bpf: object | None = None

    @property
    def mechanisms(self) -> dict[str, str]:
        """Each hook and how it is attached, for status reports."""
        return {
            "sched:sched_process_exec": "tracepoint",
            "sched_process_fork": "raw tracepoint",
            "sched:sched_process_exit": "tracepoint",
        }

    def load(self) -> object:
        """Compile and attach."""
        self._bpf = compile_sensor("process", SOURCE, self._cflags)
        return self._bpf

    @property
    def bpf(self) -> object:
        if self._bpf is None:
            raise SensorError("process sensor is not loaded")
        return self._bpf

    def shared_maps(self) -> dict[str, int]:
        """Descriptors of the SHARED_TABLES, for policies loaded from compiled objects."""
        from bcc.libbcc import lib

        module = self.bpf.module  # type: ignore[attr-defined]
        fds = {name: lib.bpf_table_fd(module, name.encode()) for name in SHARED_TABLES}
        return {name: fd for name, fd in fds.items() if fd >= 0}

    def remember_binaries(self, records: Iterable[ExecRecord]) -> None:
        """Seed the in-kernel binary map (matchBinaries) with processes read from /proc, and their
        baseline (matchCapabilityChanges, matchNamespaceChanges): what /proc shows now, as Tetragon does
        for processes older than the agent."""
        table = self.bpf["tetra_execve"]  # type: ignore[index]
        binaries: dict[int, tuple[bytes, int]] = {}
        for rec in records:
            path = rec.filename.encode(errors="surrogateescape")
            binary = path[:BINARY_MAX - 1], BIN_TAIL_LOST if len(path) > BINARY_MAX - 1 else 0
            binaries[rec.pid] = binary
            leaf = table.Leaf()
            for slot, (kept, trunc) in ((leaf.binary, binary), (leaf.parent, binaries.get(rec.ppid, (b"", 0)))):
                slot.path, slot.len, slot.trunc = kept, len(kept), trunc
            _seed_baseline(leaf.baseline, rec)
            table[table.Key(rec.pid)] = leaf

    def kernel_counts(self) -> KernelCounts:
        return read_kernel_counts(self.bpf["tetra_stats"])  # type: ignore[index]

    def cgroup_rate_counts(self) -> dict[int, list[RateSlot]]:
        """--cgroup-rate's counts: cgroup id -> each CPU's slot (empty without the flag)."""
        if self.cgroup_rate is None:
            return {}
        table = self.bpf["tetra_cgroup_rate"]  # type: ignore[index]
        return {int(key.value): [RateSlot(s.window, s.curr, s.prev, s.throttled, s.dropped) for s in slots]
                for key, slots in table.items()}

    def forget_cgroups(self, cgroup_ids: Iterable[int]) -> None:
        """Remove cgroups from the --cgroup-rate map (Throttles.check says which: their drops are kept)."""
        table = self.bpf["tetra_cgroup_rate"]  # type: ignore[index]
        for cgroup_id in cgroup_ids:
            try:
                del table[table.Key(cgroup_id)]
            except KeyError:
                pass  # the cgroup's entry is gone already

    def close(self) -> None:
        """Detach every program and free the maps."""
        if self._bpf is not None:
            self._bpf.cleanup()  # type: ignore[attr-defined]
            self._bpf = None


def _seed_baseline(baseline: Any, rec: ExecRecord) -> None:
    """struct tetra_baseline from a /proc record: its capability sets and namespaces (zeros where /proc had
    none, which selectors never take for a change)."""
    if rec.cred is not None:
        baseline.caps[0], baseline.caps[1], baseline.caps[2] = (value or 0 for value in rec.cred[10:13])
    for name, inum in zip(NS_NAMES, rec.ns or ()):
        setattr(baseline.ns, name, inum or 0)
