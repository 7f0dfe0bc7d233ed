"""One call per process: its ``docker`` field (or cgroup) to Tetragon's ``pod`` object.

The 31-character ``docker`` field, which the exec record's cgroup leaf name
gave, is asked first: it is a dictionary lookup and finds almost every pod.
Only when it finds none is the cgroup id resolved to a path, which may walk
the cgroup tree (tens of milliseconds on a busy node). The path names the
container of a process below its container's cgroup, and the pod uid, which
finds the pod while its status does not list a just-started container yet.
"""

from typing import Any, Protocol

from tetra.enrich.pods import PodInfo
from tetra.process.container import ContainerRef
from tetra.process.model import Process


class Containers(Protocol):
    """cgroups.CgroupResolver"""

    def container(self, cgroup_id: int) -> ContainerRef | None: ...


class Pods(Protocol):
    """k8s.PodWatcher (or a podindex.PodIndex)"""

    def lookup(self, container_id: str, pod_uid: str = "") -> PodInfo | None: ...


class PodEnricher:
    """Pod lookups for the pipeline; ``resolver`` None means container ids come from ``docker`` only.

    Call it once per process (at exec, or when an event first needs it) and keep
    the result with the process: building the object costs a few microseconds.
    """

    def __init__(self, pods: Pods, resolver: Containers | None = None) -> None:
        self.pods = pods
        self.resolver = resolver

    def pod_json(self, cgroup_id: int, docker: str, *, binary: str = "", arguments: str = "") -> dict[str, Any] | None:
        """The ``pod`` object for a process, or None when it is in no known pod."""
        container_id = docker
        pod = self.pods.lookup(docker) if docker else None
        if pod is None and self.resolver is not None and cgroup_id:
            ref = self.resolver.container(cgroup_id)
            if ref is not None:
                container_id = ref.container_id
                pod = self.pods.lookup(ref.container_id, ref.pod_uid)
        return pod.to_json(container_id, binary=binary, arguments=arguments) if pod is not None else None

    def of_process(self, proc: Process) -> dict[str, Any] | None:
        """The ``pod`` object of a new process: the process cache's enrichment stage."""
        return self.pod_json(proc.cgroup_id, proc.docker, binary=proc.binary, arguments=proc.arguments)
