"""A JSON export file whose disk stalls for 10 s at 20,000 events/s: 0 kernel loss, exporter drops counted.

The scenario is benchmarks/disk_stall.py's (the same run, measured there): the
export file on its own ext4 file system, frozen with fsfreeze for 10 s while a
paced driver opens a file 20,000 times a second under an openat policy. Every
write(2) to the file blocks in the kernel meanwhile; the agent must go on
reading the ring buffer, answer `tetra status`, count what its exporter could
not keep, and write the later events once the disk thaws.
"""

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from disk_stall import scenario  # noqa: E402

pytestmark = pytest.mark.usefixtures("root")


def test_a_stalled_disk_costs_exporter_drops_not_kernel_loss(tmp_path: Path) -> None:
    if not shutil.which("fsfreeze") or not Path("/dev/loop-control").exists():
        pytest.skip("needs fsfreeze and loop devices")
    result = scenario(tmp_path, rate=20_000, before_s=2, stall_s=10, after_s=2)

    assert result.status_answered == result.status_asked >= 3, \
        f"the agent did not answer `tetra status` during the stall ({result.status_answered}/{result.status_asked})"
    # 0 in the benchmark on a quiet machine (benchmarks/results/disk_stall-latest.json); a test
    # shares its 2 cores with whatever else runs, so it allows a trace (before: 56% lost).
    assert result.kernel_lost <= result.kernel_sent // 1000, \
        f"{result.kernel} lost in the kernel; by the status during the stall: {result.kernel_lost_during_stall}"
    assert result.achieved_per_s > 15_000  # the load was there
    assert result.marker_found, "an event made after the thaw did not reach the file"
    # every event the agent built is in the file or counted as dropped by the exporter
    assert result.file_lines + result.export_lines_dropped == result.events
    assert result.exporter_counters.get("dropped_queue_full", 0) > 0 or result.export_lines_dropped == 0
