"""The process cache: exec_id -> Process, with the current process of each pid.

Why reference counts: a child's events name its parent, so a parent that exited
must stay until its children are gone. refcnt = 1 while the process lives, +1
per live child that names it. At 0 the entry waits ``grace`` seconds (late
events still resolve) and is then collected. The cache is bounded: past
``max_size`` the least recently used entries are evicted and counted.

With ancestors (--enable-ancestors) a process holds its parent until the
process itself is released, not only until it exits: the whole chain above a
live process stays, so its events can list their ancestors.

Released entries also go into a queue in the order they were released: with
one ``grace`` for all, that is the order they become due, so collecting (every
second) looks at the due ones only, not at the whole cache (tens of thousands
of entries during an exec storm, most of them alive or not due yet).
"""

import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from tetra.decode.process import CloneRecord, ExecRecord
from tetra.node import BootClock
from tetra.process.container import DOCKER_FIELD_LEN, container_id
from tetra.process.environ import KEY as ENV_KEY
from tetra.process.model import Process, join_arguments, make_exec_id

# Enrichment: a new process -> its pod object (None: in no known pod); kept with the process.
Enrich = Callable[[Process], dict[str, Any] | None]
MAX_ANCESTORS = 1024  # ancestors listed at most: a bound on the walk, whatever the cache holds


@dataclass
class CacheStats:
    """Counters the status and metrics report."""

    evictions: int = 0
    collected: int = 0


