"""The compiled line path (tetra/_speed) writes what the pure-Python path writes, byte for byte.

Both paths replay the same records: the recorded corpus (exec, clone, exit,
kprobe, tracepoint and uprobe records a real kernel wrote) without export
filters, so that the compiled path takes its policy events; and the corpus
followed by records built here from the wire layouts (tetra/wire/layouts.py)
for what this kernel cannot produce (LSM hooks: BPF LSM does not load here,
/work/shared/KERNEL.md) and for the edges of the encoders: every integer width
and sign, 64-bit integers as strings, return values, escapes, non-UTF-8 text,
monitor and protected flags, unknown actions, time stamps whose digits end in
zeros, and the records the compiled path must hand back (unknown process,
stack traces, a hook with argument types it has no encoder for, a policy that
is not loaded, a short record).
"""

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tetra._speed import PURE_PYTHON_ENV, lines_module
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from tetra.agent.config import AgentConfig
from tetra.export.metrics import SnapshotCollector
from tetra.status.model import AgentStatus
from tetra.export.handoff import Handoff
from tetra.observer.recording import Header, Recording, RingRecorder
from tetra.app.replay import Replay
from tetra.wire import layouts
from tetra.wire.constants import ARG_TRUNCATED, GEN_MONITOR, GEN_PROTECTED, GEN_RETURN, Op

CORPUS = Path(__file__).parents[1] / "replay" / "corpus" / "corpus.rec"
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")


def _compiled_or_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PURE_PYTHON_ENV, raising=False)
    if lines_module() is None:
        pytest.skip("tetra/_speed is not built (scripts/build_speed.sh)")


def _replay(path: Path, out: Path, monkeypatch: pytest.MonkeyPatch, *, pure: bool,
            flags: dict[str, Any] | None = None) -> tuple[bytes, dict[str, Any], int]:
    """(the JSON lines, the pipeline's counters, lines the compiled path made)."""
    monkeypatch.setenv(PURE_PYTHON_ENV, "1" if pure else "0")
    run = Replay(AgentConfig(stdout="none", server_addresses=(), export_filename=str(out), **(flags or {})),
                 str(path))
    assert (run.pipeline.line_path is None) == pure
    summary = run.run()
    stats = run.pipeline.stats
    counters = {**summary.as_dict(), "actions": dict(stats.actions), "latency": sum(stats.latency.counts)}
    made = counters["pipeline"].pop("compiled_lines")
    return out.read_bytes(), counters, made


def _both_ways(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               flags: dict[str, Any] | None = None) -> int:
    """Replays ``path`` both ways, checks lines and counters are the same; returns the lines made compiled."""
    _compiled_or_skip(monkeypatch)
    pure, pure_counts, _ = _replay(path, tmp_path / "pure.json", monkeypatch, pure=True, flags=flags)
    compiled, compiled_counts, made = _replay(path, tmp_path / "compiled.json", monkeypatch, pure=False,
                                              flags=flags)
    assert pure.count(b"\n") > 0
    for number, (got, want) in enumerate(zip(compiled.splitlines(), pure.splitlines(), strict=True), 1):
        assert got == want, f"line {number} differs"
    assert compiled_counts == pure_counts
    return made


def test_corpus_lines_are_the_same_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _both_ways(CORPUS, tmp_path, monkeypatch) == _MADE_FROM_CORPUS


# The corpus's kprobe, tracepoint and uprobe events but those with a sockaddr, sock, file or bytes
# argument (the Python path's)
_MADE_FROM_CORPUS = 9


