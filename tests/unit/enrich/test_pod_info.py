"""PodInfo from the API's pod JSON, Tetragon's workload heuristics, exec probes and the ``pod`` object."""

from typing import Any

import pytest

from tetra.enrich.pods import maybe_exec_probe, pod_info, workload_of

APP = "a" * 64
SIDECAR = "b" * 64
INIT = "c" * 64
DEBUG = "d" * 64

POD: dict[str, Any] = {
    "metadata": {
        "name": "xwing-5d8f9c7b6-k2x9p", "generateName": "xwing-5d8f9c7b6-", "namespace": "default",
        "uid": "0d0e5e2c-6a1b-4c8e-9f00-1a2b3c4d5e6f",
        "labels": {"app": "xwing", "pod-template-hash": "5d8f9c7b6"},
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-26T10:00:00Z"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "xwing-5d8f9c7b6",
                             "uid": "9f9f9f9f-0000-0000-0000-000000000000", "controller": True}],
    },
    "spec": {
        "nodeName": "node-a",
        "initContainers": [{"name": "init", "image": "busybox"}],
        "containers": [
            {"name": "spaceship", "image": "docker.io/tgraf/netperf:latest",
             "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]}},
             "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
             "securityContext": {"privileged": True}},
            {"name": "sidecar", "image": "envoy"},
        ],
        "ephemeralContainers": [{"name": "debugger", "image": "busybox"}],
    },
    "status": {
        "initContainerStatuses": [{"name": "init", "containerID": f"containerd://{INIT}", "image": "busybox",
                                   "imageID": "docker.io/library/busybox@sha256:" + "1" * 64,
                                   "state": {"terminated": {"startedAt": "2026-11-26T09:59:58Z", "exitCode": 0}}}],
        "containerStatuses": [
            {"name": "spaceship", "containerID": f"containerd://{APP}", "image": "docker.io/tgraf/netperf:latest",
             "imageID": "docker.io/tgraf/netperf@sha256:" + "2" * 64,
             "state": {"running": {"startedAt": "2026-11-26T10:00:00Z"}}},
            {"name": "sidecar", "containerID": f"containerd://{SIDECAR}", "image": "envoy", "imageID": "",
             "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            {"name": "starting", "image": "pending", "state": {"waiting": {"reason": "ContainerCreating"}}},
        ],
        "ephemeralContainerStatuses": [{"name": "debugger", "containerID": f"cri-o://{DEBUG}", "image": "busybox",
                                        "state": {"running": {"startedAt": "2026-11-26T10:05:00Z"}}}],
    },
}


def test_every_kind_of_container_is_indexed_by_bare_id() -> None:
    info = pod_info(POD)
    assert set(info.containers) == {APP, SIDECAR, INIT, DEBUG}  # the one without an id yet is not
    assert info.containers[DEBUG].id == f"cri-o://{DEBUG}"
    assert info.containers[INIT].start_time == "2026-11-26T09:59:58Z"
    assert info.containers[APP].exec_probes == (("cat", "/tmp/healthy"),)
    assert info.annotations is None  # not asked for


def test_to_json_is_tetragons_pod_object() -> None:
    info = pod_info(POD, annotations=True)
    assert info.to_json(APP, binary="/usr/bin/cat", arguments="/tmp/healthy", pid=7) == {
        "namespace": "default",
        "name": "xwing-5d8f9c7b6-k2x9p",
        "uid": "0d0e5e2c-6a1b-4c8e-9f00-1a2b3c4d5e6f",
        "container": {
            "id": f"containerd://{APP}",
            "name": "spaceship",
            "image": {"id": "docker.io/tgraf/netperf@sha256:" + "2" * 64, "name": "docker.io/tgraf/netperf:latest"},
            "start_time": "2026-11-26T10:00:00Z",
            "pid": 7,
            "maybe_exec_probe": True,
            "security_context": {"privileged": True},
        },
        "pod_labels": {"app": "xwing", "pod-template-hash": "5d8f9c7b6"},
        "workload": "xwing",
        "workload_kind": "Deployment",
        "pod_annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-26T10:00:00Z"},
    }


