"""What tetra keeps of a pod, read from the API's JSON, and Tetragon's ``pod`` object.

Pods are read as the API server sends them (camelCase JSON), not through the
client's generated models: only a dozen fields matter, and a newer API server's
unknown fields or enum values must not make a pod unreadable::

    API pod JSON ──> pod_info() ──> PodInfo ──> PodInfo.to_json(container id, binary, arguments)
                                     └─ containers: bare container id -> ContainerInfo
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from posixpath import basename
from typing import Any

from tetra.process.model import join_arguments

# A Job named "<cronjob>-<scheduled time in minutes>" was made by that CronJob (Tetragon's heuristic).
_CRONJOB_JOB = re.compile(r"(.+)-\d{8,10}")
_STATUS_LISTS = ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses")
_SPEC_LISTS = ("initContainers", "containers", "ephemeralContainers")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container of a pod as its status reports it."""

    id: str  # as the runtime reports it: "containerd://<id>", "cri-o://<id>", "docker://<id>"
    name: str
    image: str
    image_id: str
    start_time: str  # RFC 3339 from the API; "" before the container ran
    privileged: bool
    exec_probes: tuple[tuple[str, ...], ...]  # the exec commands of its liveness/readiness/startup probes


@dataclass(frozen=True, slots=True)
class PodInfo:
    """A pod of this node; ``annotations`` is None unless annotations were asked for."""

    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str] | None
    workload: str
    workload_kind: str
    containers: Mapping[str, ContainerInfo]  # bare container id (no "runtime://") -> container

    def container(self, container_id: str) -> ContainerInfo | None:
        """The container with this bare id, or with an id it begins (a 31-character ``docker`` field)."""
        found = self.containers.get(container_id)
        if found is None and container_id:
            found = next((c for cid, c in self.containers.items() if cid.startswith(container_id)), None)
        return found

    def to_json(self, container_id: str, *, binary: str = "", arguments: str = "",
                pid: int | None = None) -> dict[str, Any]:
        """Tetragon's Pod message in its JSON mapping (empty fields omitted).

        ``container_id`` is the bare id from the cgroup (or its first 31
        characters, as in ``process.docker``); ``binary`` and
        ``arguments`` (as in the process) decide ``maybe_exec_probe``; ``pid``
        is the process's pid inside the container's pid namespace, if known.
        ``container`` is left out when the pod does not list that container
        yet (found through the pod uid of its cgroup path).
        """
        out: dict[str, Any] = {"namespace": self.namespace, "name": self.name, "uid": self.uid}
        container = self.container(container_id)
        if container is not None:
            out["container"] = _container_json(container, binary, arguments, pid)
        if self.labels:
            out["pod_labels"] = dict(self.labels)
        if self.workload:
            out["workload"] = self.workload
        if self.workload_kind:
            out["workload_kind"] = self.workload_kind
        if self.annotations:
            out["pod_annotations"] = dict(self.annotations)
        return out


def pod_info(pod: Mapping[str, Any], *, annotations: bool = False) -> PodInfo:
    """A PodInfo from the API's JSON for a pod (a list item or a watch event's object)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    specs = {c.get("name", ""): c for key in _SPEC_LISTS for c in spec.get(key) or ()}
    containers = {}
    for key in _STATUS_LISTS:
        for cs in status.get(key) or ():
            full_id = cs.get("containerID") or ""
            if full_id:
                containers[full_id.partition("://")[2] or full_id] = _container_info(cs, specs.get(cs.get("name")))
    workload, kind = workload_of(meta)
    return PodInfo(namespace=meta.get("namespace", ""), name=meta.get("name", ""), uid=meta.get("uid", ""),
                   labels=meta.get("labels") or {}, annotations=(meta.get("annotations") or {}) if annotations else None,
                   workload=workload, workload_kind=kind, containers=containers)


def workload_of(meta: Mapping[str, Any]) -> tuple[str, str]:
    """(workload name, kind) as Tetragon derives them from a pod's metadata.

    Only pods with a generated name follow their controller: a ReplicaSet whose
    name ends in the pod-template-hash label is a Deployment's, an OpenShift
    ReplicationController with a ``deploymentconfig`` label is that
    DeploymentConfig's, a Job named like a CronJob's run is that CronJob's;
    other controllers (StatefulSet, DaemonSet, Job, ...) are named as they are.
    Anything else is its own workload of kind Pod.
    """
    name = meta.get("name", "")
    labels = meta.get("labels") or {}
    if not meta.get("generateName"):
        return name, "Pod"
    owner = next((ref for ref in meta.get("ownerReferences") or () if ref.get("controller")), None)
    if owner is None:
        return name, "Pod"
    kind, workload = owner.get("kind", ""), owner.get("name", "")
    template_hash = labels.get("pod-template-hash", "")
    if kind == "ReplicaSet" and template_hash and workload.endswith(template_hash):
        return workload.removesuffix("-" + template_hash), "Deployment"
    if kind == "ReplicationController" and labels.get("deploymentconfig"):
        return labels["deploymentconfig"], "DeploymentConfig"
    if kind == "Job" and (match := _CRONJOB_JOB.fullmatch(workload)):
        return match[1], "CronJob"
    return workload or name, kind


def maybe_exec_probe(binary: str, arguments: str, command: tuple[str, ...]) -> bool:
    """Whether a process (binary, joined arguments) runs this exec probe command, as Tetragon decides.

    A relative probe command matches on the binary's base name. A script run
    through its shebang line has its own path as first argument, so that form
    matches too.
    """
    if not command:
        return False
    if command[0].startswith("/"):
        if binary != command[0]:
            return False
    elif basename(binary) != basename(command[0]):
        return False
    if arguments == join_arguments(["", *command[1:]]):
        return True
    return command[0] == binary and arguments == join_arguments(["", binary, *command[1:]])


def _container_info(cs: Mapping[str, Any], spec: Mapping[str, Any] | None) -> ContainerInfo:
    state = cs.get("state") or {}
    started = (state.get("running") or state.get("terminated") or {}).get("startedAt") or ""
    spec = spec or {}
    probes = tuple(tuple(cmd) for key in _PROBES
                   if (cmd := ((spec.get(key) or {}).get("exec") or {}).get("command")))
    privileged = bool((spec.get("securityContext") or {}).get("privileged"))
    return ContainerInfo(id=cs.get("containerID", ""), name=cs.get("name", ""), image=cs.get("image", ""),
                         image_id=cs.get("imageID", ""), start_time=started, privileged=privileged,
                         exec_probes=probes)


def _container_json(container: ContainerInfo, binary: str, arguments: str, pid: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": container.id, "name": container.name}
    image = {key: value for key, value in (("id", container.image_id), ("name", container.image)) if value}
    if image:
        out["image"] = image
    if container.start_time:
        out["start_time"] = container.start_time
    if pid:
        out["pid"] = pid
    if binary and any(maybe_exec_probe(binary, arguments, cmd) for cmd in container.exec_probes):
        out["maybe_exec_probe"] = True
    if container.privileged:
        out["security_context"] = {"privileged": True}
    return out
