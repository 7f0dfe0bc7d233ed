"""The services the agent runs beside its loop (runner.Service), besides the API server.

Each is built from the flags by build.py, started once the agent is ready to
serve (``start(agent)``: what it needs of the agent is there by then) and
stopped before the agent's sensors close.
"""

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import orjson

from tetra.agent.commands import CommandQueue
from tetra.agent.health import check
from tetra.agent.runner import Agent
from tetra.errors import ExportError
from tetra.export.metrics import SnapshotCollector, parse_address, serve

if TYPE_CHECKING:
    from tetra.agent.k8s_policies import K8sPolicies

log = logging.getLogger(__name__)


class MetricsEndpoint:
    """--metrics-server: Prometheus metrics of the status the agent hands ``collector`` every tick."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.collector = SnapshotCollector()
        self._server: object | None = None

    def start(self, agent: Agent) -> None:
        self._server = serve(self.address, self.collector)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]


class HealthEndpoint:
    """--health-server-address: GET /healthz answers 200 while the agent loop runs and 503 once it
    stalls or stops (the API's GetHealth verdict, agent/health.py), for Kubernetes probes and
    systemd-less watchdogs. Plain HTTP: kubelet's httpGet needs no client, and it tells nothing
    but liveness. Not bound before the agent is ready: a probe until then sees a refused
    connection, which a startupProbe waits out while the probes compile."""

    def __init__(self, address: str) -> None:
        self.host, self.port = parse_address(address, "--health-server-address")
        self._server: ThreadingHTTPServer | None = None
        self._stopping = threading.Event()

    def start(self, agent: Agent) -> None:
        commands, stopping = agent.commands, self._stopping

        def stopping_now() -> bool:
            return stopping.is_set() or agent.stop.is_set()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.split("?", 1)[0] != "/healthz":
                    self.send_error(404, "only /healthz is served here")
                    return
                health = check(commands, stopping_now())
                body = orjson.dumps({"status": health.status, "details": health.details}) + b"\n"
                self.send_response(200 if health.running else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # a probe every few seconds: not logged
                pass

        server_class = _Http6Server if ":" in self.host else ThreadingHTTPServer
        try:
            self._server = server_class((self.host, self.port), Handler)
        except OSError as err:
            raise ExportError(f"--health-server-address {self.host}:{self.port}: {err.strerror}") from err
        threading.Thread(target=self._server.serve_forever, name="health-server", daemon=True).start()
        log.info("health serving at http://%s:%d/healthz", f"[{self.host}]" if ":" in self.host else self.host,
                 self.port)

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _Http6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class PolicyObjectWatch:
    """TracingPolicy objects of the Kubernetes API, loaded live (--enable-k8s-api, unless
    --enable-tracing-policy-crd=false): watcher threads that hand their loads to the agent
    thread through its command queue. Started after the policy files: a name they hold is a
    conflict for an object."""

    def __init__(self, node: str, kubeconfig: str | None, commands: CommandQueue) -> None:
        self.node = node
        self.kubeconfig = kubeconfig
        self.commands = commands
        self.watch: "K8sPolicies | None" = None

    def start(self, agent: Agent) -> None:
        from tetra.agent.k8s_policies import K8sPolicies

        self.watch = K8sPolicies.for_manager(agent.policies, self.node, self.kubeconfig, self.commands)
        self.watch.start()

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.stop()
