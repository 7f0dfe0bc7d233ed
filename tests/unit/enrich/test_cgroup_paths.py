"""Container ids, runtimes and pod uids from cgroup v2 paths as each runtime and kubelet names them."""

import pytest

from tetra.process.container import ContainerRef, container_id, container_ref

CID = "3f4e1b0c9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
UID = "0d0e5e2c-6a1b-4c8e-9f00-1a2b3c4d5e6f"
UID_ = UID.replace("-", "_")  # systemd slices cannot hold '-' inside a name part
STATIC_UID = "6c2bd8e1f0a94b7d8c3e5f60718293a4"  # static pods: a hash, not a UUID
SYSTEMD_POD = f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice"


@pytest.mark.parametrize("path,expected", [
    # containerd, kubelet with the systemd cgroup driver
    (f"{SYSTEMD_POD}/cri-containerd-{CID}.scope", ContainerRef(CID, UID, "containerd")),
    (f"/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope", ContainerRef(CID, UID, "containerd")),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{STATIC_UID}.slice/cri-containerd-{CID}.scope",
     ContainerRef(CID, STATIC_UID, "containerd")),
    # CRI-O: the container, and its conmon monitor which is not a container
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{CID}.scope",
     ContainerRef(CID, UID, "cri-o")),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{CID}.scope", None),
    # kubelet with the cgroupfs driver: the leaf is the bare id
    (f"/kubepods/besteffort/pod{UID}/{CID}", ContainerRef(CID, UID, "")),
    (f"/kubepods/burstable/pod{UID}/{CID}", ContainerRef(CID, UID, "")),
    (f"/kubepods/pod{UID}/{CID}", ContainerRef(CID, UID, "")),
    # Docker, systemd and cgroupfs drivers
    (f"/system.slice/docker-{CID}.scope", ContainerRef(CID, "", "docker")),
    (f"/docker/{CID}", ContainerRef(CID, "", "docker")),
    # Podman, rootful and rootless; conmon is not the container
    (f"/machine.slice/libpod-{CID}.scope", ContainerRef(CID, "", "podman")),
    (f"/machine.slice/libpod-{CID}.scope/container", ContainerRef(CID, "", "podman")),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope", ContainerRef(CID, "", "podman")),
    (f"/machine.slice/libpod-conmon-{CID}.scope", None),
    # a process below its container's cgroup (systemd inside the container)
    (f"/system.slice/docker-{CID}.scope/init.scope", ContainerRef(CID, "", "docker")),
    # kind / nested: the innermost container wins
    (f"/system.slice/docker-{'a' * 64}.scope/kubelet.slice/kubepods.slice/kubepods-pod{UID_}.slice/"
     f"cri-containerd-{CID}.scope", ContainerRef(CID, UID, "containerd")),
    # no container
    (SYSTEMD_POD, None),
    ("/user.slice/user-1000.slice/session-3.scope", None),
    ("/system.slice/containerd.service", None),
    ("/", None),
    ("", None),
    (f"/system.slice/docker-{CID[:63]}.scope", None),  # 63 hex characters are no id
])
def test_container_ref(path: str, expected: ContainerRef | None) -> None:
    assert container_ref(path) == expected


def test_pod_uid_only_above_the_container() -> None:
    """A pod-looking name below the container is the container's business, not its pod."""
    assert container_ref(f"/docker/{CID}/pod{UID}") == ContainerRef(CID, "", "docker")


@pytest.mark.parametrize("leaf", [f"crio-conmon-{CID}.scope", f"libpod-conmon-{CID}.scope"])
def test_conmon_leaf_is_no_container(leaf: str) -> None:
    assert container_id(leaf) == ""
