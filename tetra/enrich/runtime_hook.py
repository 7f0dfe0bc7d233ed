"""A container its runtime is creating, as the OCI hook reports it (Tetragon's RuntimeHook createContainer).

The hook runs before the container's first process. At that moment the pod's
status does not list the container (it lists containers once they started),
and the pod watcher may not even have the pod yet, so the first execs of a
new container would go out without their pod (the process cache asks for the
pod once per process, at exec). The hook's fields are what the runtime knows:
the container's id, cgroup and image, and the pod's name, namespace and uid
(from the CRI annotations when the hook left its fields empty)::

    CreateContainer ──> hooked_container() ──> HookedContainer ──> PodWatcher.add_container()
                                                                      └─> PodIndex: the pod (listed, or
                                                                          known from the hook alone)
                                                                          now with this container

What the watcher lists later replaces it: the pod as the API has it, and the
container as its status reports it (a container the status does not list yet
stays findable for the index's TTL, as a replaced one does).
"""

from collections.abc import Mapping
from dataclasses import dataclass

from tetra.enrich.pods import ContainerInfo
from tetra.process.container import ContainerRef, container_ref

# The hook's field -> the annotations that carry it: containerd's CRI plugin's, then CRI-O's.
_ANNOTATIONS = {
    "container_name": ("io.kubernetes.cri.container-name", "io.kubernetes.container.name"),
    "pod_name": ("io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"),
    "pod_namespace": ("io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace"),
    "pod_uid": ("io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"),
    "image": ("io.kubernetes.cri.image-name", "io.kubernetes.cri-o.ImageName"),
}
# The pod's sandbox (pause) container runs none of the pod's processes: Tetragon's pods do not list it.
_CONTAINER_TYPE = ("io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType")
# How the API prefixes a container id (the pod status's containerID), by runtime (tetra/process/container.py)
_ID_PREFIX = {"containerd": "containerd://", "cri-o": "cri-o://", "docker": "docker://"}


@dataclass(frozen=True, slots=True)
class HookedContainer:
    """A new container and the pod it belongs to."""

    pod_uid: str
    pod_namespace: str
    pod_name: str
    container_id: str  # bare, as the cgroup names it
    container: ContainerInfo


def hooked_container(cgroups_path: str, annotations: Mapping[str, str], *, container_id: str = "",
                     container_name: str = "", pod_name: str = "", pod_uid: str = "", pod_namespace: str = "",
                     image: str = "") -> HookedContainer | str:
    """The container of a createContainer hook, or why there is none to register (a sentence).

    Empty fields are taken from the annotations, the id and the pod uid from
    ``cgroups_path`` last (a path, or the systemd driver's "slice:prefix:name")."""
    ref = _cgroup_ref(cgroups_path)
    if any(annotations.get(key) == "sandbox" for key in _CONTAINER_TYPE):
        return "a pod sandbox, which runs none of the pod's processes"
    container_id = container_id or (ref.container_id if ref else "")
    pod_uid = pod_uid or _annotation(annotations, "pod_uid") or (ref.pod_uid if ref else "")
    pod_name = pod_name or _annotation(annotations, "pod_name")
    pod_namespace = pod_namespace or _annotation(annotations, "pod_namespace")
    missing = [what for what, value in (("container id", container_id), ("pod uid", pod_uid),
                                        ("pod name", pod_name), ("pod namespace", pod_namespace)) if not value]
    if missing:
        return "no " + ", ".join(missing) + " in the fields, annotations or cgroup path"
    runtime = ref.runtime if ref else ""
    if not runtime:
        runtime = "cri-o" if any(key.startswith("io.kubernetes.cri-o.") for key in annotations) else (
            "containerd" if any(key.startswith("io.kubernetes.cri.") for key in annotations) else "")
    container = ContainerInfo(id=_ID_PREFIX.get(runtime, "") + container_id,
                              name=container_name or _annotation(annotations, "container_name"),
                              image=image or _annotation(annotations, "image"), image_id="", start_time="",
                              privileged=False, exec_probes=())
    return HookedContainer(pod_uid, pod_namespace, pod_name, container_id, container)


def _annotation(annotations: Mapping[str, str], field: str) -> str:
    return next((annotations[key] for key in _ANNOTATIONS[field] if annotations.get(key)), "")


def _cgroup_ref(cgroups_path: str) -> ContainerRef | None:
    """The OCI spec's cgroupsPath: a path, or with the systemd cgroup driver "slice:prefix:name",
    which systemd makes <slice>/<prefix>-<name>.scope."""
    if "/" not in cgroups_path and cgroups_path.count(":") == 2:
        parent, prefix, name = cgroups_path.split(":")
        cgroups_path = f"/{parent}/{prefix}-{name}.scope"
    return container_ref(cgroups_path) if cgroups_path else None
