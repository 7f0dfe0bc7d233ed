"""RuntimeHook's createContainer: what the runtime tells becomes a container of its pod in the index.

The hook's fields as Tetragon's OCI hook fills them, or empty with the CRI
annotations and the cgroup path (either cgroup driver's form) saying the same;
then the index: the container is found by its id (and the ``docker`` prefix)
before any pod status lists it, and what the watcher lists later wins.
"""

import uuid

from tetra.enrich.podindex import PodIndex
from tetra.enrich.pods import ContainerInfo, PodInfo
from tetra.enrich.runtime_hook import HookedContainer, hooked_container

CID = "0123456789abcdef" * 4
UID = str(uuid.UUID(int=7))
SYSTEMD = f"kubepods-besteffort-pod{UID.replace('-', '_')}.slice:cri-containerd:{CID}"
CGROUPFS = f"/kubepods/besteffort/pod{UID}/{CID}"
CONTAINERD = {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.container-name": "web",
              "io.kubernetes.cri.sandbox-name": "shop-1", "io.kubernetes.cri.sandbox-namespace": "prod",
              "io.kubernetes.cri.sandbox-uid": UID, "io.kubernetes.cri.image-name": "docker.io/library/nginx:1"}
CRIO = {"io.kubernetes.cri-o.ContainerType": "container", "io.kubernetes.container.name": "web",
        "io.kubernetes.pod.name": "shop-1", "io.kubernetes.pod.namespace": "prod", "io.kubernetes.pod.uid": UID,
        "io.kubernetes.cri-o.ImageName": "docker.io/library/nginx:1"}


def _hooked(path: str, annotations: dict[str, str], **fields: str) -> HookedContainer:
    hooked = hooked_container(path, annotations, **fields)
    assert isinstance(hooked, HookedContainer), hooked
    return hooked


def test_the_fields_as_tetragons_hook_fills_them() -> None:
    hooked = _hooked(SYSTEMD, {}, container_id=CID, container_name="web", pod_name="shop-1", pod_uid=UID,
                     pod_namespace="prod", image="nginx:1")
    assert (hooked.pod_uid, hooked.pod_namespace, hooked.pod_name, hooked.container_id) == (UID, "prod", "shop-1", CID)
    assert (hooked.container.id, hooked.container.name, hooked.container.image) == (
        f"containerd://{CID}", "web", "nginx:1")


def test_empty_fields_come_from_the_annotations_and_the_cgroup_path() -> None:
    for path, annotations, prefix in ((SYSTEMD, CONTAINERD, "containerd://"), (CGROUPFS, CONTAINERD, "containerd://"),
                                      (CGROUPFS, CRIO, "cri-o://")):
        hooked = _hooked(path, annotations)
        assert (hooked.pod_uid, hooked.pod_namespace, hooked.pod_name, hooked.container_id) == (
            UID, "prod", "shop-1", CID), path
        assert (hooked.container.id, hooked.container.name, hooked.container.image) == (
            prefix + CID, "web", "docker.io/library/nginx:1"), path


def test_what_is_not_registered_says_why() -> None:
    sandbox = hooked_container(SYSTEMD, {**CONTAINERD, "io.kubernetes.cri.container-type": "sandbox"})
    assert sandbox == "a pod sandbox, which runs none of the pod's processes"
    bare = hooked_container("/system.slice/cron.service", {})
    assert bare == "no container id, pod uid, pod name, pod namespace in the fields, annotations or cgroup path"
    assert hooked_container("", {"io.kubernetes.cri.sandbox-name": "x"}, container_id=CID, pod_uid=UID) == (
        "no pod namespace in the fields, annotations or cgroup path")


def test_the_index_finds_the_container_before_the_watcher_lists_it() -> None:
    index = PodIndex(ttl=60)
    hooked = _hooked(SYSTEMD, CONTAINERD)
    assert index.add_container(hooked)
    pod = index.lookup(CID[:31])  # the process's docker field
    assert pod is not None and (pod.namespace, pod.name, pod.uid) == ("prod", "shop-1", UID)
    assert pod.to_json(CID[:31])["container"] == {"id": f"containerd://{CID}", "name": "web",
                                                  "image": {"name": "docker.io/library/nginx:1"}}
    assert not index.add_container(hooked)  # listed already: nothing changes
    # the watcher lists the pod with its other container running: the hook's stays findable (the TTL)
    other = "f" * 64
    listed = PodInfo("prod", "shop-1", UID, {"app": "shop"}, None, "shop", "Deployment",
                     {other: ContainerInfo(f"containerd://{other}", "sidecar", "envoy", "", "", False, ())})
    index.upsert(listed)
    assert index.lookup(other) is listed and index.lookup(CID) is not None


def test_a_listed_pod_gains_the_hooks_container() -> None:
    index = PodIndex(ttl=60)
    listed = PodInfo("prod", "shop-1", UID, {"app": "shop"}, None, "shop", "Deployment", {})
    index.upsert(listed)
    version = index.snapshot()[0]
    assert index.add_container(_hooked(CGROUPFS, CRIO))
    pod = index.lookup(CID)
    assert pod is not None and pod.labels == {"app": "shop"} and pod.workload_kind == "Deployment"
    assert pod.container(CID) is not None and pod.container(CID).name == "web"  # type: ignore[union-attr]
    assert index.snapshot()[0] > version  # pod-scoped policies see the new container too
