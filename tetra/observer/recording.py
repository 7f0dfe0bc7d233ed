"""Ring recordings: what the pipeline was fed, written down so it can be fed again without root.

``tetra agent --record-ring FILE`` writes every input of its pipeline that did
not come from the pipeline itself; ``tetra replay FILE`` (tetra/app/replay.py)
feeds them to a pipeline built as the agent builds it, so decoders, the process
cache, the export filters and the exporters run as they ran live. The file::

    {"format": "tetra-ring-recording", "version": 1, "node_name": ..., "boot_epoch_ns": ..., ...}\\n
    frame*    u32 little-endian length, then that many bytes: a kind byte and its payload
              b"R" + a ring record, the bytes the ring observer handed to the pipeline
              b"J" + a JSON note, one of
                {"seed": process}                       a process read from /proc at start
                {"lookup": pid, "process": process|null} what /proc answered for a pid the cache lacked
                {"policy": id, "name": ..., "hooks": [hook, ...]}   a policy loaded
                {"unload": id}                          a policy unloaded

A record or seed is written once the pipeline has handled it, so the lookups it
caused come before it: a replay queues them and answers the record's lookups in
order. Policies are written as their hooks' plans (what the decoder reads), not
as YAML: compiling a policy reads tracefs, which only root may. Stack traces are
not recorded (a replay symbolizes none).
"""

import json
import os
import platform
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from typing import IO, Any

from tetra.compiler.argtypes import ArgType, Encoding, Memory
from tetra.compiler.plan import ArgPlan, HookPlan, Mechanism
from tetra.decode.process import ExecRecord
from tetra.errors import RecordingError
from tetra.node import BootClock
from tetra.policy.model import ArgSpec, Location

FORMAT = "tetra-ring-recording"
VERSION = 1
RING = b"R"
NOTE = b"J"
_LENGTH = struct.Struct("<I")
Json = dict[str, Any]
Frame = bytes | Json  # a ring record, or a note
# Where the hooks of a replayed policy "come from": the plan's location is for compile errors only.
_REPLAYED = Location("<recording>", 0, 0, "")


@dataclass(frozen=True)
class Header:
    """The first line: what the pipeline needs besides the records."""

    node_name: str
    boot_epoch_ns: int  # wall-clock ns at boot: event times are this + the kernel's boot-time stamp
    kernel: str = ""
    machine: str = ""

    def clock(self) -> BootClock:
        return BootClock(epoch_ns=self.boot_epoch_ns)


# --- JSON of what the pipeline takes ---------------------------------------------------------------


def process_to_json(rec: ExecRecord) -> Json:
    return asdict(rec)


def process_from_json(obj: Json) -> ExecRecord:
    """Fields a recording lacks (made before they existed) keep their defaults; the context's
    tuples, which JSON made lists, are tuples again."""
    rec = ExecRecord(**{f.name: obj[f.name] for f in fields(ExecRecord) if f.name in obj})
    rec.cred = tuple(rec.cred) if rec.cred is not None else None
    rec.ns = tuple(rec.ns) if rec.ns is not None else None
    return rec


def _atype_to_json(atype: ArgType) -> Json:
    return {"name": atype.name, "encoding": atype.encoding.value, "cast": atype.cast,
            "unsigned": atype.unsigned, "json_key": atype.json_key}


def _atype_from_json(obj: Json) -> ArgType:
    return ArgType(obj["name"], Encoding(obj["encoding"]), obj["cast"], obj["unsigned"], obj["json_key"])


def hook_to_json(hook: HookPlan) -> Json:
    """The parts of a hook's plan that its events are built from (tetra/agent/policy_events.py)."""
    return {
        "hook_id": hook.hook_id, "event": hook.event, "function_name": hook.function_name,
        "mechanism": hook.mechanism.value, "attach": hook.attach, "uprobe_path": hook.uprobe_path,
        "subsys": hook.subsys, "tp_event": hook.tp_event, "message": hook.message, "tags": list(hook.tags),
        "return_arg": _atype_to_json(hook.return_arg) if hook.return_arg is not None else None,
        "args": [{"index": a.spec.index, "label": a.label, "at_return": a.at_return, "type": _atype_to_json(a.atype)}
                 for a in hook.args],
        # the return is a field of the blob, not a number (left out otherwise, as recordings made before it)
        **({"return_ptr": True} if hook.return_ptr is not None else {}),
    }


def hook_from_json(obj: Json) -> HookPlan:
    """A plan that decodes as the recorded one did; what only the compiler reads (C text, selectors) is empty."""
    args = tuple(
        ArgPlan(spec=ArgSpec(a["index"], a["type"]["name"], a["label"], None, a["at_return"], False, None, None, None,
                             _REPLAYED),
                atype=_atype_from_json(a["type"]), value="", memory=Memory.KERNEL, size=None, at_return=a["at_return"])
        for a in obj["args"])
    return_arg = obj["return_arg"]
    return_ptr = None
    if obj.get("return_ptr"):  # recordings made before returned strings have none
        atype = _atype_from_json(return_arg)
        return_ptr = ArgPlan(spec=ArgSpec(0, atype.name, None, None, False, False, None, None, None, _REPLAYED),
                             atype=atype, value="", memory=Memory.KERNEL, size=None, at_return=True)
    return HookPlan(
        hook_id=obj["hook_id"], event=obj["event"], function_name=obj["function_name"],
        mechanism=Mechanism(obj["mechanism"]), attach=obj["attach"], uprobe_path=obj["uprobe_path"], args=args,
        return_attach=None, return_value=None, return_arg=_atype_from_json(return_arg) if return_arg else None,
        selectors=(), message=obj["message"], tags=tuple(obj["tags"]), loc=_REPLAYED, subsys=obj["subsys"],
        tp_event=obj["tp_event"], return_ptr=return_ptr)


