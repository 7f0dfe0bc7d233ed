"""The bounded hand-off between the agent thread and a sink's writer thread, and the line
sinks behind it: a writer that blocks never blocks put(), and every item is delivered or
counted exactly once."""

import threading
import time
from collections.abc import Callable
from pathlib import Path

from tetra.export.sinks import JsonSink
from tetra.export.encode import encode
from tetra.export.handoff import Handoff
from tetra.export.jsonfile import RotatingFile
from tetra.export.event import Event


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


class GatedWriter:
    """A BatchWriter whose writes wait until ``gate`` is set, as a write(2) to a frozen disk does."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.items: list[int] = []
        self.flushes = 0
        self.closed = False

    def write(self, items: list[int]) -> None:
        self.entered.set()
        self.gate.wait()
        self.items.extend(items)

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True

    def abandon(self) -> int:
        return 0


def test_a_blocked_writer_costs_counted_drops_never_a_wait() -> None:
    writer = GatedWriter()
    handoff: Handoff[int] = Handoff("test", writer, capacity=100, batch=10, interval=0.05)
    handoff.put(0)
    handoff.flush()
    assert writer.entered.wait(5)  # the writer now holds item 0 and waits
    started = time.perf_counter()
    for i in range(1, 1001):
        handoff.put(i)
    assert time.perf_counter() - started < 0.5
    assert (handoff.pending, handoff.stats.dropped_queue_full) == (100, 900)
    writer.gate.set()
    handoff.close()
    assert writer.items == list(range(101))  # in order, none twice
    assert writer.closed and writer.flushes >= 1 and handoff.stats.dropped_at_close == 0


def test_close_gives_up_on_a_stuck_writer_and_counts_what_is_left() -> None:
    writer = GatedWriter()
    handoff: Handoff[int] = Handoff("test", writer, capacity=100, batch=10)
    for i in range(25):
        handoff.put(i)
    assert writer.entered.wait(5)
    started = time.monotonic()
    handoff.close(timeout=0.2)
    assert time.monotonic() - started < 5
    assert handoff.stats.dropped_at_close == 15  # the 10 it holds are the writer's to count (abandon)
    writer.gate.set()


def test_the_json_sink_writes_the_encoded_lines_and_reopens_on_its_own_thread(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    sink = JsonSink(RotatingFile(str(path)))
    events = [{"process_exec": {"process": {"pid": i, "binary": "/bin/true"}}, "node_name": "n",
               "time": "2026-12-01T00:00:00Z"} for i in range(2000)]
    for event in events[:1000]:
        sink.emit(Event(event))
    sink.flush()
    _wait_until(lambda: path.exists() and path.stat().st_size == sum(len(encode(e)) for e in events[:1000]))
    path.rename(tmp_path / "events.log.1")  # as logrotate does, then SIGHUP
    sink.reopen("SIGHUP")
    _wait_until(path.exists)
    for event in events[1000:]:
        sink.emit(Event(event))
    sink.close()
    written = (tmp_path / "events.log.1").read_bytes() + path.read_bytes()
    assert written == b"".join(encode(e) for e in events)  # byte for byte, each line once
    assert sink.state().counters["reopens"] == 1 and sink.lines_dropped == 0