def test_with_export_filters_every_record_takes_the_python_path(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    made = _both_ways(CORPUS, tmp_path, monkeypatch, flags={"export_denylist": '{"pid": [1]}'})
    assert made == 0



def test_with_a_cluster_name_every_line_carries_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--cluster-name splices the field into each line after it is made: the compiled path, which
    writes finished lines, leaves such an export to the Python path rather than drop the field."""
    made = _both_ways(CORPUS, tmp_path, monkeypatch, flags={"cluster_name": "prod-eu"})
    assert made == 0
    lines = (tmp_path / "compiled.json").read_bytes().splitlines()
    assert lines and all(line.endswith(b',"cluster_name":"prod-eu"}') for line in lines)

# --- records built from the wire layouts --------------------------------------------------------------------

def _type(name: str, encoding: str, cast: str, json_key: str, unsigned: bool = False) -> dict[str, Any]:
    return {"name": name, "encoding": encoding, "cast": cast, "unsigned": unsigned, "json_key": json_key}


def _arg(index: int, atype: dict[str, Any], label: str | None = None) -> dict[str, Any]:
    return {"index": index, "label": label, "at_return": False, "type": atype}


STRING = _type("string", "bytes", "__s64", "string_arg")
INTS = [_type("uint8", "int", "__u8", "uint_arg", True), _type("int16", "int", "__s16", "int_arg"),
        _type("uint32", "int", "__u32", "uint_arg", True), _type("int", "int", "__s32", "int_arg"),
        _type("auto", "int", "__s64", "long_arg"), _type("size_t", "int", "__u64", "size_arg", True),
        _type("uint64", "int", "__u64", "uint_arg", True)]
LSM = {"hook_id": 0, "event": "process_lsm", "function_name": "file_open", "mechanism": "lsm",
       "attach": "file_open", "uprobe_path": None, "subsys": "", "tp_event": "",
       "message": 'opened "it" \\ here', "tags": ["lsm", "é"], "return_arg": _type("int", "int", "__s32", "int_arg"),
       "args": [_arg(0, STRING, "path"), *(_arg(i + 1, t) for i, t in enumerate(INTS)), _arg(9, STRING)]}
TRACEPOINT = {**LSM, "hook_id": 1, "event": "process_tracepoint", "function_name": "syscalls/sys_enter_openat",
              "mechanism": "tracepoint", "attach": "syscalls:sys_enter_openat", "subsys": "syscalls",
              "tp_event": "sys_enter_openat", "message": None, "tags": [],
              "return_arg": _type("auto", "int", "__s64", "long_arg"), "args": [_arg(1, STRING)]}
FILE = {**TRACEPOINT, "hook_id": 2, "args": [_arg(0, _type("file", "path", "__s64", "file_arg"))]}
POLICY = 77


def _lsm_blob(path: bytes, ints: list[int], last: bytes, head_flags: int = 0) -> bytes:
    return (_U32.pack(len(path) | head_flags) + path + b"".join(_U64.pack(v % 2**64) for v in ints)
            + _U32.pack(len(last)) + last)


def _record(ktime: int, pid: int, tid: int, hook_id: int, blob: bytes, *, action: int = 0, flags: int = 0,
            ret: int = 0, kstack: int = -1, args_len: int | None = None) -> bytes:
    size = layouts.GENERIC.size + len(blob)
    return layouts.GENERIC.codec.pack(int(Op.GENERIC), 0, 0, size, ktime, pid, tid, POLICY, hook_id, action,
                                      kstack, -1, len(blob) if args_len is None else args_len, 0, flags,
                                      ret) + blob


def _live_pid(frames: list[Any]) -> int:
    """A process the corpus seeded from /proc that is still there when it ends (it has a parent)."""
    exited = {_U32.unpack_from(f, 16)[0] for f in frames if isinstance(f, bytes) and f[0] == Op.EXIT}
    seeds = [f["seed"] for f in frames if isinstance(f, dict) and "seed" in f]
    return next(s["pid"] for s in seeds if s["pid"] not in exited and s["ppid"] > 1)


def _records(pid: int, start: int, epoch_ns: int) -> Iterator[bytes]:
    ints = [0x1FF, -2, -1, -5, -(2**40), 2**64 - 1, 2**63 + 7]
    yield _record(start, pid, pid, 0, _lsm_blob(b"/etc/passwd", ints, b"plain"))
    yield _record(start + 1, pid, pid + 1, 0, _lsm_blob(b'q"uote\\back\tslash\n', [1] * 7, "café".encode()),
                  flags=GEN_MONITOR | GEN_RETURN, ret=-13, action=1)
    yield _record(start + 2, pid, pid, 0, _lsm_blob(b"\xff\xfe bad utf-8 \x7f", [2] * 7, b"", ARG_TRUNCATED),
                  flags=GEN_PROTECTED, action=999)
    second = -(-(epoch_ns + start) // 1_000_000_000) * 1_000_000_000 - epoch_ns  # a whole second of wall time
    for ktime in (second, second + 500_000_000, second + 123_456_000, second + 5):
        yield _record(ktime, pid, pid, 1, _U32.pack(3) + b"abc", flags=GEN_RETURN, ret=-(2**63))
    yield _record(start + 3, 999_999, 999_999, 1, _U32.pack(1) + b"x")  # a process nobody knows
    yield _record(start + 4, pid, pid, 1, _U32.pack(1) + b"x", kstack=3)  # stack traces: Python's
    yield _record(start + 5, pid, pid, 2, _U32.pack(4) + b"/tmp")  # a file argument: Python's
    yield _record(start + 6, pid, pid, 9, b"")  # no such hook
    yield _record(start + 7, pid, pid, 1, _U32.pack(50) + b"short")  # a string past the record's end
    yield _record(start + 8, pid, pid, 1, _U32.pack(1) + b"y", args_len=200)  # more args announced than sent
    yield _record(start + 9, pid, pid, 0, _lsm_blob(b"/etc/shadow", ints, b"end"))


def _built(tmp_path: Path) -> Path:
    """The corpus, then the policy and records above."""
    corpus = Recording.open(str(CORPUS))
    frames = list(corpus.frames())
    header: Header = corpus.header
    corpus.close()
    path = tmp_path / "built.rec"
    recorder = RingRecorder(str(path), header)
    for frame in frames:
        recorder.write(frame)
    recorder.write({"policy": POLICY, "name": "built", "hooks": [LSM, TRACEPOINT, FILE]})
    last = max(struct.unpack_from("<Q", f, 8)[0] for f in frames if isinstance(f, bytes))
    for record in _records(_live_pid(frames), last + 1_000, header.boot_epoch_ns):
        recorder.write(record)
    recorder.close()
    return path


def test_built_records_are_the_same_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = _built(tmp_path)
    made = _both_ways(built, tmp_path, monkeypatch)
    assert made == _MADE_FROM_CORPUS + 3 + 4 + 1  # the LSM events, the time stamps, the last one
    lines = (tmp_path / "compiled.json").read_bytes().splitlines()
    lsm = [line for line in lines if line.startswith(b'{"process_lsm"')]
    assert len(lsm) == 4
    assert b'"uint_arg":255' in lsm[0] and b'{"size_arg":"18446744073709551615"}' in lsm[0]
    assert b'"time":"' in lsm[0] and b'"policy_mode":"monitor"' in lsm[1] and b'"return":{"int_arg":-13}' in lsm[1]
    assert b'"KPROBE_ACTION_UNKNOWN"' in lsm[2] and b'"protected_process":true' in lsm[2]
    assert rb'"string_arg":"\\xff\\xfe bad utf-8 ' in lsm[2]


def _action_samples(path: Path, out: Path, monkeypatch: pytest.MonkeyPatch, *, pure: bool) -> list[str]:
    """The ``tetra_policy_actions_total`` samples /metrics serves after replaying ``path`` one way."""
    monkeypatch.setenv(PURE_PYTHON_ENV, "1" if pure else "0")
    run = Replay(AgentConfig(stdout="none", server_addresses=(), export_filename=str(out)), str(path))
    run.run()
    status = AgentStatus(node_name="n", uptime_seconds=0.0, sensors=(), policies=(), events={}, rates={},
                         pipeline={}, kernel=(), ringbuf_received=0, cache_size=0, cache_capacity=0,
                         cache_evictions=0, exporters=(), actions=dict(run.pipeline.stats.actions))
    collector = SnapshotCollector()
    collector.update(status)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return [line for line in generate_latest(registry).decode().splitlines()
            if line.startswith("tetra_policy_actions_total{")]


def test_action_counters_are_the_same_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled path counts its events per hook and mode, the Python path per event: the samples
    must not tell them apart, and a monitored action is not counted with one taken."""
    _compiled_or_skip(monkeypatch)
    built = _built(tmp_path)
    pure = _action_samples(built, tmp_path / "pure.json", monkeypatch, pure=True)
    compiled = _action_samples(built, tmp_path / "compiled.json", monkeypatch, pure=False)
    assert compiled == pure
    # the corpus's Sigkill of a policy in monitoring mode and that of one enforcing, as the kernel flagged them
    for line in ('tetra_policy_actions_total{action="KPROBE_ACTION_SIGKILL",mode="monitor",policy="monitor-kill"} 1.0',
                 'tetra_policy_actions_total{action="KPROBE_ACTION_SIGKILL",mode="enforce",policy="kill-on-open"} 1.0',
                 # the built LSM records: action 1 under GEN_MONITOR, an unknown one (GEN_PROTECTED: enforcing)
                 'tetra_policy_actions_total{action="KPROBE_ACTION_NOPOST",mode="monitor",policy="built"} 1.0',
                 'tetra_policy_actions_total{action="KPROBE_ACTION_UNKNOWN",mode="enforce",policy="built"} 1.0'):
        assert line in pure, line


def test_handoff_put_all_counts_what_does_not_fit() -> None:
    class Keep:
        def __init__(self) -> None:
            self.lines: list[bytes] = []

        def write(self, items: list[bytes]) -> None:
            self.lines += items

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

        def abandon(self) -> int:
            return 0

    keep = Keep()
    # the writer takes nothing before close: no batch of 100, no flush, an interval of a minute
    handoff: Handoff[bytes] = Handoff("t", keep, capacity=3, batch=100, interval=60)
    handoff.put_all([b"a", b"b"])
    handoff.put_all([b"c", b"d", b"e"])
    handoff.close()
    assert keep.lines[:3] == [b"a", b"b", b"c"]
    assert handoff.stats.dropped_queue_full == 2
