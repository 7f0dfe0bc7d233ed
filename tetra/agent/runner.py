"""Running the agent: load the sensors, seed from /proc, drain until told to stop."""

import logging
import os
import sys
import threading
from collections.abc import Callable
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tetra.agent.config import AgentConfig
from tetra.agent.pipeline import Pipeline
from tetra.agent.policies import PolicyManager
from tetra.agent.policy_objects import PolicyObjects
from tetra.agent.memory import release_compiler_memory
from tetra.agent.sinks import ChainSink, CompactSink, JsonSink, Sink, StreamWriter
from tetra.export.metrics import SnapshotCollector, serve
from tetra.filters.chain import ExportChain
from tetra.enrich.scope import PolicyScope
from tetra.errors import KernelError
from tetra.export.jsonfile import RotatingFile
from tetra.kernel.btf import Btf
from tetra.kernel.mounts import cgroup2_mount
from tetra.kernel.offsets import resolve_offsets
from tetra.node import BootClock, node_name
from tetra.observer.recording import RingRecorder
from tetra.observer.ringbuf import RingBufferObserver
from tetra.process import procfs
from tetra.process.cache import ProcessCache
from tetra.sensors.process import ProcessSensor

if TYPE_CHECKING:
    from tetra.agent.k8s_policies import K8sPolicies
    from tetra.api.server import ApiServer

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
    kernel: dict[str, dict[str, int]] = field(default_factory=dict)  # per opcode: sent, lost
    received: int = 0
    cache_size: int = 0
    cache_evictions: int = 0
    export_write_errors: int = 0
    export_lines_dropped: int = 0
    policies: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def build_exporters(config: AgentConfig) -> list[Sink]:
    """The JSON file, stdout and OTLP exporters the flags ask for."""
    sinks: list[Sink] = []
    if config.export_filename:
        sinks.append(JsonSink(RotatingFile(
            config.export_filename,
            max_size_mb=config.export_file_max_size_mb,
            max_backups=config.export_file_max_backups,
            perm=config.export_file_perm,
            rotation_interval=config.export_file_rotation_interval,
            compress=config.export_file_compress,
        )))
    if config.stdout == "json":
        sinks.append(JsonSink(StreamWriter(sys.stdout.buffer)))
    elif config.stdout == "compact":
        sinks.append(CompactSink(sys.stdout, color=config.color))
    if config.export_otlp_endpoint:
        from tetra.export.otlp import OtlpSink

        sinks.append(OtlpSink(config.export_otlp_endpoint, tls_ca_file=config.export_otlp_ca_file))
    return sinks


def build_chain(config: AgentConfig, node: str) -> ExportChain:
    """Tetragon's export filters from the flags; FilterError names the flag and line."""
    return ExportChain.from_flags(node_name=node, allowlist=config.export_allowlist,
                                  denylist=config.export_denylist, field_filters=config.field_filters,
                                  redaction_filters=config.redaction_filters, rate_limit=config.export_rate_limit,
                                  enable_pid_set=config.enable_pid_set_filter)


def _api_server(config: AgentConfig) -> "ApiServer | None":
    """The gRPC server for --server-address (imported only when wanted: it needs the generated code)."""
    addresses = tuple(a for a in config.server_addresses if a)
    if not addresses:
        return None
    from tetra.api.server import ApiServer, TlsFiles

    return ApiServer(addresses, TlsFiles(config.server_tls_cert_file, config.server_tls_key_file,
                                         config.server_tls_client_ca_file), config.server_insecure_tcp)


def _cgroup2_root() -> Path | None:
    try:
        return Path(cgroup2_mount())
    except KernelError:
        return None


