"""Pipeline's own bookkeeping, on records built by hand: what the corpus replay cannot show.

tests/unit/test_pipeline_replay.py feeds real kernel records; here the cases no
recording holds are made on purpose: a sink that raises, a parent /proc no
longer has, the exit of a process never seen, a record of an unknown opcode.
Each loss must be counted, and the other sinks and events must go on.
"""

from typing import Any

from tetra.agent.pipeline import Pipeline
from tetra.decode.process import CloneRecord, ExecRecord, ExitRecord
from tetra.export.event import Event
from tetra.node import BootClock
from tetra.process.cache import ProcessCache

Json = dict[str, Any]


class ListSink:
    def __init__(self) -> None:
        self.events: list[Json] = []

    def emit(self, event: Event) -> None:
        self.events.append(event.data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class BrokenSink(ListSink):
    def emit(self, event: Event) -> None:
        raise RuntimeError("a bug in a sink")


def _exec(pid: int, ppid: int, binary: str, ktime: int = 1_000) -> ExecRecord:
    return ExecRecord(ktime, pid, pid, ppid, 0, 0, 0, 1, binary, "/tmp", [binary], "")


def _pipeline(*sinks: ListSink, proc: dict[int, ExecRecord] | None = None) -> tuple[Pipeline, list[int]]:
    """A pipeline whose /proc is ``proc``; the pids it was asked for."""
    asked: list[int] = []

    def lookup(pid: int) -> ExecRecord | None:
        asked.append(pid)
        return (proc or {}).get(pid)

    cache = ProcessCache("node", BootClock(0), max_size=100, grace=0.0)
    return Pipeline(cache, sinks, BootClock(0), lookup=lookup), asked


def test_a_sink_that_raises_is_counted_and_the_others_still_get_the_event() -> None:
    after = ListSink()
    pipeline, _ = _pipeline(BrokenSink(), after)
    pipeline.handle(_exec(10, 0, "/bin/sh"))
    assert pipeline.stats.sink_errors == 1
    assert [e["process_exec"]["process"]["binary"] for e in after.events] == ["/bin/sh"]
    assert pipeline.stats.events["process_exec"] == 1


def test_a_parent_missing_from_the_cache_is_read_from_proc_first() -> None:
    out = ListSink()
    pipeline, asked = _pipeline(out, proc={20: _exec(20, 0, "/usr/bin/make")})
    pipeline.handle(_exec(21, 20, "/usr/bin/cc", ktime=2_000))
    assert asked == [20]
    parent, child = (e["process_exec"] for e in out.events)
    assert parent["process"]["binary"] == "/usr/bin/make"
    assert child["parent"]["exec_id"] == parent["process"]["exec_id"]
    assert pipeline.stats.parent_unknown == 0


def test_a_parent_proc_does_not_know_either_is_counted_and_the_event_goes_without() -> None:
    out = ListSink()
    pipeline, asked = _pipeline(out)
    pipeline.handle(_exec(31, 30, "/bin/true"))
    pipeline.handle(CloneRecord(3_000, 33, 33, 32, 1))
    assert asked == [30, 32]
    assert pipeline.stats.parent_unknown == 2  # the exec sent without parent, the clone not cached
    [event] = out.events
    assert "parent" not in event["process_exec"]


def test_the_exit_of_a_process_never_seen_is_counted_not_sent() -> None:
    out = ListSink()
    pipeline, _ = _pipeline(out)
    pipeline.handle(ExitRecord(4_000, 40, 40, 0))
    assert (pipeline.stats.exits_unknown, out.events) == (1, [])


def test_exec_then_exit_are_sent_in_order_with_the_exit_code() -> None:
    out = ListSink()
    pipeline, _ = _pipeline(out)
    pipeline.handle(_exec(50, 0, "/bin/false"))
    pipeline.handle(ExitRecord(5_000, 50, 50, 1 << 8))
    assert [next(iter(e)) for e in out.events] == ["process_exec", "process_exit"]
    assert out.events[1]["process_exit"]["status"] == 1


def test_a_record_of_no_known_opcode_is_a_decode_error() -> None:
    out = ListSink()
    pipeline, _ = _pipeline(out)
    pipeline.handle_raw(bytes([0xEE]) + bytes(40))
    pipeline.handle_raw(b"")
    assert (pipeline.stats.records, pipeline.stats.decode_errors, out.events) == (2, 2, [])
