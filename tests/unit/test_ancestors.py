"""--enable-ancestors: the flag's words, the cache keeping a live process's ancestors, and
the ``ancestors`` list on the events of the chosen types."""

import orjson
import pytest

from tetra.agent.ancestors import ancestor_kinds, parse_ancestor_types
from tetra.agent.pipeline import Pipeline
from tetra.decode.process import ExecRecord, ExitRecord
from tetra.export.event import Event
from tetra.node import BootClock
from tetra.process.cache import MAX_ANCESTORS, ProcessCache


def exec_rec(pid: int, ppid: int, ktime: int) -> ExecRecord:
    return ExecRecord(ktime, pid, pid, ppid, 0, 0, 0, 1, f"/bin/p{pid}", "/", [f"p{pid}"], "", ["execve"])


class Collect:
    """A sink keeping each event's line and dict (the two must agree)."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.dicts: list[dict[str, object]] = []

    def emit(self, event: Event) -> None:
        self.lines.append(event.line)
        self.dicts.append(event.data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_flag_words() -> None:
    assert parse_ancestor_types(["base,kprobe", "lsm"]) == ("base", "kprobe", "lsm")
    assert ancestor_kinds(("base", "tracepoint")) == {"process_exec", "process_exit", "process_tracepoint"}
    assert parse_ancestor_types([]) == ()
    assert ancestor_kinds(("base", "usdt")) == {"process_exec", "process_exit", "process_usdt"}
    with pytest.raises(ValueError, match="unknown event type 'loader'"):
        parse_ancestor_types(["base,loader"])
    with pytest.raises(ValueError, match="'base' is required"):
        parse_ancestor_types(["kprobe"])


def tree(hold: bool) -> ProcessCache:
    """init(1) -> a(10) -> b(11) -> c(12)."""
    cache = ProcessCache("n", BootClock(), grace=0.0)
    cache.hold_ancestors = hold
    for pid, ppid in ((1, 0), (10, 1), (11, 10), (12, 11)):
        cache.add_exec(exec_rec(pid, ppid, pid))
    return cache


def test_ancestors_are_listed_nearest_first_up_to_init() -> None:
    cache = tree(hold=True)
    c = cache.by_pid(12)
    assert c is not None
    assert [p.pid for p in cache.ancestors(cache.parent_of(c))] == [10, 1]
    assert cache.ancestors(None) == []


def test_live_descendant_keeps_every_ancestor() -> None:
    cache = tree(hold=True)
    a, b = cache.by_pid(10), cache.by_pid(11)
    cache.mark_exited(11)
    cache.mark_exited(10)
    cache.collect(now=1e12)
    assert cache.get(a.exec_id) is a and cache.get(b.exec_id) is b  # c still lives
    c = cache.by_pid(12)
    assert [p.pid for p in cache.ancestors(cache.parent_of(c))] == [10, 1]
    cache.mark_exited(12)  # the last descendant: the chain lets go, one link after the other
    assert (a.refcnt, b.refcnt) == (0, 0)
    cache.collect(now=1e12)
    assert cache.get(a.exec_id) is None and cache.get(b.exec_id) is None
    assert cache.by_pid(1).refcnt == 1  # init: only its own reference left


def test_without_ancestors_a_grandparent_goes_while_the_grandchild_lives() -> None:
    """The regression the hold prevents: Tetragon's plain counting frees a, whose child b exited."""
    cache = tree(hold=False)
    a = cache.by_pid(10)
    cache.mark_exited(11)
    cache.mark_exited(10)
    cache.collect(now=1e12)
    assert cache.get(a.exec_id) is None


def test_events_of_chosen_types_list_ancestors() -> None:
    cache = ProcessCache("n", BootClock())
    cache.hold_ancestors = True
    sink = Collect()
    pipeline = Pipeline(cache, [sink], BootClock(), lookup=lambda pid: None)
    pipeline.ancestor_kinds = ancestor_kinds(("base",))
    for pid, ppid in ((1, 0), (10, 1), (11, 10), (12, 11)):
        pipeline.handle(exec_rec(pid, ppid, pid))
    pipeline.handle(ExitRecord(20, 12, 12, 0))
    events = [orjson.loads(line) for line in sink.lines]
    c_exec, c_exit = events[3]["process_exec"], events[4]["process_exit"]
    assert c_exec["parent"]["pid"] == 11
    assert [p["pid"] for p in c_exec["ancestors"]] == [p["pid"] for p in c_exit["ancestors"]] == [10, 1]
    assert c_exec["ancestors"][0] == orjson.loads(cache.by_pid(10).json_bytes())
    assert "ancestors" not in events[1]["process_exec"]  # a's parent is init: nothing above it
    assert events == sink.dicts  # the line and the dict say the same


def test_types_not_chosen_have_no_ancestors() -> None:
    cache = ProcessCache("n", BootClock())
    sink = Collect()
    pipeline = Pipeline(cache, [sink], BootClock(), lookup=lambda pid: None)
    for pid, ppid in ((1, 0), (10, 1), (11, 10)):
        pipeline.handle(exec_rec(pid, ppid, pid))
    assert all(b"ancestors" not in line for line in sink.lines)


def test_a_long_chain_of_exited_processes_is_released_without_recursion() -> None:
    cache = ProcessCache("n", BootClock(), grace=0.0, max_size=10_000)
    cache.hold_ancestors = True
    depth = 3000  # deeper than Python's recursion limit
    for pid in range(10, 10 + depth):
        cache.add_exec(exec_rec(pid, pid - 1, pid))
    for pid in range(10, 10 + depth - 1):
        cache.mark_exited(pid)
    leaf = cache.by_pid(10 + depth - 1)
    assert len(cache) == depth  # all kept for the live leaf
    assert len(cache.ancestors(cache.parent_of(leaf))) == MAX_ANCESTORS  # the walk is bounded
    cache.mark_exited(10 + depth - 1)
    assert cache.collect(now=1e12) == depth