class ProcessCache:
    """Every known process by exec_id; ``by_pid`` points at each pid's current one."""

    def __init__(self, node: str, clock: BootClock, max_size: int = 65536, grace: float = 10.0,
                 enrich: Enrich | None = None) -> None:
        """``enrich``: the enrichment stage, run once per new process (its image), whose result the
        process keeps for all its events (tetra/enrich/enricher.py's PodEnricher.of_process)."""
        if max_size < 1:
            raise ValueError("process cache size must be at least 1")
        self.node = node
        self.clock = clock
        self.max_size = max_size
        self.grace = grace
        self.stats = CacheStats()
        self.enrich = enrich
        # --enable-process-cred/-ns: the context of a new process, given its parent (None: flags off).
        self.process_context: Callable[[ExecRecord, Process | None], dict[str, Any] | None] | None = None
        # --enable-process-environment-variables: a new process's environment_variables (environ.py).
        self.process_env: Callable[[ExecRecord], list[dict[str, Any]] | None] | None = None
        # --enable-ancestors: keep every ancestor of a live process (see the module docstring).
        self.hold_ancestors = False
        self._by_id: OrderedDict[str, Process] = OrderedDict()
        self._by_pid: dict[int, Process] = {}
        # (released_at, process) in release order; stale when the process was referenced again
        # (its released_at changed) or evicted meanwhile
        self._released: deque[tuple[float, Process]] = deque()

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, exec_id: str) -> Process | None:
        return self._by_id.get(exec_id)

    def by_pid(self, pid: int) -> Process | None:
        return self._by_pid.get(pid)

    def parent_of(self, proc: Process) -> Process | None:
        return self._by_id.get(proc.parent_exec_id) if proc.parent_exec_id else None

    def ancestors(self, parent: Process | None) -> list[Process]:
        """The ancestors above ``parent``, nearest first, as Tetragon lists them: up to the
        first one with pid 1 or 2 (init, kthreadd), or the first the cache does not know."""
        out: list[Process] = []
        while parent is not None and parent.pid > 2 and len(out) < MAX_ANCESTORS:
            parent = self.parent_of(parent)
            if parent is None:
                break
            out.append(parent)
        return out

    def add_exec(self, rec: ExecRecord) -> Process:
        """A new image for rec.pid; it replaces whatever that pid ran before."""
        previous = self._by_pid.get(rec.pid)
        flags = list(rec.flags)
        if previous is not None and previous.flags == "clone":
            flags.append("clone")  # Tetragon: the first exec after a fork
        cwd = rec.cwd
        if cwd == "/":
            flags.append("rootcwd")
        cid = container_id(rec.cgroup_name)
        proc = self._new(rec.ktime, rec.pid, rec.cgroup_id, rec.uid, rec.auid, cwd, rec.filename,
                         join_arguments(rec.argv), " ".join(flags), cid[:DOCKER_FIELD_LEN])
        if self.enrich is not None:
            proc.pod = self.enrich(proc)
        if self.process_context is not None:
            proc.context = self.process_context(rec, self._by_pid.get(rec.ppid))
        if self.process_env is not None:
            env = self.process_env(rec)
            if env is not None:  # its own: the rest of the context is shared with other processes
                proc.context = {**(proc.context or {}), ENV_KEY: env}
        self._insert(proc, rec.ppid, previous)
        return proc

    def add_clone(self, rec: CloneRecord) -> Process | None:
        """A forked child runs its parent's image until it execs; None if the parent is unknown."""
        parent = self._by_pid.get(rec.ppid)
        if parent is None:
            return None
        proc = self._new(rec.ktime, rec.pid, rec.cgroup_id, parent.uid, parent.auid, parent.cwd, parent.binary,
                         parent.arguments, "clone", parent.docker)
        proc.pod = parent.pod
        proc.context = parent.context  # a fork shares its parent's credentials and namespaces
        self._insert(proc, rec.ppid, self._by_pid.get(rec.pid))
        return proc

    def mark_exited(self, pid: int) -> Process | None:
        """The process behind pid ended: drop its own reference and its parent's."""
        proc = self._by_pid.pop(pid, None)
        if proc is not None:
            self._retire(proc)
        return proc

    def collect(self, now: float | None = None) -> int:
        """Remove entries released more than ``grace`` seconds ago; returns how many."""
        now = time.monotonic() if now is None else now
        due = now - self.grace
        released, by_id = self._released, self._by_id
        collected = 0
        while released and released[0][0] <= due:
            released_at, proc = released.popleft()
            if proc.released_at == released_at and by_id.get(proc.exec_id) is proc:
                del by_id[proc.exec_id]
                collected += 1
        self.stats.collected += collected
        return collected

    def _new(self, ktime: int, pid: int, cgroup_id: int, uid: int, auid: int, cwd: str, binary: str,
             arguments: str, flags: str, docker: str) -> Process:
        """A process started at ktime, running ``binary`` as ``uid``."""
        return Process(exec_id=make_exec_id(self.node, ktime, pid), pid=pid, tid=pid, uid=uid, auid=auid, ktime=ktime,
                       start_time=self.clock.rfc3339(ktime), cwd=cwd, binary=binary, arguments=arguments,
                       flags=flags, docker=docker, cgroup_id=cgroup_id)

    def _insert(self, proc: Process, ppid: int, previous: Process | None) -> None:
        if previous is not None:
            self._retire(previous)
        parent = self._by_pid.get(ppid)
        if parent is not None:
            proc.parent_exec_id = parent.exec_id
            self._ref(parent, +1)
            self._by_id.move_to_end(parent.exec_id)
        self._by_id[proc.exec_id] = proc
        self._by_pid[proc.pid] = proc
        self._evict()

    def _retire(self, proc: Process) -> None:
        """A process image ended (exit, or replaced by a new exec of its pid)."""
        if proc.exited:
            return
        proc.exited = True
        if self.hold_ancestors:
            self._release(proc)
            return
        self._ref(proc, -1)
        parent = self.parent_of(proc)
        if parent is not None:
            self._ref(parent, -1)

    def _release(self, proc: Process | None) -> None:
        """Drop a reference to ``proc``; one that reaches 0 lets go of its parent, and so on up
        (a loop: a chain of exited shells can be longer than Python's recursion limit)."""
        while proc is not None:
            held = proc.refcnt
            self._ref(proc, -1)
            if not (held and proc.refcnt == 0 and proc.exited):
                return
            proc = self.parent_of(proc)

    def _ref(self, proc: Process, delta: int) -> None:
        refcnt = proc.refcnt = max(0, proc.refcnt + delta)
        if refcnt:
            proc.released_at = None
        else:
            released_at = proc.released_at = time.monotonic()
            self._released.append((released_at, proc))

    def _evict(self) -> None:
        while len(self._by_id) > self.max_size:
            _, victim = self._by_id.popitem(last=False)
            if self._by_pid.get(victim.pid) is victim:
                del self._by_pid[victim.pid]
            self.stats.evictions += 1

