"""Pod metadata on events: a process in a real cgroup named as containerd names it,
a pod served by a Kubernetes API endpoint the real client lists and watches."""

import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import RunningAgent
from tests.unit.enrich.k8s_fake_api import FakeApiServer, make_pod
from tetra.kernel.mounts import cgroup2_mount

pytestmark = pytest.mark.usefixtures("root")
NODE = "tetra-test-node"


@pytest.fixture
def container_cgroup() -> Iterator[tuple[Path, str, str]]:
    """<cgroup2>/tetra-test-*/kubepods.slice/.../cri-containerd-<id>.scope, removed afterwards."""
    container_id = secrets.token_hex(32)
    pod_uid = str(uuid.uuid4())
    top = Path(cgroup2_mount()) / f"tetra-test-{secrets.token_hex(4)}"
    leaf = (top / "kubepods.slice" / "kubepods-besteffort.slice"
            / f"kubepods-besteffort-pod{pod_uid.replace('-', '_')}.slice"
            / f"cri-containerd-{container_id}.scope")
    leaf.mkdir(parents=True)
    try:
        yield leaf, container_id, pod_uid
    finally:
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [top]:
            try:
                path.rmdir()
            except OSError:
                pass


def _in_pod(event: dict) -> bool:  # type: ignore[type-arg]
    process = event.get("process_exec", {}).get("process", {})
    return process.get("binary") == "/usr/bin/true" and process.get("arguments") == "in-the-pod"


def test_events_of_a_pod_carry_pod_fields(tmp_path: Path, container_cgroup: tuple[Path, str, str]) -> None:
    leaf, container_id, pod_uid = container_cgroup
    api = FakeApiServer()
    api.start()
    try:
        api.put(make_pod("xwing", pod_uid, NODE, {"spaceship": container_id}, namespace="default",
                         labels={"app": "xwing", "pod-template-hash": "7d9f8b6c5"}, owner=("ReplicaSet", "xwing-7d9f8b6c5")))
        agent = RunningAgent(tmp_path, "--node-name", NODE, "--enable-k8s-api",
                             "--k8s-kubeconfig-path", str(api.kubeconfig(tmp_path / "kubeconfig"))).start()
        try:
            # The child joins the container's cgroup before it execs.
            script = f"echo $$ > {leaf}/cgroup.procs && exec /usr/bin/true in-the-pod"
            subprocess.run(["/bin/sh", "-c", script], check=True)
            events = agent.wait_for(lambda ev: any(_in_pod(e) for e in ev), timeout=30)
        finally:
            agent.stop()
    finally:
        api.stop()
    process = [e["process_exec"]["process"] for e in events if _in_pod(e)][0]
    assert process["docker"] == container_id[:31]
    pod = process["pod"]
    assert (pod["namespace"], pod["name"], pod["uid"]) == ("default", "xwing", pod_uid)
    assert pod["container"]["id"] == f"containerd://{container_id}"
    assert pod["container"]["name"] == "spaceship"
    assert pod["pod_labels"] == {"app": "xwing", "pod-template-hash": "7d9f8b6c5"}
    assert (pod["workload"], pod["workload_kind"]) == ("xwing", "Deployment")


def test_api_unreachable_events_flow_without_pod_fields_and_recover(
        tmp_path: Path, container_cgroup: tuple[Path, str, str]) -> None:
    """The API goes away; a pod created meanwhile runs processes: their events still come,
    with the container id but no pod, and once the API is back the pod is found. Every
    process's exec is exported, and the kernel lost nothing."""
    leaf, container_id, pod_uid = container_cgroup
    api = FakeApiServer()
    api.start()
    agent = RunningAgent(tmp_path, "--node-name", NODE, "--enable-k8s-api",
                         "--k8s-kubeconfig-path", str(api.kubeconfig(tmp_path / "kubeconfig"))).start()
    runs: list[str] = []

    def run_in_pod() -> dict:  # type: ignore[type-arg]
        tag = f"run-{len(runs)}"
        runs.append(tag)
        subprocess.run(["/bin/sh", "-c", f"echo $$ > {leaf}/cgroup.procs && exec /usr/bin/true {tag}"], check=True)
        events = agent.wait_for(lambda ev: any(_exec_of(e, tag) for e in ev), timeout=30)
        return next(_exec_of(e, tag) for e in events if _exec_of(e, tag))  # type: ignore[return-value]

    try:
        api.stop()
        api.put(make_pod("late", pod_uid, NODE, {"app": container_id}, namespace="default"), event=False)
        while_down = [run_in_pod() for _ in range(3)]
        assert all(p["docker"] == container_id[:31] and "pod" not in p for p in while_down)
        api.start()  # the watcher lists again after its back-off, and finds the pod
        deadline = time.monotonic() + 60
        while "pod" not in (back := run_in_pod()):
            assert time.monotonic() < deadline, "the pod never came back"
            time.sleep(1)
        assert (back["pod"]["name"], back["pod"]["container"]["id"]) == ("late", f"containerd://{container_id}")
    finally:
        summary = agent.stop()
        api.stop()
    exported = {p["arguments"] for e in agent.events() if (p := e.get("process_exec", {}).get("process"))
                and p.get("binary") == "/usr/bin/true"}
    assert set(runs) <= exported  # every run's exec, with or without its pod
    assert summary["kernel_lost"] == 0


def _exec_of(event: dict, tag: str) -> dict | None:  # type: ignore[type-arg]
    process = event.get("process_exec", {}).get("process", {})
    return process if process.get("binary") == "/usr/bin/true" and process.get("arguments") == tag else None
