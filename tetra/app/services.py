"""The services the agent runs beside its loop (runner.Service), besides the API server.

Each is built from the flags by build.py, started once the agent is ready to
serve (``start(agent)``: what it needs of the agent is there by then) and
stopped before the agent's sensors close.
"""

from typing import TYPE_CHECKING

from tetra.agent.commands import CommandQueue
from tetra.agent.runner import Agent
from tetra.export.metrics import SnapshotCollector, serve

if TYPE_CHECKING:
    from tetra.agent.k8s_policies import K8sPolicies


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
