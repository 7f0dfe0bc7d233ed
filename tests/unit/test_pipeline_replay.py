"""Pipeline, PolicyEvents and decode_args on records a real kernel wrote (tests/replay/corpus).

The corpus gives real exec/clone/exit records and real policy event blobs with
their hooks' plans; the edge cases (a hook or policy no longer loaded, a record
cut short, an unknown opcode, a recording cut inside a frame) are made from
them, and the pipeline is built and fed as ``tetra replay`` builds and feeds it.
"""

import gc
import json
import struct
import weakref
from pathlib import Path
from typing import Any

import pytest

from tetra.agent.config import AgentConfig
from tetra.agent.policy_events import PolicyEvents
from tetra.decode.generic import GenericRecord, decode_args, decode_generic
from tetra.errors import DecodeError, RecordingError
from tetra.export.event import Event
from tetra.observer.recording import Frame, Header, Recording, RingRecorder, hook_from_json, hook_to_json
from tetra.app.replay import Replay
from tetra.wire.constants import Op
from tetra.wire.layouts import GENERIC

CORPUS = Path(__file__).parents[1] / "replay" / "corpus" / "corpus.rec"
Json = dict[str, Any]


class ListSink:
    """Every event the pipeline emits (as dicts), in order."""

    def __init__(self) -> None:
        self.events: list[Json] = []

    def emit(self, event: Event) -> None:
        self.events.append(event.data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    recording = Recording.open(str(CORPUS))
    try:
        return list(recording.frames())
    finally:
        recording.close()


@pytest.fixture(scope="module")
def header() -> Header:
    recording = Recording.open(str(CORPUS))
    recording.close()
    return recording.header


def _policies(frames: list[Frame]) -> dict[int, Json]:
    return {f["policy"]: f for f in frames if isinstance(f, dict) and "policy" in f}


def _generic(frames: list[Frame]) -> list[bytes]:
    return [f for f in frames if isinstance(f, bytes) and f[0] == Op.GENERIC]


def _replay(tmp_path: Path, header: Header, frames: list[Frame]) -> tuple[Replay, ListSink]:
    """``frames`` as a recording, replayed with no export filter into a list."""
    path = tmp_path / "edited.rec"
    recorder = RingRecorder(str(path), header)
    for frame in frames:
        recorder.write(frame)
    recorder.close()
    sink = ListSink()
    run = Replay(AgentConfig(stdout="none", server_addresses=()), str(path), extra_sinks=[sink])
    run.run()
    return run, sink


def _kind(event: Json) -> str:
    return next(k for k in event if k not in ("node_name", "time"))


def test_every_corpus_record_decodes_and_is_emitted_in_order(tmp_path: Path, header: Header,
                                                              frames: list[Frame]) -> None:
    """Parents before children, execs before exits: the cache sees one ordered stream."""
    run, sink = _replay(tmp_path, header, frames)
    stats = run.pipeline.stats
    # parent_unknown is not 0: two clones recorded live had a parent already gone from /proc
    assert stats.decode_errors == stats.policy_unknown == stats.sink_errors == stats.exits_unknown == 0
    assert run.observer.diverged == 0
    seen: set[str] = set()  # exec_ids of the processes exported so far (a fork without exec exports none)

    def known(process: Json) -> bool:
        return process["exec_id"] in seen or process["flags"] == "clone"

    for event in sink.events:
        kind, body = _kind(event), event[_kind(event)]
        if "parent" in body:
            assert known(body["parent"]), f"{kind} of pid {body['process']['pid']}: parent not exported before"
        if kind == "process_exec":
            seen.add(body["process"]["exec_id"])
        else:
            assert known(body["process"]), f"{kind} of pid {body['process']['pid']} before its exec"


def test_a_hook_id_past_the_policy_is_policy_unknown(tmp_path: Path, header: Header, frames: list[Frame]) -> None:
    raw = _generic(frames)[0]
    rec = decode_generic(raw)
    hooks = len(_policies(frames)[rec.policy_id]["hooks"])
    at = _generic_field_offset("hook_id")
    edited = raw[:at] + struct.pack("<I", hooks) + raw[at + 4:]
    run, sink = _replay(tmp_path, header, [f for f in frames if not isinstance(f, bytes) or f[0] != Op.GENERIC]
                        + [edited])
    assert run.pipeline.stats.policy_unknown == 1
    assert not [e for e in sink.events if _kind(e).startswith("process_") and _kind(e) not in
                ("process_exec", "process_exit")]


def test_events_of_an_unloaded_policy_are_policy_unknown(tmp_path: Path, header: Header,
                                                         frames: list[Frame]) -> None:
    """A policy removed while its records are still in the ring: counted, not decoded with stale plans."""
    raw = _generic(frames)[0]
    policy_id = decode_generic(raw).policy_id
    run, _ = _replay(tmp_path, header, [*frames, {"unload": policy_id}, raw])
    assert run.pipeline.stats.policy_unknown == 1


@pytest.mark.parametrize("cut", [1, 20, -1])
def test_a_record_too_short_is_a_decode_error(tmp_path: Path, header: Header, frames: list[Frame],
                                              cut: int) -> None:
    records = [f for f in frames if isinstance(f, bytes)]
    broken = [records[0][:cut], _generic(frames)[0][:cut]]
    run, _ = _replay(tmp_path, header, [*frames, *broken, b"\x7fnot an opcode"])
    assert run.pipeline.stats.decode_errors == 3
    assert run.pipeline.stats.records == len(records) + 3


def test_decode_args_matches_the_registry_and_refuses_a_short_blob(frames: list[Frame]) -> None:
    policies = _policies(frames)
    events = PolicyEvents()
    for policy_id, note in policies.items():
        events.add_hooks(policy_id, note["name"], [hook_from_json(h) for h in note["hooks"]], lambda *_: [])
    decoded = 0
    for raw in _generic(frames):
        rec = decode_generic(raw)
        entry = events.policies[rec.policy_id]
        hook = entry.hooks[rec.hook_id]
        args = decode_args(rec.blob, hook)
        assert args == entry.decoders[rec.hook_id].decode(rec.blob)
        if rec.blob:
            decoded += 1
            with pytest.raises(DecodeError):
                decode_args(rec.blob[:-1] if hook.blob_order[-1].atype.encoding.value == "int" else rec.blob[:3],
                            hook)
    assert decoded > 5


def test_hook_plans_survive_the_recording(frames: list[Frame]) -> None:
    for note in _policies(frames).values():
        for obj in note["hooks"]:
            assert hook_to_json(hook_from_json(obj)) == obj


def test_the_registry_forgets_a_removed_policy(frames: list[Frame]) -> None:
    """Decoders live in the registry entry: nothing else keeps a removed policy's hooks."""
    note = next(iter(_policies(frames).values()))
    hooks = [hook_from_json(h) for h in note["hooks"]]
    told: list[tuple[str, int]] = []

    class Listener:
        def policy_added(self, policy_id: int, name: str, _hooks: Any) -> None:
            told.append(("added", policy_id))

        def policy_removed(self, policy_id: int) -> None:
            told.append(("removed", policy_id))

    events = PolicyEvents()
    events.listeners.append(Listener())
    events.add_hooks(7, note["name"], hooks, lambda *_: [])
    refs = [weakref.ref(h) for h in hooks]
    events.remove(7)
    events.remove(7)  # twice: told once
    del hooks
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)
    assert told == [("added", 7), ("removed", 7)]
    rec = GenericRecord(0, 1, 1, 7, 0, 0, -1, -1, 0, 0, 0, b"")
    assert events.build(rec, None, None, "node", "2026-01-01T00:00:00Z") is None


