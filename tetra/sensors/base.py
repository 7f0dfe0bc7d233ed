"""What every sensor shares: compiling its probes, and the kernel's counters of what it handed over.

(The probes' C, as bcc compiles it: tetra/kernel/probes.py.)
"""

from collections.abc import Mapping
from dataclasses import dataclass

from tetra.errors import SensorError
from tetra.kernel.probes import probe_source
from tetra.wire.constants import STAT_LOST, STAT_SENT, Op


def compile_sensor(name: str, source: str, cflags: list[str]) -> object:
    """The bcc module of probes/``source``, compiled and attached (bcc attaches TRACEPOINT_PROBE
    and RAW_TRACEPOINT_PROBE itself); SensorError naming sensor ``name`` if bcc refuses it."""
    from bcc import BPF  # imported here: tetra's unit tests run without bcc

    try:
        return BPF(text=probe_source(source).encode(), cflags=cflags)
    except Exception as err:  # bcc raises bare Exception on compile/load errors
        raise SensorError(f"{name} sensor failed to load: {err}") from err


@dataclass(frozen=True)
class KernelCounts:
    """Records the kernel handed over (sent) or could not (lost), per opcode."""

    sent: Mapping[Op, int]
    lost: Mapping[Op, int]

    @property
    def total_lost(self) -> int:
        return sum(self.lost.values())

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())


def percpu_sum(table: object, slot: int) -> int:
    """One slot of a per-CPU array, summed over CPUs."""
    return sum(int(v) for v in table.getvalue(table.Key(slot)))  # type: ignore[attr-defined]


def read_kernel_counts(stats_table: object) -> KernelCounts:
    """Sum the per-CPU `stats` array (slot = opcode * 2 + kind) over CPUs."""
    sent: dict[Op, int] = {}
    lost: dict[Op, int] = {}
    for op in Op:
        for kind, into in ((STAT_SENT, sent), (STAT_LOST, lost)):
            into[op] = percpu_sum(stats_table, op * 2 + kind)
    return KernelCounts(sent=sent, lost=lost)