# --- writing ---------------------------------------------------------------------------------------


class RingRecorder:
    """Writes a running agent's pipeline inputs to a file (``tetra agent --record-ring``).

    Built before the pipeline runs: ``tee_lookup`` wraps the pipeline's /proc lookups,
    ``tee_ring`` and ``tee_seed`` the two entry points the agent feeds, and as a policy
    listener (PolicyEvents.listeners) it is told of every policy loaded and unloaded.
    """

    def __init__(self, path: str, header: Header) -> None:
        try:
            # 0600 as the export file by default: the records hold every argument it does
            self._file: IO[bytes] = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        except OSError as err:
            raise RecordingError(f"cannot write the recording {path}: {err.strerror}") from err
        meta = {"format": FORMAT, "version": VERSION, **asdict(header)}
        self._file.write(json.dumps(meta).encode() + b"\n")

    @classmethod
    def for_node(cls, path: str, node: str, clock: BootClock) -> "RingRecorder":
        return cls(path, Header(node, clock.epoch_ns, platform.release(), platform.machine()))

    def write(self, frame: Frame) -> None:
        """One frame: bytes are a ring record, a dict a note (tests also build edge cases with it)."""
        if isinstance(frame, bytes):
            kind, payload = RING, frame
        else:
            kind, payload = NOTE, json.dumps(frame).encode()  # json, not orjson: /proc text may hold surrogates
        self._file.write(_LENGTH.pack(len(payload) + 1) + kind + payload)

    def tee_lookup(self, live: Callable[[int], ExecRecord | None]) -> Callable[[int], ExecRecord | None]:
        """Record what /proc answers the pipeline."""
        def lookup(pid: int) -> ExecRecord | None:
            rec = live(pid)
            self.write({"lookup": pid, "process": process_to_json(rec) if rec is not None else None})
            return rec

        return lookup

    def tee_ring(self, handle_raw: Callable[[bytes], None]) -> Callable[[bytes], None]:
        def handle(raw: bytes) -> None:
            try:
                handle_raw(raw)
            finally:
                self.write(raw)

        return handle

    def tee_seed(self, handle: Callable[[object], None]) -> Callable[[ExecRecord], None]:
        def seed(rec: ExecRecord) -> None:
            try:
                handle(rec)
            finally:
                self.write({"seed": process_to_json(rec)})

        return seed

    def policy_added(self, policy_id: int, name: str, hooks: Sequence[HookPlan]) -> None:
        self.write({"policy": policy_id, "name": name, "hooks": [hook_to_json(h) for h in hooks]})

    def policy_removed(self, policy_id: int) -> None:
        self.write({"unload": policy_id})

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# --- reading ---------------------------------------------------------------------------------------

@dataclass
class Recording:
    """An open recording: its header, and its frames read lazily."""

    path: str
    header: Header
    _file: IO[bytes]

    @classmethod
    def open(cls, path: str) -> "Recording":
        try:
            file = open(path, "rb")  # noqa: SIM115  (closed by close())
        except OSError as err:
            raise RecordingError(f"cannot read the recording {path}: {err.strerror}") from err
        line = file.readline()
        try:
            meta = json.loads(line)
            if meta.get("format") != FORMAT:
                raise ValueError("not a tetra ring recording")
            if meta.get("version") != VERSION:
                raise ValueError(f"version {meta.get('version')}, this tetra reads version {VERSION}")
            header = Header(meta["node_name"], int(meta["boot_epoch_ns"]), meta.get("kernel", ""),
                            meta.get("machine", ""))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            file.close()
            raise RecordingError(f"{path}:1: bad recording header: {err}") from None
        return cls(path, header, file)

    def frames(self) -> Iterator[Frame]:
        """Every frame in order; RecordingError names the byte offset of a cut or bad one."""
        file = self._file
        while True:
            at = file.tell()
            prefix = file.read(_LENGTH.size)
            if not prefix:
                return
            length = _LENGTH.unpack(prefix)[0] if len(prefix) == _LENGTH.size else -1
            payload = file.read(length) if length > 0 else b""
            if len(payload) != length or not payload:
                raise RecordingError(f"{self.path}: byte {at}: the recording ends inside a frame")
            kind, body = payload[:1], payload[1:]
            if kind == RING:
                yield body
            elif kind == NOTE:
                try:
                    yield json.loads(body)
                except ValueError as err:
                    raise RecordingError(f"{self.path}: byte {at}: bad note: {err}") from None
            else:
                raise RecordingError(f"{self.path}: byte {at}: unknown frame kind {kind!r}")

    def close(self) -> None:
        self._file.close()
