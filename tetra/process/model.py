"""A process as the cache keeps it, and its Tetragon JSON form."""

from binascii import b2a_base64
from dataclasses import dataclass, field
from typing import Any

from tetra.export.encode import fragment


def make_exec_id(node: str, ktime: int, pid: int) -> str:
    """Tetragon's exec_id: base64 of "<node>:<start time ns>:<pid>"."""
    return b2a_base64(f"{node}:{ktime}:{pid}".encode(), newline=False).decode()


def join_arguments(argv: list[str]) -> str:
    """argv[1:] as one string; an argument with a space is quoted, as Tetragon does."""
    return " ".join(f'"{a}"' if " " in a else a for a in argv[1:])


@dataclass(slots=True)
class Process:
    """One process image (an exec), or a forked copy of its parent (a clone)."""

    exec_id: str
    pid: int
    tid: int
    uid: int
    auid: int
    ktime: int
    start_time: str
    cwd: str
    binary: str
    arguments: str
    flags: str
    docker: str
    cgroup_id: int
    parent_exec_id: str = ""
    refcnt: int = 1
    exited: bool = False
    released_at: float | None = None  # monotonic time refcnt reached 0
    pod: dict[str, Any] | None = None  # Tetragon's pod object, when Kubernetes enrichment knows it
    context: dict[str, Any] | None = None  # cap, ns, process_credentials, when the agent's flags ask (context.py)
    _json: dict[str, Any] | None = field(default=None, repr=False)  # what never changes, tid left out
    _head: bytes | None = field(default=None, repr=False)  # _json encoded, without its closing brace
    _last: tuple[int, int, bytes] = field(default=(-1, -1, b""), repr=False)  # tid, refcnt, json_bytes()

    def _fields(self) -> dict[str, Any]:
        """Tetragon's Process message in its JSON mapping up to tid: empty strings omitted.
        Made once: nothing in it changes once the process is exported."""
        if self._json is None:
            out: dict[str, Any] = {"exec_id": self.exec_id, "pid": self.pid, "uid": self.uid}
            for key in ("cwd", "binary", "arguments", "flags", "start_time"):
                value = getattr(self, key)
                if value:
                    out[key] = value
            out["auid"] = self.auid
            if self.pod:
                out["pod"] = self.pod
            if self.docker:
                out["docker"] = self.docker
            if self.parent_exec_id:
                out["parent_exec_id"] = self.parent_exec_id
            if self.context:
                out.update(self.context)
            self._json = out
        return self._json

    def to_json(self, tid: int | None = None) -> dict[str, Any]:
        """Tetragon's Process message in its JSON mapping; ``tid``: the thread an event came
        from (default: the process's main thread). A new dict each time: refcnt changes."""
        result = dict(self._fields())
        result["tid"] = self.tid if tid is None else tid
        if self.refcnt:
            result["refcnt"] = self.refcnt
        return result

    def json_bytes(self, tid: int | None = None) -> bytes:
        """``fragment(self.to_json(tid))``, byte for byte, from the part encoded once; the last
        one made is kept (a busy thread's events, its children's, all have the same)."""
        tid = self.tid if tid is None else tid
        last_tid, last_refcnt, last = self._last
        if tid == last_tid and self.refcnt == last_refcnt:
            return last
        head = self._head
        if head is None:
            head = self._head = fragment(self._fields())[:-1] + b","
        if self.refcnt:
            out = b'%s"tid":%d,"refcnt":%d}' % (head, tid, self.refcnt)
        else:
            out = b'%s"tid":%d}' % (head, tid)
        self._last = (tid, self.refcnt, out)
        return out
