"""The pipeline's events in Tetragon's JSON shape: process_exec, process_exit and the policy events.

Every one of them is ``{kind: {"process": ..., "parent": ..., <the rest>}, "node_name": ..., "time": ...}``.
The process and its parent are most of the bytes and the same for many events
(a parent for all its children's execs and exits, a process for all its
policy events), so the line is put together from each process's JSON encoded
once (Process.json_bytes) and the rest (``tail``, a small dict) encoded per
event; the dict is built only for a sink that reads it.
"""

import signal
from typing import Any

from tetra.export.encode import fragment
from tetra.export.event import Event
from tetra.process.model import Process
from tetra.wire.events import PROCESS_EXEC, PROCESS_EXIT

Json = dict[str, Any]
_OPENINGS: dict[str, bytes] = {}  # event kind -> b'{"kind":{"process":'
_CLOSINGS: dict[str, bytes] = {}  # node name -> b'},"node_name":"node","time":"'


def opening(kind: str) -> bytes:
    """What an event's line starts with, up to its process (shared with tetra/agent/line_path.py)."""
    made = _OPENINGS.get(kind)
    if made is None:
        made = _OPENINGS[kind] = b'{%s:{"process":' % fragment(kind)
    return made


def closing(node: str) -> bytes:
    """What follows an event's body, up to its time's digits."""
    made = _CLOSINGS.get(node)
    if made is None:
        made = _CLOSINGS[node] = b'},"node_name":%s,"time":"' % fragment(node)
    return made


class ProcessEvent(Event):
    """One event of ``process`` (None: a pid the cache does not know, shown as pid and tid)."""

    __slots__ = ("kind", "process", "pid", "tid", "parent", "tail", "node", "time", "ancestors")

    def __init__(self, kind: str, process: Process | None, pid: int, tid: int, parent: Process | None,
                 tail: Json, node: str, time: str) -> None:
        """``tail``: the body's fields after process and parent; ``time``: RFC 3339 (BootClock)."""
        self._data = None
        self._line = None
        self.kind = kind
        self.process = process
        self.pid = pid
        self.tid = tid
        self.parent = parent
        self.tail = tail
        self.node = node
        self.time = time
        # --enable-ancestors: the processes above the parent, nearest first (Pipeline._add_ancestors);
        # last in the body, each from its process's JSON encoded once
        self.ancestors: tuple[Process, ...] = ()

    def _build(self) -> Json:
        process = self.process
        body: Json = {"process": process.to_json(self.tid) if process is not None
                      else {"pid": self.pid, "tid": self.tid}}
        if self.parent is not None:
            body["parent"] = self.parent.to_json()
        body.update(self._tail())
        if self.ancestors:  # protojson leaves out empty lists
            body["ancestors"] = [ancestor.to_json() for ancestor in self.ancestors]
        return {self.kind: body, "node_name": self.node, "time": self.time}

    def _tail(self) -> Json:
        """The body's fields after process and parent (a subclass may make them when asked)."""
        return self.tail

    def _tail_json(self) -> bytes:
        """``_tail()`` as JSON members, each after a comma (b"" if none)."""
        return b"," + fragment(self.tail)[1:-1] if self.tail else b""

    def _encode(self) -> bytes:
        process, parent = self.process, self.parent
        # The time is BootClock's digits, "-", ":", "T", "." and "Z": nothing to escape.
        return b"".join((
            _OPENINGS.get(self.kind) or opening(self.kind),
            process.json_bytes(self.tid) if process is not None else b'{"pid":%d,"tid":%d}' % (self.pid, self.tid),
            b"" if parent is None else b',"parent":',
            b"" if parent is None else parent.json_bytes(),
            self._tail_json(),
            b',"ancestors":[%s]' % b",".join([a.json_bytes() for a in self.ancestors]) if self.ancestors else b"",
            _CLOSINGS.get(self.node) or closing(self.node), self.time.encode(), b'"}\n'))


def exec_event(proc: Process, parent: Process | None, node: str, time: str) -> ProcessEvent:
    return ProcessEvent(PROCESS_EXEC.key, proc, proc.pid, proc.tid, parent, {}, node, time)


def signal_name(number: int) -> str:
    """"SIGKILL" for 9; numbers without a name stay numeric (e.g. "SIG64")."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def exit_event(proc: Process, parent: Process | None, exit_code: int, node: str, time: str) -> ProcessEvent:
    """exit_code is the kernel's wait status: signal in the low 7 bits, status above.

    As in Tetragon, ``status`` appears only when non-zero and ``signal`` only on a
    death by signal.
    """
    tail: Json = {}
    sig = exit_code & 0x7F
    if sig:
        tail["signal"] = signal_name(sig)
    status = (exit_code >> 8) & 0xFF
    if status:
        tail["status"] = status
    tail["time"] = time
    return ProcessEvent(PROCESS_EXIT.key, proc, proc.pid, proc.tid, parent, tail, node, time)
