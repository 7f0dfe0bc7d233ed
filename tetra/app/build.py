"""Building an agent from its flags: every part it is handed, made here and nowhere else."""

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tetra.agent.commands import CommandQueue
from tetra.agent.config import AgentConfig
from tetra.agent.logring import LogRing
from tetra.agent.runner import Agent, Parts
from tetra.app.services import HealthEndpoint, MetricsEndpoint, PolicyObjectWatch
from tetra.errors import KernelError
from tetra.export.jsonfile import RotatingFile
from tetra.export.sinks import ChainSink, CompactSink, JsonSink, Sink, StreamWriter
from tetra.filters.chain import ExportChain
from tetra.kernel.mounts import cgroup2_mount
from tetra.node import node_name

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor

    from tetra.api.server import ApiServer


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
                                  enable_pid_set=config.enable_pid_set_filter, cel_schema=_tetragon_events)


def _tetragon_events() -> "Descriptor":
    """The event types a ``cel_expression`` of the flags reads; the API is imported only then."""
    from tetra.api import tetragon_events

    return tetragon_events()


def build_agent(config: AgentConfig) -> Agent:
    """The agent and every part the flags ask for, wired. The API's addresses are checked first,
    before any BPF loads: a bad one is refused at once."""
    node = config.node_name or node_name()
    commands = CommandQueue()
    exporters = build_exporters(config)
    chain = ChainSink(build_chain(config, node), exporters, cluster_name=config.cluster_name)
    parts = Parts(commands, exporters, chain, cgroup2_root=_cgroup2_root(),
                  log_ring=LogRing().attach(logging.getLogger()))
    api = _api_server(config, commands)
    if api is not None:
        parts.sinks.append(api.broadcaster)
        parts.streams = api.broadcaster
        parts.services.append(api)
    if config.metrics_server:
        metrics = MetricsEndpoint(config.metrics_server)
        parts.on_status.append(metrics.collector.update)
        parts.services.append(metrics)
    if config.health_server_address:
        parts.services.append(HealthEndpoint(config.health_server_address))
    if config.enable_k8s_api:
        _pod_enrichment(config, node, parts)
        if config.enable_tracing_policy_crd:
            parts.services.append(PolicyObjectWatch(node, config.k8s_kubeconfig_path, commands))
    return Agent(config, node, parts)


def _api_server(config: AgentConfig, commands: CommandQueue) -> "ApiServer | None":
    """The gRPC server for --server-address (imported only when wanted: it needs the generated code)."""
    addresses = tuple(a for a in config.server_addresses if a)
    if not addresses:
        return None
    from tetra.api.server import ApiServer, TlsFiles

    return ApiServer(addresses, commands, TlsFiles(config.server_tls_cert_file, config.server_tls_key_file,
                                                   config.server_tls_client_ca_file), config.server_insecure_tcp,
                     cluster_name=config.cluster_name)


def _pod_enrichment(config: AgentConfig, node: str, parts: Parts) -> None:
    """Kubernetes pod metadata for events (--enable-k8s-api): a watcher thread, and the process
    cache's enrichment stage that asks it once per new process."""
    from tetra.enrich.cgroups import CgroupResolver
    from tetra.enrich.enricher import PodEnricher
    from tetra.enrich.k8s import PodWatcher

    parts.pods = PodWatcher(node, config.k8s_kubeconfig_path, annotations=config.enable_pod_annotations)
    parts.enrich = PodEnricher(parts.pods, CgroupResolver(parts.cgroup2_root)).of_process


def _cgroup2_root() -> Path | None:
    try:
        return Path(cgroup2_mount())
    except KernelError:
        return None
