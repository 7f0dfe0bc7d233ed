"""Container ids (and pod uids) from cgroup names, for hosts with and without Kubernetes.

Runtimes name a container's cgroup v2 directory after its id::

    containerd, systemd driver  /kubepods.slice/kubepods-besteffort.slice/
                                    kubepods-besteffort-pod<uid, '-' as '_'>.slice/cri-containerd-<id>.scope
    kubelet, cgroupfs driver    /kubepods/<qos>/pod<uid>/<id>        (Guaranteed pods: /kubepods/pod<uid>/<id>)
    CRI-O                       crio-<id>.scope      crio-conmon-<id>.scope is its monitor, not the container
    Docker                      /system.slice/docker-<id>.scope, or /docker/<id> (cgroupfs driver)
    Podman                      libpod-<id>.scope    libpod-conmon-<id>.scope is its monitor

As in Tetragon, the id is the part of a directory name after the last '-' or
':', without ``.scope``, when it is 64 hex characters. A process may sit below
its container's directory (systemd or a nested runtime inside the container),
so a path's container is the innermost directory that names one; conmon
monitors name none, so theirs is the container around them, if any. The pod
uid comes from a ``pod<uid>`` directory above the container.
"""

import re
from functools import lru_cache
from dataclasses import dataclass

_ID = re.compile(r"[0-9a-f]{64}")
DOCKER_FIELD_LEN = 31  # Tetragon's process.docker carries this many characters

# kubepods-besteffort-pod<uid>.slice, kubepods-pod<uid>.slice (systemd: '_' for '-'), pod<uid> (cgroupfs).
# Static pods' uids are 32 hex characters (a hash of the manifest), others are UUIDs.
_POD = re.compile(r"(?:kubepods(?:-[a-z]+)?-)?pod(?P<uid>[0-9a-f]{8}(?:[-_][0-9a-f]{4}){3}[-_][0-9a-f]{12}"
                  r"|[0-9a-f]{32})(?:\.slice)?")
_MONITORS = ("crio-conmon-", "libpod-conmon-")
_RUNTIMES = {"cri-containerd": "containerd", "containerd": "containerd", "nerdctl": "containerd",
             "crio": "cri-o", "docker": "docker", "libpod": "podman"}


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """The container a cgroup belongs to, as far as its path tells.

    ``runtime`` is "containerd", "cri-o", "docker" or "podman", or "" when the
    name does not say (a bare id, as cgroupfs kubelets name containers);
    ``pod_uid`` is "" outside Kubernetes pods.
    """

    container_id: str
    pod_uid: str
    runtime: str


@lru_cache(maxsize=4096)
def container_id(cgroup_name: str) -> str:
    """The container id named by a cgroup leaf, or "" when it names none (remembered: a node
    runs many processes in few cgroups, and this runs at every exec)."""
    return _named_id(cgroup_name)[0]


def container_ref(cgroup_path: str) -> ContainerRef | None:
    """The container of a cgroup v2 path ("/kubepods.slice/..."), or None outside containers."""
    parts = cgroup_path.strip("/").split("/")
    for depth in range(len(parts) - 1, -1, -1):
        cid, runtime = _named_id(parts[depth])
        if cid:
            if not runtime and depth and parts[depth - 1] == "docker":
                runtime = "docker"
            return ContainerRef(cid, _pod_uid(parts[:depth]), runtime)
    return None


def _named_id(name: str) -> tuple[str, str]:
    """(container id, runtime) named by one cgroup directory; ("", "") when it names none."""
    if name.startswith(_MONITORS):
        return "", ""
    stem = name.removesuffix(".scope")
    cid = stem
    for sep in ("-", ":"):
        cid = cid.rpartition(sep)[2]
    if not _ID.fullmatch(cid):
        return "", ""
    prefix = stem[: -len(cid)].rstrip("-:")
    return cid, _RUNTIMES.get(prefix, "")


def _pod_uid(ancestors: list[str]) -> str:
    """The pod uid named by the nearest ``pod<uid>`` directory among ancestors, or ""."""
    for name in reversed(ancestors):
        if match := _POD.fullmatch(name):
            return match["uid"].replace("_", "-")
    return ""
