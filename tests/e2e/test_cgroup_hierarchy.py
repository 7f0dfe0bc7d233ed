"""CgroupResolver on the real cgroup2 hierarchy: directories named as kubelet, containerd,
CRI-O, Docker and Podman name them, a real process moved into one, its cgroup id resolved.

Needs root (creating cgroups, moving a process); everything is made under a
test-owned ``tetra-test-<random>`` directory and removed afterwards, the
process moved back out first, also when an assertion fails. The walk's timing
and the cache's bounds are tested without root on plain directories
(tests/unit/enrich/test_cgroup_resolver.py).
"""

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tetra.enrich.cgroups import CgroupResolver, ContainerRef
from tetra.errors import KernelError
from tetra.kernel.mounts import cgroup2_mount

pytestmark = pytest.mark.usefixtures("root")

HEX = uuid.uuid4().hex * 2  # a fresh 64-character id per run
UID = str(uuid.uuid4())
UID_ = UID.replace("-", "_")


@pytest.fixture(scope="module")
def mount() -> Path:
    try:
        return Path(cgroup2_mount())
    except KernelError as err:
        pytest.skip(f"no cgroup v2 hierarchy: {err}")


def _own_cgroup() -> str:
    """This process's cgroup v2 path, where children start and return."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    pytest.skip("this process has no cgroup v2 membership")


@pytest.fixture
def parent(mount: Path) -> Iterator[Path]:
    """``<cgroup2>/tetra-test-<random>``; on teardown every process in it goes home and it is removed."""
    top = mount / f"tetra-test-{uuid.uuid4().hex[:12]}"
    top.mkdir()
    home = mount / _own_cgroup().lstrip("/") / "cgroup.procs"
    try:
        yield top
    finally:
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            for pid in (Path(dirpath) / "cgroup.procs").read_text().split():
                try:
                    home.write_text(pid)
                except OSError:  # it exited meanwhile
                    pass
            os.rmdir(dirpath)


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "120"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _cgroup_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise AssertionError(f"pid {pid} has no cgroup v2 membership")


CASES = {
    "containerd-systemd": (f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
                           f"cri-containerd-{HEX}.scope", ContainerRef(HEX, UID, "containerd")),
    "containerd-guaranteed": (f"kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{HEX}.scope",
                              ContainerRef(HEX, UID, "containerd")),
    "crio": (f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{HEX}.scope",
             ContainerRef(HEX, UID, "cri-o")),
    "crio-conmon": (f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
                    f"crio-conmon-{HEX}.scope", None),
    "kubelet-cgroupfs": (f"kubepods/besteffort/pod{UID}/{HEX}", ContainerRef(HEX, UID, "")),
    "docker-systemd": (f"system.slice/docker-{HEX}.scope", ContainerRef(HEX, "", "docker")),
    "docker-cgroupfs": (f"docker/{HEX}", ContainerRef(HEX, "", "docker")),
    "podman": (f"machine.slice/libpod-{HEX}.scope", ContainerRef(HEX, "", "podman")),
    "podman-conmon": (f"machine.slice/libpod-conmon-{HEX}.scope", None),
    "host-service": ("system.slice/cron.service", None),
}


@pytest.mark.parametrize("case", CASES)
def test_process_cgroup_resolves(case: str, mount: Path, parent: Path, child: subprocess.Popen[bytes]) -> None:
    rel, expected = CASES[case]
    leaf = parent / rel
    leaf.mkdir(parents=True)
    (leaf / "cgroup.procs").write_text(str(child.pid))
    path = _cgroup_of(child.pid)
    assert path == f"/{parent.name}/{rel}"
    cgroup_id = os.stat(mount / path.lstrip("/")).st_ino
    assert cgroup_id == os.stat(leaf).st_ino

    resolver = CgroupResolver(mount)
    assert resolver.container(cgroup_id) == expected
    assert resolver.path(cgroup_id) == path
    assert resolver.stats.walks == 1  # the second question was answered from the cache
