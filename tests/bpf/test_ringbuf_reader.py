"""The ring buffer read from its memory (tetra/observer/ringbuf.py, and the compiled
reader of tetra/_speed/lines.pyx), on a ring small enough to wrap around its end
every few records: every record the kernel says it sent arrives once, whole, and
decodes."""

import subprocess

import pytest

from tetra._speed import PURE_PYTHON_ENV, lines_module
from tetra.agent.line_path import LinePath
from tetra.agent.pipeline import Pipeline
from tetra.decode import process as _process  # noqa: F401  (registers decoders)
from tetra.decode.registry import decode
from tetra.kernel.btf import Btf
from tetra.kernel.offsets import resolve_offsets
from tetra.node import BootClock
from tetra.observer.ringbuf import RingBufferObserver
from tetra.process.cache import ProcessCache
from tetra.sensors.process import ProcessSensor

pytestmark = pytest.mark.usefixtures("root")


def _compiled_reader(monkeypatch: pytest.MonkeyPatch) -> LinePath:
    """The compiled reader of a pipeline with no sinks and no policies: every process record
    is the Python path's, handed to the observer's ``on_record`` as the Python reader hands it."""
    monkeypatch.delenv(PURE_PYTHON_ENV, raising=False)
    if lines_module() is None:
        pytest.skip("tetra/_speed is not built (scripts/build_speed.sh)")
    clock = BootClock()
    line_path = Pipeline(ProcessCache("node", clock), [], clock).line_path
    assert line_path is not None
    return line_path


@pytest.mark.parametrize("reader", ["python", "compiled"])
def test_records_arrive_whole_across_many_wraps(reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = _compiled_reader(monkeypatch) if reader == "compiled" else None
    sensor = ProcessSensor(resolve_offsets(Btf.load()), ringbuf_pages=2)  # 8 KiB: an exec record is up to 4
    bpf = sensor.load()
    try:
        records: list[bytes] = []
        observer = RingBufferObserver(bpf, "tetra_events", records.append, batch)
        before = sensor.kernel_counts()
        for i in range(300):
            subprocess.run(["/usr/bin/true", "x" * (i * 7 % 1500)], check=True)
            observer.drain()
        observer.drain()
        after = sensor.kernel_counts()
        sent = after.total_sent - before.total_sent
        lost = after.total_lost - before.total_lost
        assert lost == 0  # drained after each process: the ring never filled
        assert sent >= 900  # clone, exec and exit of each, at least
        # processes of other sessions run too: what matters is that what was sent arrived, whole
        assert observer.received == len(records) >= sent
        decoded = [decode(r) for r in records]
        assert sum(1 for d in decoded if type(d).__name__ == "ExecRecord") >= 300
    finally:
        observer.close()
        sensor.close()
