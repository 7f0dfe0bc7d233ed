"""From records to events: decode, update the process cache, build, send to sinks.

Dispatch is by record type through a table, as the decoders are by opcode.
When a record names a parent the cache does not know (its process started
before the agent and the /proc scan missed it, or its record was lost in the
kernel and counted there), the parent is looked up in /proc again before the
event goes out; only if that fails too does the event go without a parent, and
that is counted. Waiting longer would not help: one ordered ring buffer
carries all process records, so a parent's record never arrives after its
child's.
"""

import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from tetra.agent.line_path import LinePath
from tetra.export.sinks import LineTarget, Sink, line_targets
from tetra.agent.stats import PipelineStats
from tetra.agent.policy_events import PolicyEvents
from tetra.agent.user_actions import UserActions
from tetra.decode import process as _process_decoders  # noqa: F401  (registers decoders)
from tetra.decode.generic import GenericRecord
from tetra.decode.loader import LoaderRecord
from tetra.decode.process import CloneRecord, ExecRecord, ExitRecord, ThrottleRecord, binary_in_part
from tetra.decode.registry import DECODERS, decode
from tetra.errors import DecodeError
from tetra.export.event import Event
from tetra.node import BootClock
from tetra.process import procfs
from tetra.process.buildid import BuildIds
from tetra.process.cache import ProcessCache
from tetra.process.events import ProcessEvent, exec_event, exit_event
from tetra.process.loader import loader_event
from tetra.process.model import Process
from tetra.process.throttle import Throttles
from tetra.wire.constants import Op
from tetra.wire.events import PROCESS_EXEC, PROCESS_EXIT, PROCESS_LOADER, PROCESS_THROTTLE

log = logging.getLogger(__name__)
# pid -> the process as /proc shows it now, None when gone
Lookup = Callable[[int], ExecRecord | None]


