"""A process as the cache keeps it, and its Tetragon JSON form."""

import base64
from dataclasses import dataclass, field
from typing import Any


def make_exec_id(node: str, ktime: int, pid: int) -> str:
    """Tetragon's exec_id: base64 of "<node>:<start time ns>:<pid>"."""
    return base64.b64encode(f"{node}:{ktime}:{pid}".encode()).decode()


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
    _json: dict[str, Any] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """Tetragon's Process message in its JSON mapping: empty strings omitted."""
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
            out["tid"] = self.tid
            self._json = out
        result = dict(self._json)
        if self.refcnt:
            result["refcnt"] = self.refcnt
        return result