def test_to_json_omits_what_is_unknown() -> None:
    info = pod_info(POD)
    sidecar = info.to_json(SIDECAR, binary="/usr/bin/envoy")
    assert sidecar["container"] == {"id": f"containerd://{SIDECAR}", "name": "sidecar", "image": {"name": "envoy"}}
    assert "pod_annotations" not in sidecar
    by_prefix = info.to_json(APP[:31])  # process.docker: the first 31 characters
    assert by_prefix["container"]["name"] == "spaceship"
    assert "container" not in info.to_json("e" * 64)  # found through the pod uid, container not listed yet


def test_to_json_copies_what_it_shares() -> None:
    info = pod_info(POD)
    info.to_json(APP)["pod_labels"]["app"] = "changed"
    assert info.to_json(APP)["pod_labels"]["app"] == "xwing"


def _meta(owner_kind: str | None, owner_name: str = "", *, generated: bool = True,
          labels: dict[str, str] | None = None, controller: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "the-pod", "labels": labels or {}}
    if generated:
        meta["generateName"] = owner_name + "-"
    if owner_kind:
        meta["ownerReferences"] = [{"kind": owner_kind, "name": owner_name, "controller": controller}]
    return meta


@pytest.mark.parametrize("meta,expected", [
    (_meta("ReplicaSet", "web-7f9c", labels={"pod-template-hash": "7f9c"}), ("web", "Deployment")),
    (_meta("ReplicaSet", "web-7f9c"), ("web-7f9c", "ReplicaSet")),  # no hash label: a bare ReplicaSet
    (_meta("ReplicaSet", "web-7f9c", labels={"pod-template-hash": "0000"}), ("web-7f9c", "ReplicaSet")),
    (_meta("StatefulSet", "db"), ("db", "StatefulSet")),
    (_meta("DaemonSet", "tetra"), ("tetra", "DaemonSet")),
    (_meta("Job", "backup-29012345"), ("backup", "CronJob")),
    (_meta("Job", "backup-2901234567"), ("backup", "CronJob")),
    (_meta("Job", "backup-1234567"), ("backup-1234567", "Job")),  # 7 digits: not a CronJob's schedule
    (_meta("Job", "migrate"), ("migrate", "Job")),
    (_meta("ReplicationController", "api-3", labels={"deploymentconfig": "api"}), ("api", "DeploymentConfig")),
    (_meta("ReplicaSet", "web-7f9c", labels={"pod-template-hash": "7f9c"}, controller=False), ("the-pod", "Pod")),
    (_meta("ReplicaSet", "web-7f9c", labels={"pod-template-hash": "7f9c"}, generated=False), ("the-pod", "Pod")),
    (_meta(None), ("the-pod", "Pod")),
    (_meta("Node", "node-a", generated=False), ("the-pod", "Pod")),  # a static pod's mirror
])
def test_workload(meta: dict[str, Any], expected: tuple[str, str]) -> None:
    assert workload_of(meta) == expected


@pytest.mark.parametrize("binary,arguments,command,expected", [
    ("/usr/bin/cat", "/tmp/healthy", ("cat", "/tmp/healthy"), True),  # relative: base names compared
    ("/bin/cat", "/tmp/healthy", ("/usr/bin/cat", "/tmp/healthy"), False),  # absolute: full paths compared
    ("/usr/bin/cat", "/tmp/healthy", ("/usr/bin/cat", "/tmp/healthy"), True),
    ("/usr/bin/cat", "/tmp/other", ("cat", "/tmp/healthy"), False),
    ("/bin/sh", '-c "pg_isready -U app"', ("sh", "-c", "pg_isready -U app"), True),  # quoted like process args
    ("/health/ping.sh", "/health/ping.sh 5", ("/health/ping.sh", "5"), True),  # run through its shebang
    ("/usr/bin/true", "", ("true",), True),
    ("/usr/bin/true", "", (), False),
])
def test_maybe_exec_probe(binary: str, arguments: str, command: tuple[str, ...], expected: bool) -> None:
    assert maybe_exec_probe(binary, arguments, command) is expected