class Pipeline:
    """Turns records into Tetragon events and hands them to every sink."""

    def __init__(self, cache: ProcessCache, sinks: Sequence[Sink], clock: BootClock,
                 cgroup2_root: Path | None = None, lookup: Lookup | None = None) -> None:
        """``lookup``: where processes the cache lacks are read (default /proc; a replay answers
        what /proc answered when the recording was made)."""
        self.cache = cache
        self.sinks = list(sinks)
        self.clock = clock
        self.stats = PipelineStats()
        self.policies = PolicyEvents()
        self.lookup: Lookup = lookup or partial(procfs.read_process, cgroup2_root=cgroup2_root)
        self.ancestor_kinds: frozenset[str] = frozenset()  # --enable-ancestors: events that list them
        self.throttles = Throttles(cache.node, clock)  # --cgroup-rate: the cgroups throttled now
        self._handlers: dict[type, Callable[[object], None]] = {
            ExecRecord: self._on_exec,  # type: ignore[dict-item]
            CloneRecord: self._on_clone,  # type: ignore[dict-item]
            ExitRecord: self._on_exit,  # type: ignore[dict-item]
            GenericRecord: self._on_generic,  # type: ignore[dict-item]
            ThrottleRecord: self._on_throttle,  # type: ignore[dict-item]
            LoaderRecord: self._on_loader,  # type: ignore[dict-item]
        }
        # opcode -> (decoder, handler): a ring record goes straight to both, without the
        # registry's checks and the dispatch by type (two calls of each event's few dozen)
        self._by_op: dict[int, tuple[Callable[[bytes], object], Callable[[object], None]]] = {
            int(op): (DECODERS[op], self._handlers[kind])
            for op, kind in ((Op.EXEC, ExecRecord), (Op.CLONE, CloneRecord), (Op.EXIT, ExitRecord),
                             (Op.GENERIC, GenericRecord), (Op.LOADER, LoaderRecord))}
        self.build_ids = BuildIds()  # of the files process_loader events name
        # GetUrl / DnsLookup: made by the live agent's worker; None (a replay) makes none
        self.user_actions: UserActions | None = None
        # the compiled line path (tetra/_speed), None when not built or TETRA_PURE_PYTHON=1
        self.line_path = LinePath.create(self)

    def handle_raw(self, raw: bytes) -> None:
        """A record straight from the ring buffer."""
        self.stats.records += 1
        route = self._by_op.get(raw[0]) if raw else None
        try:
            record = decode(raw) if route is None else route[0](raw)  # the registry says what is wrong
        except DecodeError as err:
            self.stats.decode_errors += 1
            log.warning("dropped a kernel record: %s", err)
            return
        if route is None:
            self.handle(record)
        else:
            route[1](record)

    def line_targets(self) -> list[LineTarget] | None:
        """Where a batch of ready JSON lines goes, when every sink takes lines as they are
        (``line_targets()`` of each); None when one needs events (filters, compact, gRPC)."""
        return line_targets(self.sinks)

    def handle(self, record: object) -> None:
        self._handlers[type(record)](record)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def emit(self, kind: str, event: Event) -> None:
        """An event made outside the ring's records (a THROTTLE_STOP of the agent's check)."""
        self._emit(kind, event, None)

    def _emit(self, kind: str, event: Event, ktime: int | None) -> None:
        """ktime: when the kernel saw it, for the latency histogram (None: read from /proc)."""
        if ktime is not None:
            self.stats.latency.observe((self.clock.now_ktime() - ktime) / 1e9)
        if self.ancestor_kinds and kind in self.ancestor_kinds:
            self._add_ancestors(event)
        for sink in self.sinks:
            try:
                sink.emit(event)
            except DecodeError as err:  # a policy event's arguments, decoded when the first sink asked
                self.stats.decode_errors += 1
                log.warning("dropped a kernel record: %s", err)
                return
            except Exception:  # a broken sink must not stop the others or the reader
                self.stats.sink_errors += 1
                log.exception("sink %s failed", type(sink).__name__)
        self.stats.events[kind] += 1

    def _add_ancestors(self, event: Event) -> None:
        """Tetragon's ``ancestors``: the processes above the event's parent, nearest first."""
        if isinstance(event, ProcessEvent):
            event.ancestors = tuple(self.cache.ancestors(event.parent))

    def _ensure_known(self, pid: int) -> None:
        """Seed pid from /proc when the cache lacks it (it predates the agent)."""
        if pid and self.cache.by_pid(pid) is None:
            rec = self.lookup(pid)
            if rec is not None:
                self._on_exec(rec)

    def _parent(self, proc: Process) -> Process | None:
        parent = self.cache.parent_of(proc)
        if parent is None:
            self.stats.parent_unknown += 1
        return parent

    def _on_exec(self, rec: ExecRecord) -> None:
        self._ensure_known(rec.ppid)
        if binary_in_part(rec):
            self.stats.binary_truncated += 1
        proc = self.cache.add_exec(rec)
        parent = self._parent(proc) if rec.ppid else None  # pid 1 and kthreadd have none
        live = None if "procFS" in rec.flags else rec.ktime
        # the exec happened when its process image started: start_time is rec.ktime's RFC 3339
        self._emit(PROCESS_EXEC.key, exec_event(proc, parent, self.cache.node, proc.start_time), live)

    def _on_clone(self, rec: CloneRecord) -> None:
        self._ensure_known(rec.ppid)
        if self.cache.add_clone(rec) is None:
            self.stats.parent_unknown += 1

    def _process_of(self, pid: int) -> Process | None:
        """The process an event of pid belongs to, from /proc if the cache lacks it; None (counted)
        if it is gone."""
        proc = self.cache.by_pid(pid)
        if proc is None:
            self._ensure_known(pid)
            proc = self.cache.by_pid(pid)
        if proc is None:
            self.stats.process_unknown += 1
        return proc

    def _on_generic(self, rec: GenericRecord) -> None:
        proc = self._process_of(rec.pid)
        parent = self.cache.parent_of(proc) if proc is not None else None
        event = self.policies.build(rec, proc, parent, self.cache.node, self.clock.rfc3339(rec.ktime))
        if event is None:
            self.stats.policy_unknown += 1
            return
        self.stats.actions[event.action_key()] += 1
        acting = event.loaded.agent_actions[rec.hook_id]
        if acting and self.user_actions is not None and rec.selector < len(acting):
            self.user_actions.submit(rec.policy_id, rec.hook_id, rec.selector, acting[rec.selector])
        self._emit(event.kind, event, rec.ktime)

    def _on_loader(self, rec: LoaderRecord) -> None:
        build_id = None if rec.truncated else self.build_ids.get(rec.path, rec.ino)  # a part of a path: no file
        event = loader_event(self._process_of(rec.pid), rec, build_id, self.cache.node, self.clock.rfc3339(rec.ktime))
        self._emit(PROCESS_LOADER.key, event, rec.ktime)

    def _on_exit(self, rec: ExitRecord) -> None:
        proc = self.cache.mark_exited(rec.pid)
        if proc is None:
            self.stats.exits_unknown += 1
            return
        time = self.clock.rfc3339(rec.ktime)
        parent = self.cache.parent_of(proc)
        self._emit(PROCESS_EXIT.key, exit_event(proc, parent, rec.exit_code, self.cache.node, time), rec.ktime)

    def _on_throttle(self, rec: ThrottleRecord) -> None:
        if rec.exec:  # the image the cache holds for pid was replaced: later events read /proc
            self.cache.mark_exited(rec.pid)
        event = self.throttles.started(rec) if rec.start else None
        if event is not None:
            self._emit(PROCESS_THROTTLE.key, event, rec.ktime)
