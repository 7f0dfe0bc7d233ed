"""Pod-scoped policies in the kernel: TracingPolicyNamespaced, podSelector, containerSelector.

Real cgroup v2 directories named as the kubelet (systemd driver) and containerd
name them, pods served by a Kubernetes API the real client lists and watches,
real processes in each container's cgroup opening a marker file. A process
outside a policy's scope must never produce its event: each negative case runs
before a positive one, and the ring buffer keeps order, so once the positive
event is in, a missing negative one was never sent.
"""

import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.harness import RunningAgent, tetra
from tests.unit.enrich.k8s_fake_api import FakeApiServer, make_pod
from tetra.kernel.mounts import cgroup2_mount

pytestmark = pytest.mark.usefixtures("root")
NODE = "tetra-scope-node"

OPEN_MARKER = """  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values: ["{marker}"]
"""
NAMESPACED = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicyNamespaced
metadata:
  name: team-a-opens
  namespace: team-a
spec:
""" + OPEN_MARKER
SELECTED = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: web-main-opens
spec:
  podSelector:
    matchLabels:
      app: web
  containerSelector:
    matchExpressions:
    - key: name
      operator: In
      values: [main]
""" + OPEN_MARKER


@dataclass(frozen=True)
class Container:
    pod: str
    name: str
    id: str
    cgroup: Path