def test_decode_args_keeps_no_hook_alive(frames: list[Frame]) -> None:
    """decode_args used to cache by id(hook) in a module dict that never emptied."""
    raw = _generic(frames)[0]
    rec = decode_generic(raw)
    hook = hook_from_json(_policies(frames)[rec.policy_id]["hooks"][rec.hook_id])
    decode_args(rec.blob, hook)
    ref = weakref.ref(hook)
    del hook
    gc.collect()
    assert ref() is None


def test_a_lookup_the_recording_does_not_answer_is_counted(tmp_path: Path, header: Header,
                                                           frames: list[Frame]) -> None:
    unasked = {"lookup": 999_999_999, "process": None}
    run, _ = _replay(tmp_path, header, [*frames, unasked, next(f for f in frames if isinstance(f, bytes))])
    assert run.observer.diverged == 1


def test_a_cut_recording_names_where(tmp_path: Path) -> None:
    data = CORPUS.read_bytes()
    cut = tmp_path / "cut.rec"
    cut.write_bytes(data[:-3])
    recording = Recording.open(str(cut))
    with pytest.raises(RecordingError, match=r"cut.rec: byte \d+: the recording ends inside a frame"):
        list(recording.frames())
    recording.close()
    (tmp_path / "bad.rec").write_bytes(b'{"format": "something else"}\n')
    with pytest.raises(RecordingError, match=r"bad.rec:1: bad recording header: not a tetra ring recording"):
        Recording.open(str(tmp_path / "bad.rec"))


def _generic_field_offset(name: str) -> int:
    """Byte offset of a field of struct tetra_generic, from the layout the decoder uses."""
    from tetra.wire import layouts

    return layouts.GENERIC.offsets()[name]


def test_corpus_header(header: Header) -> None:
    assert header.node_name and header.boot_epoch_ns > 0
    assert json.loads(CORPUS.read_bytes().split(b"\n", 1)[0])["format"] == "tetra-ring-recording"


def test_arguments_that_do_not_decode_are_a_counted_decode_error(tmp_path: Path, header: Header,
                                                                 frames: list[Frame]) -> None:
    """A record whose argument lengths disagree with its blob: dropped and counted in decode_errors
    (its arguments are decoded when a sink first asks), the records after it still exported.
    It used to raise out of the pipeline, which ended the agent."""
    policies = _policies(frames)
    for raw in _generic(frames):
        rec = decode_generic(raw)
        hook = hook_from_json(policies[rec.policy_id]["hooks"][rec.hook_id])
        if hook.blob_order and hook.blob_order[0].atype.encoding.value in ("bytes", "path"):
            break
    else:
        pytest.fail("the corpus has no event whose first argument is a string or path")
    at = GENERIC.codec.size
    broken = raw[:at] + struct.pack("<I", len(rec.blob) + 1) + raw[at + 4:]  # one byte more than there is
    frames = [f for f in frames if not (isinstance(f, dict) and "unload" in f)]  # the policies stay loaded
    run, sink = _replay(tmp_path, header, [*frames, broken, raw])
    stats = run.pipeline.stats
    assert stats.decode_errors == 1 and stats.sink_errors == stats.policy_unknown == 0
    (tmp_path / "whole").mkdir()
    _, whole = _replay(tmp_path / "whole", header, [*frames, raw])
    assert sink.events == whole.events  # all but the broken one, the good one after it last
