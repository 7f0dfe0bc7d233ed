"""Running the agent: load the sensors, seed from /proc, drain until told to stop.

The agent is handed what surrounds it (``Parts``, built by tetra/app/build.py):
the exporters and export filters, the sinks beside them, the services run
beside the loop (API server, metrics endpoint, TracingPolicy objects' watch),
the one command queue they reach this thread through, and the enrichment
stage. It builds only what lives on its thread: the sensors, the pipeline, the
process cache and the policies; and reports on them in ``status()``.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tetra.agent.commands import CommandQueue
from tetra.agent.config import AgentConfig
from tetra.agent.logring import LogRing
from tetra.agent.memory import release_compiler_memory
from tetra.agent.pipeline import Pipeline
from tetra.agent.policies import PolicyManager, PolicyState
from tetra.agent.policy_objects import PolicyObjects
from tetra.agent.startup import failed_summary, refuse_failed
from tetra.agent.user_actions import UserActions
from tetra.enrich.scope import PolicyScope
from tetra.export.sinks import ChainSink, JsonSink, Sink
from tetra.kernel.btf import Btf
from tetra.kernel.offsets import resolve_offsets
from tetra.node import BootClock
from tetra.observer.recording import RingRecorder
from tetra.observer.ringbuf import RingBufferObserver
from tetra.process import procfs
from tetra.agent.ancestors import ancestor_kinds
from tetra.process.cache import Enrich, ProcessCache
from tetra.process.context import ProcessContext, host_namespaces
from tetra.process.environ import EnvironmentVariables
from tetra.process.users import UserNames
from tetra.sensors.process import ProcessSensor
from tetra.status.model import (HANDOFF_DROPS, AgentStatus, KernelCount, Reporting, SensorStatus,
                                Streaming, user_action_table)
from tetra.status.rates import RateMeter
from tetra.wire.events import PROCESS_THROTTLE

if TYPE_CHECKING:
    from tetra.enrich.k8s import PodWatcher

log = logging.getLogger(__name__)

POLL_MS = 100  # longest wait for the kernel before housekeeping runs
POD_SYNC_WAIT_S = 5.0  # at start, for the first list of pods: the first events then have their pod
TICK_S = 1.0  # cache collection and loss reports


@dataclass
class Summary:
    """What a run did; printed as JSON when the agent stops."""

    pipeline: dict[str, Any] = field(default_factory=dict)
    kernel_sent: int = 0
    kernel_lost: int = 0
    kernel_throttled: int = 0  # --cgroup-rate: process events the kernel dropped
    kernel: dict[str, dict[str, int]] = field(default_factory=dict)  # per opcode: sent, lost
    received: int = 0
    cache_size: int = 0
    cache_evictions: int = 0
    export_write_errors: int = 0
    export_lines_dropped: int = 0
    policies: list[dict[str, Any]] = field(default_factory=list)
    user_actions: dict[str, dict[str, int]] = field(default_factory=dict)  # GetUrl / DnsLookup: by outcome

    @classmethod
    def of(cls, status: AgentStatus) -> "Summary":
        """The summary of a status: its line exporters' (JSON file, stdout) write errors and drops."""
        lines = [e.counters for e in status.exporters if e.lines]
        return cls(
            pipeline={"events": dict(status.events), **status.pipeline},
            kernel_sent=status.kernel_sent,
            kernel_lost=status.kernel_lost,
            kernel_throttled=status.kernel_throttled,
            kernel={k.opcode: {"sent": k.sent, "lost": k.lost} for k in status.kernel},
            received=status.ringbuf_received,
            cache_size=status.cache_size,
            cache_evictions=status.cache_evictions,
            export_write_errors=sum(c.get("write_errors", 0) for c in lines),
            export_lines_dropped=sum(c.get("lines_dropped", 0) + sum(c.get(k, 0) for k in HANDOFF_DROPS)
                                     for c in lines),
            policies=[p.summary() for p in status.policies],
            user_actions=user_action_table(status.user_actions),
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Service(Protocol):
    """Something run beside the agent loop (the API server, the metrics endpoint, the watch of
    TracingPolicy objects): started once the agent is ready to serve, stopped before its sensors
    close. Its threads reach the agent thread through the agent's CommandQueue only."""

    def start(self, agent: "Agent") -> None: ...
    def stop(self) -> None: ...


@dataclass
class Parts:
    """What the composition root (tetra/app/build.py) builds from the flags and hands the agent."""

    commands: CommandQueue  # the one queue other threads give the agent thread work through
    exporters: list[Sink]  # JSON file, stdout, OTLP: behind the export filters
    export_chain: ChainSink  # the export filters, in front of ``exporters``
    sinks: list[Sink] = field(default_factory=list)  # beside the export chain, unfiltered (gRPC)
    services: list[Service] = field(default_factory=list)  # started in order, stopped in reverse
    on_status: list[Callable[[AgentStatus], None]] = field(default_factory=list)  # each tick (metrics)
    streams: Streaming | None = None  # reports the gRPC event streams in the status
    cgroup2_root: Path | None = None
    pods: "PodWatcher | None" = None  # pods of this node (--enable-k8s-api)
    enrich: Enrich | None = None  # the process cache's enrichment stage: a new process's pod
    log_ring: LogRing | None = None  # the newest log records, for GetDiagnostics; detached when the run ends


class Agent:
    """One agent run; ``stop`` (a threading.Event) ends it from a signal handler, and
    ``reopen`` has the export file reopened (SIGHUP, after logrotate moved it)."""

    def __init__(self, config: AgentConfig, node: str, parts: Parts) -> None:
        self.config = config
        self.stop = threading.Event()
        self.reopen = threading.Event()
        self.clock = BootClock()
        self.commands = parts.commands
        self.exporters = parts.exporters
        self.export_chain = parts.export_chain
        self.services = parts.services
        self.on_status = parts.on_status
        self.streams = parts.streams
        self.cgroup2_root = parts.cgroup2_root
        self.pods = parts.pods
        self.log_ring = parts.log_ring
        self.cache = ProcessCache(node, self.clock, max_size=config.process_cache_size, enrich=parts.enrich)
        sinks: list[Sink] = [self.export_chain, *parts.sinks]
        self._reporting = [s for s in (*self.exporters, *sinks) if isinstance(s, Reporting)]
        self.rates = RateMeter()
        self._started = time.monotonic()
        env = config.enable_process_environment_variables
        self.pipeline = Pipeline(self.cache, sinks, self.clock, self.cgroup2_root,
                                 partial(procfs.read_process, cgroup2_root=self.cgroup2_root, env=True) if env else None)
        self.user_actions = UserActions()  # GetUrl / DnsLookup of the policies' selectors
        self.pipeline.user_actions = self.user_actions
        self.pipeline.policies.listeners.append(self.user_actions)
        if config.enable_ancestors:
            self.cache.hold_ancestors = True
            self.pipeline.ancestor_kinds = ancestor_kinds(config.enable_ancestors)
        self.recorder = RingRecorder.for_node(config.record_ring, node, self.clock) if config.record_ring else None
        if self.recorder is not None:
            self.pipeline.lookup = self.recorder.tee_lookup(self.pipeline.lookup)
            self.pipeline.policies.listeners.append(self.recorder)
        self.btf = Btf.load()
        self.offsets = resolve_offsets(self.btf)
        users = UserNames() if config.username_metadata == "unix" else None
        # User names need the namespaces (host mount namespace or not), shown or not.
        self.sensor = ProcessSensor(self.offsets, config.ringbuf_pages,
                                    config.enable_process_cred, config.enable_process_ns or users is not None, env,
                                    config.cgroup_rate)
        if env:
            self.cache.process_env = EnvironmentVariables(config.filter_environment_variables)
        if config.enable_process_cred or config.enable_process_ns or users is not None:
            self.cache.process_context = ProcessContext(config.enable_process_cred, config.enable_process_ns,
                                                        host_namespaces(), users)
        scope = PolicyScope(self.cgroup2_root, self.pods) if self.pods is not None and self.cgroup2_root else None
        self.policies = PolicyManager(self.pipeline.policies, self.btf,
                                      {**self.offsets, "TETRA_RINGBUF_PAGES": config.ringbuf_pages,
                                       "TETRA_AGENT_TGID": os.getpid()}, scope,
                                      PolicyObjects.open(config.policy_cache_dir))
        self._lost_reported = 0
        self._released_after = -1  # PolicyManager.compiles when the compiler's memory was last given back
        self.observer: RingBufferObserver | None = None
        self._settled = False  # the start-up policies all loaded (or failed), and said so
        self._startup: list[PolicyState] = []  # --tracing-policy(-dir)'s: one failed, the agent refuses to run

    def run(self, on_ready: Callable[[], None] | None = None) -> Summary:
        started = time.monotonic()
        if self.pods is not None:
            self.pods.start()  # returns at once; lists and watches in its own thread
        bpf = self.sensor.load()
        self.policies.objects.shared = self.sensor.shared_maps()
        running: list[Service] = []
        self.user_actions.start()
        try:
            handle_raw, handle = self.pipeline.handle_raw, self.pipeline.handle
            batch = self.pipeline.line_path  # the compiled path, None if not built
            if self.recorder is not None:
                handle_raw, handle = self.recorder.tee_ring(handle_raw), self.recorder.tee_seed(handle)
                if batch is not None:
                    batch.tee = self.recorder.write
            observer = self.observer = RingBufferObserver(bpf, "tetra_events", handle_raw, batch)
            records = list(procfs.scan(cgroup2_root=self.cgroup2_root,
                                       env=self.config.enable_process_environment_variables))
            self.sensor.remember_binaries(records)
            for record in records:
                handle(record)
            seeded = len(records)
            self._startup = self.policies.load_paths(self.config.tracing_policies, self.config.tracing_policy_dir)
            refuse_failed(self._startup, self.config.tracing_policy_keep_going)  # unreadable, invalid: before ready
            self.pipeline.flush()
            self._publish_status()
            self.commands.run_pending()  # none are queued yet: the API's health counts the loop's idle time from here
            for service in self.services:  # after the files: a name they hold is a conflict for an object
                service.start(self)
                running.append(service)
            self._release_compiler_memory()
            if self.pods is not None and self.pods.source and not self.pods.wait_synced(POD_SYNC_WAIT_S):
                log.warning("pod metadata: the pods of this node are not listed yet (is the API reachable?); "
                            "events carry no pod fields until they are")
            log.info("ready in %.1fs: %d processes from /proc; hooks: %s; policies: %s",
                     time.monotonic() - started, seeded,
                     ", ".join(f"{h} ({m})" for h, m in self.sensor.mechanisms.items()), self._policy_counts())
            if on_ready:
                on_ready()
            self._loop(observer, started)
            observer.drain()
            self._check_throttles()  # the summary counts every drop up to the end
            self.user_actions.close()  # what it could not make is counted in the summary
            self.pipeline.close()  # the exporters write what they queued: the summary counts what they dropped
            return Summary.of(self.status())
        finally:
            self.commands.close()  # first: other threads may wait for this one, which no longer loops
            for service in reversed(running):
                service.stop()  # the API before the sensors: its calls touch them
            if self.pods is not None:
                self.pods.stop()
            self.policies.close()  # before the process sensor: they use its shared maps
            if self.observer is not None:
                self.observer.close()  # its mappings of the ring, before the map goes
            self.sensor.close()
            self.user_actions.close()
            self.pipeline.close()
            if self.recorder is not None:
                self.recorder.close()
            if self.log_ring is not None:
                self.log_ring.detach(logging.getLogger())

    def _policy_counts(self) -> str:
        counts = self.policies.counts()
        failed = failed_summary(self.policies.states.values())
        return (f"{counts['enabled']} enabled ({counts['cache']} from the cache), {counts['loading']} loading, "
                f"{counts['load_error']} load_error" + (f": {failed}" if failed else ""))

    def _loop(self, observer: RingBufferObserver, started: float) -> None:
        next_tick = time.monotonic() + TICK_S
        more = False
        while not self.stop.is_set():
            observer.poll(0 if more else POLL_MS)
            if self.reopen.is_set():
                self.reopen.clear()
                self._reopen_exports("SIGHUP")
            self.commands.run_pending()  # API calls, TracingPolicy objects' loads and unloads
            more = self.policies.progress()  # after the API's calls: a policy it added from the cache is in at once
            if not self._settled and not self.policies.loading:
                self._settled = True
                log.info("policies settled in %.1fs: %s", time.monotonic() - started, self._policy_counts())
                refuse_failed(self._startup, self.config.tracing_policy_keep_going)  # the kernel refused one
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + TICK_S
                self._tick(now)

    def _tick(self, now: float) -> None:
        self.pipeline.flush()
        self.cache.collect()
        self.policies.refresh_scopes()
        self._release_compiler_memory()
        self._check_throttles()
        lost = self.sensor.kernel_counts().total_lost
        if lost > self._lost_reported:
            log.warning("the kernel ring buffer was full: %d records lost so far", lost)
            self._lost_reported = lost
        self.rates.sample(now, self.pipeline.stats.events)
        self._publish_status()

    def _check_throttles(self) -> None:
        """--cgroup-rate: THROTTLE_STOP for the cgroups the kernel no longer throttles (process/throttle.py)."""
        rate = self.config.cgroup_rate
        if rate is None:
            return
        stops, forget = self.pipeline.throttles.check(self.sensor.cgroup_rate_counts(), rate, self.clock.now_ktime())
        self.sensor.forget_cgroups(forget)
        for event in stops:
            self.pipeline.emit(PROCESS_THROTTLE.key, event)

    def _publish_status(self) -> None:
        """Hand the status to whoever reads it every tick (the metrics endpoint)."""
        if self.on_status:
            status = self.status()
            for reader in self.on_status:
                reader(status)

    def _reopen_exports(self, reason: str) -> None:
        """Asks each export file's writer thread to reopen (not in the signal handler)."""
        for sink in self.exporters:
            if isinstance(sink, JsonSink):
                sink.reopen(reason)

    def _release_compiler_memory(self) -> None:
        """After policies were compiled (at start, or added since): see tetra/agent/memory.py."""
        if self.policies.compiles != self._released_after:
            release_compiler_memory()
            self._released_after = self.policies.compiles

    def status(self) -> AgentStatus:
        """The agent's state now, as numbers; on the agent thread (it reads BPF maps)."""
        now = time.monotonic()
        counts = self.sensor.kernel_counts()
        stats = self.pipeline.stats
        events = dict(stats.events)
        return AgentStatus(
            node_name=self.cache.node,
            uptime_seconds=now - self._started,
            sensors=(SensorStatus(self.sensor.name, dict(self.sensor.mechanisms)),),
            policies=tuple(self.policies.summary()),
            events=events,
            rates=self.rates.rates(now, events),
            pipeline=stats.counters(),
            kernel=tuple(KernelCount(op.name.lower(), counts.sent[op], counts.lost[op]) for op in counts.sent),
            ringbuf_received=self.observer.received if self.observer is not None else 0,
            cache_size=len(self.cache),
            cache_capacity=self.cache.max_size,
            cache_evictions=self.cache.stats.evictions,
            exporters=tuple(sink.state() for sink in self._reporting),
            streams=self.streams.streams() if self.streams is not None else None,
            actions=dict(stats.actions),
            latency=(tuple(stats.latency.counts), stats.latency.total),
            kernel_throttled=self.pipeline.throttles.dropped,
            throttled_cgroups=len(self.pipeline.throttles.throttled),
            user_actions=self.user_actions.counts(),
        )