class Node:
    """Pods as cgroup directories under one test directory, and in the fake API."""

    def __init__(self, api: FakeApiServer) -> None:
        self.api = api
        self.top = Path(cgroup2_mount()) / f"tetra-test-scope-{secrets.token_hex(4)}"
        self.containers: dict[tuple[str, str], Container] = {}
        self.uids: dict[str, str] = {}

    def add_pod(self, name: str, namespace: str, labels: dict[str, str], names: list[str]) -> None:
        uid = str(uuid.uuid4())
        pod_dir = (self.top / "kubepods.slice" / "kubepods-besteffort.slice"
                   / f"kubepods-besteffort-pod{uid.replace('-', '_')}.slice")
        ids = {}
        for container in names:
            cid = secrets.token_hex(32)
            cgroup = pod_dir / f"cri-containerd-{cid}.scope"
            cgroup.mkdir(parents=True)
            self.containers[(name, container)] = Container(name, container, cid, cgroup)
            ids[container] = cid
        self.uids[name] = uid
        self.api.put(make_pod(name, uid, NODE, ids, namespace=namespace, labels=labels))

    def delete_pod(self, name: str) -> None:
        self.api.delete(self.uids[name])

    def remove(self) -> None:
        for path in sorted((p for p in self.top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            path.rmdir()
        self.top.rmdir()


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    api = FakeApiServer()
    api.start()
    pods = Node(api)
    pods.add_pod("web-a", "team-a", {"app": "web"}, ["main", "sidecar"])
    pods.add_pod("web-b", "team-b", {"app": "web"}, ["main"])
    try:
        yield pods
    finally:
        api.stop()
        pods.remove()


@pytest.fixture(scope="module")
def marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scope") / "marker"
    path.write_text("scoped")
    return path


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, node: Node, marker: Path) -> Iterator[RunningAgent]:
    work = tmp_path_factory.mktemp("scope-agent")
    policies = work / "policies"
    policies.mkdir()
    (policies / "namespaced.yaml").write_text(NAMESPACED.format(marker=marker))
    (policies / "selected.yaml").write_text(SELECTED.format(marker=marker))
    running = RunningAgent(work, "--node-name", NODE, "--enable-k8s-api", "--tracing-policy-dir", str(policies),
                           "--k8s-kubeconfig-path", str(node.api.kubeconfig(work / "kubeconfig"))).start()
    yield running
    running.stop()


def open_marker(marker: Path, container: Container | None) -> int:
    """Pid of a process that opened the marker, in the container's cgroup (None: on the host)."""

    def join() -> None:
        if container is not None:
            (container.cgroup / "cgroup.procs").write_text(str(os.getpid()))

    proc = subprocess.Popen(["/usr/bin/cat", str(marker)], stdout=subprocess.DEVNULL, preexec_fn=join)
    assert proc.wait(30) == 0
    return proc.pid


def opened(agent: RunningAgent, wanted: dict[int, set[str]]) -> dict[int, set[str]]:
    """Pid -> the policies that reported its open, once every ``wanted`` pid has all its policies."""
    def by_pid(events: list[dict[str, Any]]) -> dict[int, set[str]]:
        seen: dict[int, set[str]] = {}
        for e in events:
            kprobe = e.get("process_kprobe")
            if kprobe is not None:
                seen.setdefault(kprobe["process"]["pid"], set()).add(kprobe["policy_name"])
        return seen

    events = agent.wait_for(lambda ev: all(by_pid(ev).get(pid, set()) >= names for pid, names in wanted.items()),
                            timeout=30)
    return by_pid(events)


def test_each_policy_sees_only_its_pods_and_containers(agent: RunningAgent, node: Node, marker: Path) -> None:
    host = open_marker(marker, None)
    sidecar = open_marker(marker, node.containers[("web-a", "sidecar")])
    other_namespace = open_marker(marker, node.containers[("web-b", "main")])
    in_both = open_marker(marker, node.containers[("web-a", "main")])
    seen = opened(agent, {in_both: {"team-a-opens", "web-main-opens"}, other_namespace: {"web-main-opens"},
                          sidecar: {"team-a-opens"}})
    assert seen.get(host) is None  # no policy applies to a process outside every pod
    assert seen[sidecar] == {"team-a-opens"}  # its container is not "main"
    assert seen[other_namespace] == {"web-main-opens"}  # team-b is not the namespaced policy's
    assert seen[in_both] == {"team-a-opens", "web-main-opens"}


def test_scopes_follow_pods_as_they_come_and_go(agent: RunningAgent, node: Node, marker: Path) -> None:
    node.add_pod("db-a", "team-a", {"app": "db"}, ["main"])
    db = node.containers[("db-a", "main")]
    # The pod arrives over the watch, and the agent looks at the cgroup tree again
    # within seconds: until then the new container is outside every scope.
    pid = next(pid for pid in retrying(lambda: open_marker(marker, db))
               if "team-a-opens" in seen_once(agent, pid, control=node.containers[("web-a", "sidecar")], marker=marker))
    assert seen_once(agent, pid, node.containers[("web-a", "sidecar")], marker) == {"team-a-opens"}  # not app=web
    assert scopes(agent) == {"team-a-opens": 3, "web-main-opens": 2}

    node.delete_pod("db-a")
    pid = next(pid for pid in retrying(lambda: open_marker(marker, db))
               if not seen_once(agent, pid, control=node.containers[("web-a", "sidecar")], marker=marker))
    assert scopes(agent) == {"team-a-opens": 2, "web-main-opens": 2}


def retrying(attempt: Callable[[], int], times: int = 15) -> Iterator[int]:
    """``attempt()`` again and again, a second apart; fails after ``times``."""
    for _ in range(times):
        yield attempt()
        time.sleep(1)
    raise AssertionError(f"no change after {times} attempts")


def seen_once(agent: RunningAgent, pid: int, control: Container, marker: Path) -> set[str]:
    """The policies that reported ``pid``'s open, known for sure once a later control open is in."""
    later = open_marker(marker, control)
    return opened(agent, {later: {"team-a-opens"}}).get(pid, set())


def scopes(agent: RunningAgent) -> dict[str, int]:
    """How many cgroups each policy applies to, as `tetra status -o json` reports it."""
    done = tetra(agent, "status", "-o", "json")
    assert done.returncode == 0, done.stderr
    return {p["name"]: p["tetra_scope_cgroups"] for p in orjson.loads(done.stdout)["policies"]}
