"""Agent settings, named after Tetragon's agent flags."""

from dataclasses import dataclass

from tetra.process.throttle import CgroupRate
from tetra.wire.constants import RINGBUF_PAGES

# Where the agent serves its API unless told otherwise, and where clients look for it.
DEFAULT_SERVER_ADDRESS = "unix:///var/run/tetra/tetra.sock"


@dataclass(frozen=True)
class AgentConfig:
    export_filename: str | None = None
    export_file_max_size_mb: float = 10
    export_file_max_backups: int = 5
    export_file_rotation_interval: float | None = None
    export_file_compress: bool = False
    export_file_perm: int = 0o600
    process_cache_size: int = 65536
    ringbuf_pages: int = RINGBUF_PAGES
    stdout: str = "compact"  # compact | json | none
    color: bool = False
    node_name: str | None = None
    cluster_name: str = ""  # top-level cluster_name of exported events ("": none)
    tracing_policies: tuple[str, ...] = ()
    tracing_policy_dir: str | None = None
    tracing_policy_keep_going: bool = False  # run when a start-up policy failed (default: refuse to start)
    policy_cache_dir: str = "/var/cache/tetra"  # compiled policy objects ("": compile at every start)
    # gRPC API: every address is bound (none: no server); TLS applies to host:port addresses.
    server_addresses: tuple[str, ...] = (DEFAULT_SERVER_ADDRESS,)
    server_tls_cert_file: str | None = None
    server_tls_key_file: str | None = None
    server_tls_client_ca_file: str | None = None
    server_insecure_tcp: bool = False  # host:port without TLS: any local user controls the agent
    # Export filters (Tetragon's syntax), in front of the JSON file, stdout and OTLP exporters.
    export_allowlist: str = ""
    export_denylist: str = ""
    field_filters: str = ""
    redaction_filters: str = ""
    export_rate_limit: int = -1  # events per minute; -1: no limit
    enable_pid_set_filter: bool = False
    export_otlp_endpoint: str | None = None
    export_otlp_ca_file: str | None = None
    metrics_server: str | None = None
    health_server_address: str = ""  # GET /healthz for probes ("": none; Tetragon's default :6789 is opt-in here)
    enable_k8s_api: bool = False
    k8s_kubeconfig_path: str | None = None
    enable_tracing_policy_crd: bool = True  # with enable_k8s_api: load TracingPolicy(Namespaced) objects
    enable_pod_annotations: bool = False
    enable_process_cred: bool = False  # process.cap and process.process_credentials on every process
    enable_process_ns: bool = False  # process.ns on every process
    enable_process_environment_variables: bool = False  # process.environment_variables (tetra/process/environ.py)
    filter_environment_variables: tuple[str, ...] = ()  # the names shown (none: all)
    username_metadata: str = "disabled"  # "unix": process.user.name from /etc/passwd
    enable_ancestors: tuple[str, ...] = ()  # Tetragon's type words: base, kprobe, ... (agent/ancestors.py)
    cgroup_rate: CgroupRate | None = None  # --cgroup-rate: per-cgroup limit of process events, in the kernel
    record_ring: str | None = None  # hidden --record-ring: the pipeline's inputs written for `tetra replay`
