"""RuntimeHook(createContainer) from an outside Tetragon client: a new container's first exec carries its pod.

A real agent with pod enrichment against a Kubernetes API endpoint whose pod
lists no containers yet (as when its containers are being created); real
cgroups named as containerd names them. The client (stubs generated from
tetra/api/tetragon/*.proto, run as ``python -I``: tests/e2e/test_tetragon_api.py)
sends what Tetragon's OCI hook sends before a container's first process: for
one container of the listed pod, and for one of a pod the API does not list.
A third container gets no hook: the control, whose exec finds its pod by the
pod uid in its cgroup path but not the container.
"""

import json
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Event, RunningAgent
from tests.e2e.test_k8s_enrichment import NODE, container_cgroup  # noqa: F401  (a fixture)
from tests.e2e.test_tetragon_api import stubs  # noqa: F401  (a fixture)
from tests.unit.enrich.k8s_fake_api import FakeApiServer, make_pod
from tetra.kernel.mounts import cgroup2_mount

pytestmark = pytest.mark.usefixtures("root")

CLIENT = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
import grpc
from tetragon import sensors_pb2_grpc, tetragon_pb2

stub = sensors_pb2_grpc.FineGuidanceSensorsStub(grpc.insecure_channel(sys.argv[2]))
for hook in json.loads(sys.argv[3]):
    stub.RuntimeHook(tetragon_pb2.RuntimeHookRequest(createContainer=tetragon_pb2.CreateContainer(**hook)), timeout=10)
print(json.dumps(sorted(name for name in sys.modules if name == "tetra" or name.startswith("tetra."))))
'''


def _hook(leaf: Path, container_id: str, pod: tuple[str, str, str], name: str) -> dict[str, Any]:
    """What Tetragon's OCI hook sends with containerd: fields and the CRI annotations they come from."""
    pod_name, namespace, uid = pod
    return {"cgroupsPath": "/" + str(leaf.relative_to(cgroup2_mount())), "rootDir": "/run/rootfs",
            "containerID": container_id, "containerName": name, "podName": pod_name, "podUID": uid,
            "podNamespace": namespace, "containerImage": f"docker.io/library/{name}:1",
            "annotations": {"io.kubernetes.cri.container-type": "container",
                            "io.kubernetes.cri.container-name": name, "io.kubernetes.cri.sandbox-uid": uid}}


def _exec_in(leaf: Path, agent: RunningAgent, tag: str) -> Event:
    """The exec of a process that joined ``leaf`` first, as exported."""
    subprocess.run(["/bin/sh", "-c", f"echo $$ > {leaf}/cgroup.procs && exec /usr/bin/true {tag}"], check=True)

    def found(events: list[Event]) -> list[Event]:
        return [p for e in events if (p := e.get("process_exec", {}).get("process", {}))
                and p.get("binary") == "/usr/bin/true" and p.get("arguments") == tag]

    return found(agent.wait_for(lambda events: bool(found(events)), timeout=30))[0]


def test_hooked_containers_first_execs_carry_their_pod(tmp_path: Path, stubs: Path,  # noqa: F811
                                                       container_cgroup: tuple[Path, str, str]) -> None:  # noqa: F811
    leaf, hooked_id, pod_uid = container_cgroup
    control_id = secrets.token_hex(32)
    control = leaf.parent / f"cri-containerd-{control_id}.scope"  # the same pod, no hook
    control.mkdir()
    ghost_uid, ghost_id = str(uuid.uuid4()), secrets.token_hex(32)
    ghost = (leaf.parents[1] / f"kubepods-besteffort-pod{ghost_uid.replace('-', '_')}.slice"
             / f"cri-containerd-{ghost_id}.scope")  # a pod the API does not list
    ghost.mkdir(parents=True)
    api = FakeApiServer()
    api.start()
    try:
        api.put(make_pod("shop-1", pod_uid, NODE, {}, namespace="prod", labels={"app": "shop"}))
        agent = RunningAgent(tmp_path, "--node-name", NODE, "--enable-k8s-api",
                             "--k8s-kubeconfig-path", str(api.kubeconfig(tmp_path / "kubeconfig"))).start()
        try:
            hooks = [_hook(leaf, hooked_id, ("shop-1", "prod", pod_uid), "web"),
                     _hook(ghost, ghost_id, ("ghost-1", "prod", ghost_uid), "worker")]
            script = stubs / "runtime_hook_client.py"
            script.write_text(CLIENT)
            done = subprocess.run([sys.executable, "-I", str(script), str(stubs), agent.address, json.dumps(hooks)],
                                  capture_output=True, timeout=60)
            assert done.returncode == 0, done.stderr.decode()
            assert json.loads(done.stdout) == []  # the client imported nothing of tetra
            hooked, unlisted, plain = (_exec_in(leaf, agent, "hooked"), _exec_in(ghost, agent, "ghost"),
                                       _exec_in(control, agent, "control"))
        finally:
            agent.stop()
    finally:
        api.stop()
    assert hooked["pod"]["container"] == {"id": f"containerd://{hooked_id}", "name": "web",
                                          "image": {"name": "docker.io/library/web:1"}}
    assert (hooked["pod"]["name"], hooked["pod"]["pod_labels"]) == ("shop-1", {"app": "shop"})  # the listed pod's
    assert (unlisted["pod"]["namespace"], unlisted["pod"]["name"], unlisted["pod"]["uid"]) == (
        "prod", "ghost-1", ghost_uid)
    assert unlisted["pod"]["container"]["name"] == "worker"
    assert plain["pod"]["name"] == "shop-1" and "container" not in plain["pod"]  # no hook: the pod by its uid only
