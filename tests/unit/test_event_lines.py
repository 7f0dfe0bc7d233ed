"""An event's two forms agree: the JSON line put together from encoded parts (what the JSON file,
stdout and OTLP write) is ``encode(event.data)`` (what a dict consumer sees, encoded) byte for byte.

On every event of the recorded corpus, through the agent's pipeline, and on the cases the corpus
may lack: a pod, a container, a process the cache does not know, a released process (refcnt 0),
exits with a signal or a status, and strings orjson refuses (lone surrogates), which both forms
must scrub alike.
"""

from pathlib import Path

import pytest

from tetra.agent.config import AgentConfig
from tetra.decode.process import ExecRecord
from tetra.export.encode import encode
from tetra.export.event import Event
from tetra.node import BootClock
from tetra.app.replay import Replay
from tetra.process.cache import ProcessCache
from tetra.process.events import ProcessEvent, exec_event, exit_event

CORPUS = Path(__file__).parents[1] / "replay" / "corpus" / "corpus.rec"
CID = "0123456789abcdef" * 4


class LinesAndData:
    """Each event's line, made first (so from its parts, not from its dict), then its data."""

    def __init__(self) -> None:
        self.pairs: list[tuple[bytes, bytes]] = []

    def emit(self, event: Event) -> None:
        line = event.line
        self.pairs.append((line, encode(event.data)))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_every_corpus_event_has_the_same_line_both_ways() -> None:
    sink = LinesAndData()
    Replay(AgentConfig(stdout="none", server_addresses=()), str(CORPUS), extra_sinks=[sink]).run()
    assert len(sink.pairs) > 40
    for number, (line, from_dict) in enumerate(sink.pairs, 1):
        assert line == from_dict, f"event {number}"


def _exec(pid: int, ppid: int, ktime: int, argv: list[str], cgroup: str = "") -> ExecRecord:
    return ExecRecord(ktime, pid, pid, ppid, 0, 0, 1000, 1, argv[0], "/tmp", argv, cgroup, ["execve"])


@pytest.fixture
def cache() -> ProcessCache:
    return ProcessCache("node\u00e9\"1", BootClock(0), max_size=100, grace=0.0,
                        enrich=lambda proc: {"namespace": "ns", "name": "pod-\u2603", "container": {"id": proc.docker}}
                        if proc.docker else None)


def _same(event: Event) -> None:
    line = event.line
    assert line == encode(event.data)
    assert line.endswith(b"\n") and line.count(b"\n") == 1


def test_exec_and_exit_lines_match_their_dicts(cache: ProcessCache) -> None:
    parent = cache.add_exec(_exec(10, 1, 1_000, ["/bin/sh", "-c", "a b"]))
    child = cache.add_exec(_exec(11, 10, 2_000_500, ["/bin/x", "caf\udce9", "\ud800"], f"docker-{CID}.scope"))
    assert child.pod is not None and child.docker
    _same(exec_event(parent, None, cache.node, cache.clock.rfc3339(1_000)))
    _same(exec_event(child, parent, cache.node, cache.clock.rfc3339(2_000_500)))
    for code in (0, 9, 3 << 8, (1 << 8) | 0x80 | 15):
        _same(exit_event(child, parent, code, cache.node, cache.clock.rfc3339(3_000_000_000)))
    cache.mark_exited(11)
    assert child.refcnt == 0
    _same(exit_event(child, parent, 0, cache.node, cache.clock.rfc3339(4_000_000_000)))


def test_policy_event_lines_match_their_dicts(cache: ProcessCache) -> None:
    proc = cache.add_exec(_exec(20, 1, 5_000, ["/usr/bin/cat", "/etc/shadow"]))
    tail = {"function_name": "security_file_open", "args": [{"file_arg": {"path": "/etc/\udcff"}},
                                                            {"bytes_arg": b"\x00\xff"}, {"long_arg": str(2**63)}],
            "action": "KPROBE_ACTION_POST", "policy_name": "p", "tags": ["t"]}
    _same(ProcessEvent("process_kprobe", proc, 20, 21, None, tail, cache.node, "2026-01-01T00:00:00Z"))
    _same(ProcessEvent("process_kprobe", None, 99, 100, None, tail, cache.node, "2026-01-01T00:00:00.5Z"))
