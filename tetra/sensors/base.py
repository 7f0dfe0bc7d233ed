"""What every sensor shares: locating probes/, compiling with bcc, kernel counters."""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tetra.errors import SensorError
from tetra.wire.constants import STAT_LOST, STAT_SENT, Op

PROBES_DIR = Path(os.environ.get("TETRA_PROBES_DIR", Path(__file__).resolve().parents[2] / "probes"))


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


_QUOTED_INCLUDE = re.compile(r'^#include "([^"]+)"\s*$', re.MULTILINE)


def expand_includes(text: str, seen: set[Path] | None = None) -> str:
    """C text with its quoted includes (paths under probes/) pasted in.

    bcc rewrites map calls (``tetra_events.ringbuf_output(...)``) only in the
    main text, not in included headers, so probes/lib headers that use maps
    must be pasted in. Each file is expanded once; system (<...>) includes stay.
    """
    seen = set() if seen is None else seen

    def expand(path: Path) -> str:
        if path in seen:
            return ""
        seen.add(path)
        try:
            content = path.read_text()
        except OSError as err:
            raise SensorError(f"cannot read probe source {path}: {err.strerror}") from err
        return _QUOTED_INCLUDE.sub(lambda m: expand(PROBES_DIR / m.group(1)), content)

    return _QUOTED_INCLUDE.sub(lambda m: expand(PROBES_DIR / m.group(1)), text)


def probe_source(relative: str) -> str:
    """The text of a C file under probes/, with its quoted includes expanded."""
    return expand_includes(f'#include "{relative}"\n')


def cflags(defines: Mapping[str, int | str | None]) -> list[str]:
    """bcc cflags: the probes include path and -D defines (None = defined, no value)."""
    flags = [f"-I{PROBES_DIR}"]
    for name, value in defines.items():
        flags.append(f"-D{name}" if value is None else f"-D{name}={value}")
    return flags


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
