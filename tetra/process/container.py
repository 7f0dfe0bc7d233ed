"""Container ids from cgroup names, for hosts with and without Kubernetes.

Runtimes name a container's cgroup after its id: ``docker-<id>.scope``,
``cri-containerd-<id>.scope``, ``crio-<id>.scope``, ``libpod-<id>.scope``, or
plainly ``<id>`` under cgroupfs kubelets and ``/docker/``. The id is the part
after the last '-' or ':' of the leaf name, without ``.scope``, when it is a
64-character hex string.
"""

import re

_ID = re.compile(r"[0-9a-f]{64}")
DOCKER_FIELD_LEN = 31  # Tetragon's process.docker carries this many characters


def container_id(cgroup_name: str) -> str:
    """The container id named by a cgroup leaf, or "" when it names none."""
    name = cgroup_name.removesuffix(".scope")
    for sep in ("-", ":"):
        name = name.rpartition(sep)[2]
    return name if _ID.fullmatch(name) else ""
