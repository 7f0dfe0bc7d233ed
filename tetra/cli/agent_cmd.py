"""``tetra agent``: run the agent in the foreground until SIGINT or SIGTERM; SIGHUP reopens the export file."""

import os
import signal
import sys
from contextlib import nullcontext
from types import FrameType

import click
import orjson
from click.core import ParameterSource

from tetra.agent.ancestors import parse_ancestor_types
from tetra.agent.config import DEFAULT_SERVER_ADDRESS, AgentConfig
from tetra.agent.pidfile import PidFile
from tetra.cli.agent_config import load_config_dir, load_config_file
from tetra.cli.logformat import LOG_FORMATS, configure_logging
from tetra.cli.options import Size, cluster_name_option, comma_list, export_filter_options, parse_duration
from tetra.export.jsonfile import parse_perm
from tetra.process.throttle import CgroupRate
from tetra.wire.constants import RINGBUF_PAGES


def _ancestor_types(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return parse_ancestor_types(values)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _cgroup_rate(_ctx: click.Context, _param: click.Parameter, value: str) -> CgroupRate | None:
    """Tetragon's --cgroup-rate EVENTS,INTERVAL ("1000,1s", the interval a duration as its flags take
    them); "" (its default) sets no limit. Tetragon logs a bad value and runs unlimited; tetra refuses it."""
    if not value.strip():
        return None
    events, sep, interval = value.partition(",")
    if not sep or not events.strip().isdigit():
        raise click.BadParameter(f"{value!r}: expected EVENTS,INTERVAL such as 1000,1s")
    seconds = parse_duration(interval)
    assert seconds is not None
    try:
        return CgroupRate(int(events), round(seconds * 1e9))
    except ValueError as err:
        raise click.BadParameter(f"{value!r}: {err}") from None


def _names(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Names given comma-separated, the flag repeated or both (Tetragon's string slices)."""
    return tuple(comma_list(values))


def _ring_pages(ctx: click.Context, ringbuf_pages: int, rb_size: int, rb_size_total: int) -> int:
    """--ringbuf-pages, or Tetragon's --rb-size (per CPU) / --rb-size-total in bytes (0: not set).
    tetra has one BPF ring buffer for all CPUs: --rb-size counts once per CPU, and the bytes are
    rounded up to a power of two pages, which the kernel requires."""
    if rb_size and rb_size_total:
        raise click.UsageError("--rb-size and --rb-size-total: give one of them")
    size = rb_size_total or rb_size * (os.cpu_count() or 1)
    if not size:
        return ringbuf_pages
    if ctx.get_parameter_source("ringbuf_pages") not in (ParameterSource.DEFAULT, None):
        raise click.UsageError("--ringbuf-pages and --rb-size(-total): give one of them")
    pages = -(-size // os.sysconf("SC_PAGE_SIZE"))
    return 1 << (pages - 1).bit_length()


@click.command()
@click.option("--config-dir", metavar="DIR", is_eager=True, expose_value=False, callback=load_config_dir,
              help="Take flags from this directory: one file per flag, named after it, holding its value "
                   "(a mounted ConfigMap). The command line wins over it; it wins over --config-file.")
@click.option("--config-file", metavar="FILE", is_eager=True, expose_value=False, callback=load_config_file,
              help="Take flags from this YAML file: flag names (without --) to values.")
@click.option("--export-filename", metavar="PATH", help="Write events as JSON lines to this file.")
@click.option("--export-file-max-size-mb", type=click.FloatRange(min=0, min_open=True), default=10,
              show_default=True, help="Rotate the export file at this size.")
@click.option("--export-file-max-backups", type=click.IntRange(min=0), default=5, show_default=True,
              help="Rotated files to keep (file.1 is the newest).")
@click.option("--export-file-rotation-interval", metavar="DURATION", default=None,
              help="Also rotate after this long, e.g. 30s, 15m, 1h (default: size only).")
@click.option("--export-file-compress", is_flag=True, help="gzip rotated files.")
@click.option("--export-file-perm", default="600", show_default=True, help="Mode of the export file (octal).")
@click.option("--pid-file", metavar="PATH",
              help="Write the agent's pid here, locked while it runs (for logrotate: pkill -HUP -L -F PATH).")
@click.option("--process-cache-size", type=click.IntRange(min=1), default=65536, show_default=True,
              help="Most processes kept in the process cache.")
@click.option("--ringbuf-pages", type=click.IntRange(min=1), default=RINGBUF_PAGES, show_default=True,
              help="Kernel ring buffer size in pages (a power of two).")
@click.option("--rb-size", type=Size(), default="0", metavar="SIZE",
              help="Tetragon's per-CPU ring buffer size (K/M/G suffixes): the ring buffer gets this times the "
                   "CPUs, rounded up to a power of two pages (instead of --ringbuf-pages).")
@click.option("--rb-size-total", type=Size(), default="0", metavar="SIZE",
              help="Tetragon's total ring buffer size (K/M/G suffixes), rounded up to a power of two pages "
                   "(instead of --ringbuf-pages).")
@click.option("-o", "--output", "stdout", type=click.Choice(["compact", "json", "none"]), default="compact",
              show_default=True, help="What to print on standard output.")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True)
@click.option("--node-name", default=None, help="Node name in events and exec_ids (default: $NODE_NAME or host name).")
@cluster_name_option
@click.option("--tracing-policy", "tracing_policies", multiple=True, metavar="FILE",
              help="Load a TracingPolicy file (repeatable).")
@click.option("--tracing-policy-dir", metavar="DIR", help="Load every *.yaml policy in this directory.")
@click.option("--tracing-policy-keep-going", is_flag=True,
              help="Run even when a policy of --tracing-policy(-dir) fails to load (default: refuse to start, "
                   "with the reason).")
@click.option("--policy-cache-dir", metavar="DIR", default="/var/cache/tetra", show_default=True,
              help="Keep compiled policies here (root's, 0700) so later starts load them without compiling; "
                   "'' to compile at every start.")
@click.option("--server-address", "server_addresses", multiple=True, metavar="ADDRESS",
              default=(DEFAULT_SERVER_ADDRESS,), show_default=True,
              help="Serve the gRPC API (tetra getevents, status, tracingpolicy; and Tetragon's "
                   "FineGuidanceSensors, for Tetragon's clients) at unix:///path or host:port; "
                   "repeatable; only what is given is bound; '' for no server.")
@click.option("--server-tls-cert-file", metavar="PATH", help="TLS certificate for host:port addresses.")
@click.option("--server-tls-key-file", metavar="PATH", help="TLS private key for host:port addresses.")
@click.option("--server-tls-client-ca-file", metavar="PATH",
              help="Require client certificates signed by this CA (mutual TLS).")
@click.option("--server-insecure-tcp", is_flag=True,
              help="Serve host:port addresses without TLS (refused otherwise): any local user can then control "
                   "the agent, as every start warns.")
@export_filter_options
@click.option("--export-otlp-endpoint", metavar="HOST:PORT", help="Also send events as OTLP log records over gRPC.")
@click.option("--export-otlp-ca-file", metavar="PATH", help="TLS to the OTLP endpoint, trusting this CA.")
@click.option("--metrics-server", metavar="[HOST]:PORT", help="Serve Prometheus metrics here (e.g. :2112).")
@click.option("--health-server-address", metavar="[HOST]:PORT", default="",
              help="Serve GET /healthz here (e.g. :6789): 200 while the agent loop runs, 503 once it stalls or "
                   "stops, for Kubernetes probes (default: none).")
@click.option("--enable-k8s-api", is_flag=True,
              help="Use the Kubernetes API: pod metadata on events (pods of this node), and TracingPolicy objects.")
@click.option("--k8s-kubeconfig-path", metavar="PATH", help="Kubeconfig to use instead of the in-cluster config.")
@click.option("--enable-tracing-policy-crd", type=click.BOOL, default=True, show_default=True, is_flag=False,
              flag_value=True, metavar="BOOL",
              help="With --enable-k8s-api: load TracingPolicy and TracingPolicyNamespaced objects live, "
                   "their load state in their status (=false: pod metadata only).")
@click.option("--enable-pod-annotations", is_flag=True, help="Also add pod annotations to events.")
@click.option("--enable-process-cred", is_flag=True,
              help="Show each process's credentials and capabilities, and the privileges its exec raised "
                   "(process.process_credentials, process.cap, process.binary_properties).")
@click.option("--enable-process-ns", is_flag=True,
              help="Show each process's namespaces and whether it descends from a container's init "
                   "(process.ns, process.in_init_tree).")
@click.option("--enable-process-environment-variables", is_flag=True,
              help="Show the environment each process was exec'd with (process.environment_variables: the first "
                   "4 KiB of it; a variable cut there is left out and the process flagged truncEnv). Environments "
                   "hold secrets: see --filter-environment-variables and --redaction-filters.")
@click.option("--filter-environment-variables", multiple=True, metavar="NAMES", callback=_names,
              help="With --enable-process-environment-variables: show only these variables, comma-separated "
                   "(repeatable; default: all).")
@click.option("--username-metadata", type=click.Choice(["disabled", "unix"]), default="disabled", show_default=True,
              help="unix: name the uid of processes in the host's mount namespace from /etc/passwd "
                   "(process.user.name).")
@click.option("--enable-ancestors", multiple=True, metavar="TYPES", callback=_ancestor_types,
              help="List each process's ancestors (ancestors) on these events, comma-separated: base "
                   "(process_exec, process_exit; required by the others), kprobe, tracepoint, uprobe, lsm, usdt.")
@click.option("--cgroup-rate", metavar="EVENTS,INTERVAL", default="", callback=_cgroup_rate,
              help="Limit each cgroup's process events (exec, clone) in the kernel, e.g. 1000,1s: over it, "
                   "on a CPU (each counts its own, as Tetragon's), they are dropped and counted, and "
                   "process_throttle events say when that starts and stops (default: no limit).")
@click.option("--record-ring", metavar="FILE", hidden=True,
              help="Debugging: write every ring record the pipeline reads, and what it needs to decode them, "
                   "to FILE, for `tetra replay`.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text", show_default=True,
              help="json: one JSON object per log line (time, level, msg).")
@click.option("-d", "--debug", is_flag=True, help="Same as --log-level debug.")
def agent(export_filename: str | None, export_file_max_size_mb: float, export_file_max_backups: int,
          export_file_rotation_interval: str | None, export_file_compress: bool, export_file_perm: str,
          pid_file: str | None, process_cache_size: int, ringbuf_pages: int, rb_size: int, rb_size_total: int,
          stdout: str, color: str, node_name: str | None, cluster_name: str,
          tracing_policies: tuple[str, ...], tracing_policy_dir: str | None, tracing_policy_keep_going: bool,
          policy_cache_dir: str,
          server_addresses: tuple[str, ...],
          server_tls_cert_file: str | None, server_tls_key_file: str | None, server_tls_client_ca_file: str | None,
          server_insecure_tcp: bool, export_allowlist: str, export_denylist: str, field_filters: str, redaction_filters: str,
          export_rate_limit: int, enable_pid_set_filter: bool, export_otlp_endpoint: str | None,
          export_otlp_ca_file: str | None, metrics_server: str | None, health_server_address: str,
          enable_k8s_api: bool,
          k8s_kubeconfig_path: str | None, enable_tracing_policy_crd: bool, enable_pod_annotations: bool,
          enable_process_cred: bool, enable_process_ns: bool, enable_process_environment_variables: bool,
          filter_environment_variables: tuple[str, ...], username_metadata: str, enable_ancestors: tuple[str, ...],
          cgroup_rate: CgroupRate | None, record_ring: str | None, log_level: str, log_format: str, debug: bool) -> None:
    """Observe process execution and exit, and the hooks of TracingPolicies, until interrupted.

    Prints one line per event (compact by default; the processes read from
    /proc at start are left out there) and, with --export-filename, writes
    Tetragon-compatible JSON lines. A policy of --tracing-policy(-dir)
    that cannot be read, validated or loaded stops the agent with the reason
    (exit 1) unless --tracing-policy-keep-going. On SIGINT/SIGTERM it detaches every
    probe and prints a JSON summary of what it saw and lost to stderr. SIGHUP
    reopens the export file (after logrotate moved it; a move or delete is also
    noticed within a second without it).
    """
    ctx = click.get_current_context()
    debug = debug or bool(ctx.find_root().params.get("debug"))  # `tetra -d agent` too
    configure_logging("debug" if debug else log_level, log_format)
    if os.geteuid() != 0:
        raise click.ClickException("the agent needs root: it loads BPF programs into the kernel")
    if filter_environment_variables and not enable_process_environment_variables:
        raise click.UsageError("--filter-environment-variables needs --enable-process-environment-variables")
    config = AgentConfig(
        export_filename=export_filename,
        export_file_max_size_mb=export_file_max_size_mb,
        export_file_max_backups=export_file_max_backups,
        export_file_rotation_interval=parse_duration(export_file_rotation_interval),
        export_file_compress=export_file_compress,
        export_file_perm=parse_perm(export_file_perm),
        process_cache_size=process_cache_size,
        ringbuf_pages=_ring_pages(ctx, ringbuf_pages, rb_size, rb_size_total),
        stdout=stdout,
        color=color == "always" or (color == "auto" and sys.stdout.isatty()),
        node_name=node_name,
        cluster_name=cluster_name,
        tracing_policies=tracing_policies,
        tracing_policy_dir=tracing_policy_dir,
        tracing_policy_keep_going=tracing_policy_keep_going,
        policy_cache_dir=policy_cache_dir,
        server_addresses=server_addresses,
        server_tls_cert_file=server_tls_cert_file,
        server_tls_key_file=server_tls_key_file,
        server_tls_client_ca_file=server_tls_client_ca_file,
        server_insecure_tcp=server_insecure_tcp,
        export_allowlist=export_allowlist,
        export_denylist=export_denylist,
        field_filters=field_filters,
        redaction_filters=redaction_filters,
        export_rate_limit=export_rate_limit,
        enable_pid_set_filter=enable_pid_set_filter,
        export_otlp_endpoint=export_otlp_endpoint,
        export_otlp_ca_file=export_otlp_ca_file,
        metrics_server=metrics_server,
        health_server_address=health_server_address,
        enable_k8s_api=enable_k8s_api,
        k8s_kubeconfig_path=k8s_kubeconfig_path,
        enable_tracing_policy_crd=enable_tracing_policy_crd,
        enable_pod_annotations=enable_pod_annotations,
        enable_process_cred=enable_process_cred,
        enable_process_ns=enable_process_ns,
        enable_process_environment_variables=enable_process_environment_variables,
        filter_environment_variables=filter_environment_variables,
        username_metadata=username_metadata,
        enable_ancestors=enable_ancestors,
        cgroup_rate=cgroup_rate,
        record_ring=record_ring,
    )
    from tetra.app.build import build_agent  # here: every other command starts without the agent's modules

    runner = build_agent(config)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        runner.stop.set()

    def reopen(_signum: int, _frame: FrameType | None) -> None:
        runner.reopen.set()  # the agent thread reopens: it is the one writing the file

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, reopen)
    with PidFile(pid_file) if pid_file else nullcontext():  # after the handlers: a HUP must not kill
        summary = runner.run()
    sys.stderr.write(orjson.dumps({"summary": summary.as_dict()}).decode() + "\n")