class Agent:
    """One agent run; ``stop`` (a threading.Event) ends it from a signal handler, and
    ``reopen`` has the export file reopened (SIGHUP, after logrotate moved it)."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.stop = threading.Event()
        self.reopen = threading.Event()
        self.clock = BootClock()
        node = config.node_name or node_name()
        self.cache = ProcessCache(node, self.clock, max_size=config.process_cache_size)
        self.exporters = build_exporters(config)
        self.export_chain = ChainSink(build_chain(config, node), self.exporters)
        self.sinks: list[Sink] = [self.export_chain]
        self.api = _api_server(config)  # before any BPF loads: a bad address is refused at once
        if self.api is not None:
            self.sinks.append(self.api.broadcaster)
        self.metrics = SnapshotCollector() if config.metrics_server else None
        self._metrics_server: Any = None
        self._rates: Any = None  # RateMeter for the metrics when no API server keeps one
        self._started = time.monotonic()
        self.cgroup2_root = _cgroup2_root()
        self.pods = self._pod_watcher(config, node)
        self.pipeline = Pipeline(self.cache, self.sinks, self.clock, self.cgroup2_root)
        self.recorder = RingRecorder.for_node(config.record_ring, node, self.clock) if config.record_ring else None
        if self.recorder is not None:
            self.recorder.attach(self.pipeline)
        self.btf = Btf.load()
        self.offsets = resolve_offsets(self.btf)
        self.sensor = ProcessSensor(self.offsets, config.ringbuf_pages)
        scope = PolicyScope(self.cgroup2_root, self.pods) if self.pods is not None and self.cgroup2_root else None
        self.policies = PolicyManager(self.pipeline.policies, self.btf,
                                      {**self.offsets, "TETRA_RINGBUF_PAGES": config.ringbuf_pages,
                                       "TETRA_AGENT_TGID": os.getpid()}, scope,
                                      PolicyObjects.open(config.policy_cache_dir))
        self.k8s_policies = self._k8s_policies(config, node)
        self._lost_reported = 0
        self._released_after = -1  # PolicyManager.compiles when the compiler's memory was last given back
        self.observer: RingBufferObserver | None = None
        self._settled = False  # the start-up policies all loaded (or failed), and said so

    def _pod_watcher(self, config: AgentConfig, node: str) -> Any:
        """Kubernetes pod metadata for events (--enable-k8s-api): a watcher thread and the
        cache hook that asks it once per new process."""
        if not config.enable_k8s_api:
            return None
        from tetra.enrich.cgroups import CgroupResolver
        from tetra.enrich.enricher import PodEnricher
        from tetra.enrich.k8s import PodWatcher

        watcher = PodWatcher(node, config.k8s_kubeconfig_path, annotations=config.enable_pod_annotations)
        enricher = PodEnricher(watcher, CgroupResolver(self.cgroup2_root))
        self.cache.enrich = lambda proc: enricher.pod_json(proc.cgroup_id, proc.docker, binary=proc.binary,
                                                          arguments=proc.arguments)
        return watcher

    def _k8s_policies(self, config: AgentConfig, node: str) -> "K8sPolicies | None":
        """TracingPolicy objects of the Kubernetes API, loaded live (--enable-k8s-api, unless
        --enable-tracing-policy-crd=false): watcher threads that hand their work to this thread."""
        if not (config.enable_k8s_api and config.enable_tracing_policy_crd):
            return None
        from tetra.agent.k8s_policies import K8sPolicies

        return K8sPolicies.for_manager(self.policies, node, config.k8s_kubeconfig_path)

    def run(self, on_ready: Callable[[], None] | None = None) -> Summary:
        started = time.monotonic()
        if self.pods is not None:
            self.pods.start()  # returns at once; lists and watches in its own thread
        bpf = self.sensor.load()
        self.policies.objects.shared = self.sensor.shared_maps()
        try:
            handle_raw, handle = self.pipeline.handle_raw, self.pipeline.handle
            batch = self.pipeline.line_path  # the compiled path, None if not built
            if self.recorder is not None:
                handle_raw, handle = self.recorder.tee_ring(handle_raw), self.recorder.tee_seed(handle)
                if batch is not None:
                    batch.tee = self.recorder.write
            observer = self.observer = RingBufferObserver(bpf, "tetra_events", handle_raw, batch)
            records = list(procfs.scan(cgroup2_root=self.cgroup2_root))
            self.sensor.remember_binaries(records)
            for record in records:
                handle(record)
            seeded = len(records)
            self.policies.load_paths(self.config.tracing_policies, self.config.tracing_policy_dir)
            if self.k8s_policies is not None:
                self.k8s_policies.start()  # after the files: a name they hold is a conflict for an object
            self.pipeline.flush()
            if self.api is not None:
                self.api.start(self)
            if self.metrics is not None and self.config.metrics_server:
                self._update_metrics()
                self._metrics_server = serve(self.config.metrics_server, self.metrics)
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
            self.pipeline.close()  # the exporters write what they queued: the summary counts what they dropped
            return self.summary()
        finally:
            if self.k8s_policies is not None:
                self.k8s_policies.stop()  # first: its threads may wait for this one, which no longer loops
            if self.pods is not None:
                self.pods.stop()
            if self._metrics_server is not None:
                self._metrics_server.shutdown()
            if self.api is not None:
                self.api.stop()  # first: API calls touch the sensors closed below
            self.policies.close()  # before the process sensor: they use its shared maps
            if self.observer is not None:
                self.observer.close()  # its mappings of the ring, before the map goes
            self.sensor.close()
            self.pipeline.close()
            if self.recorder is not None:
                self.recorder.close()

    def _policy_counts(self) -> str:
        counts = self.policies.counts()
        return (f"{counts['loaded']} loaded ({counts['cache']} from the cache), {counts['loading']} loading, "
                f"{counts['error']} failed")

    def _loop(self, observer: RingBufferObserver, started: float) -> None:
        next_tick = time.monotonic() + TICK_S
        more = False
        while not self.stop.is_set():
            observer.poll(0 if more else POLL_MS)
            if self.reopen.is_set():
                self.reopen.clear()
                self._reopen_exports("SIGHUP")
            if self.api is not None:
                self.api.iteration()
            if self.k8s_policies is not None:
                self.k8s_policies.run_pending()
            more = self.policies.progress()  # after the API's calls: a policy it added from the cache is in at once
            if not self._settled and not self.policies.loading:
                self._settled = True
                log.info("policies settled in %.1fs: %s", time.monotonic() - started, self._policy_counts())
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + TICK_S
                self._tick()

    def _tick(self) -> None:
        self.pipeline.flush()
        self.cache.collect()
        self.policies.refresh_scopes()
        self._release_compiler_memory()
        lost = self.sensor.kernel_counts().total_lost
        if lost > self._lost_reported:
            log.warning("the kernel ring buffer was full: %d records lost so far", lost)
            self._lost_reported = lost
        if self.api is not None:
            self.api.tick(self.pipeline.stats.events)
        if self.metrics is not None:
            self._update_metrics()

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

    def _update_metrics(self) -> None:
        """Hand the metrics endpoint a fresh status snapshot (BPF maps are read here, on our thread)."""
        from tetra.api.broadcast import Broadcaster
        from tetra.api.status import RateMeter, snapshot

        assert self.metrics is not None
        if self.api is not None:
            broadcaster, rates = self.api.broadcaster, self.api.rates
        else:
            self._rates = self._rates or RateMeter()
            self._rates.sample(time.monotonic(), self.pipeline.stats.events)
            broadcaster, rates = Broadcaster(), self._rates
        self.metrics.update(snapshot(self, broadcaster, rates, self._started), self.pipeline.stats)

    def summary(self) -> Summary:
        """What the run did so far; on the agent thread (it reads BPF maps)."""
        counts = self.sensor.kernel_counts()
        errors = sum(getattr(getattr(s, "writer", None), "write_errors", 0) for s in self.exporters)
        dropped = sum(getattr(s, "lines_dropped", 0) for s in self.exporters)  # the line sinks'
        return Summary(
            pipeline=self.pipeline.stats.as_dict(),
            kernel_sent=counts.total_sent,
            kernel_lost=counts.total_lost,
            kernel={op.name.lower(): {"sent": counts.sent[op], "lost": counts.lost[op]} for op in counts.sent},
            received=self.observer.received if self.observer is not None else 0,
            cache_size=len(self.cache),
            cache_evictions=self.cache.stats.evictions,
            export_write_errors=errors,
            export_lines_dropped=dropped,
            policies=self.policies.summary(),
        )
