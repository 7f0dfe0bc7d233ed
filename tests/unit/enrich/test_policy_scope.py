"""Which cgroups a pod-scoped policy applies to (tetra/enrich/scope.py), on a directory
tree named as kubelets and runtimes name cgroups; tests/e2e/test_scoped_policies.py
runs the same in the kernel."""

import os
from pathlib import Path
from types import MappingProxyType

import pytest

from tetra.enrich.pods import ContainerInfo, PodInfo
from tetra.enrich.scope import PolicyScope, selector_matches
from tetra.policy.loader import load_policies_text

A1, A2, B1 = "a" * 64, "b" * 64, "c" * 64


@pytest.mark.parametrize("selector,labels,expected", [
    (None, {}, True),
    ({}, {"app": "web"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "web", "tier": "1"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}, {"app": "api"}, True),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}, {}, False),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, {}, True),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, {"app": "web"}, False),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {"app": ""}, True),
    ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {"app": ""}, False),
    ({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"app": "web"},
     False),
])
def test_label_selectors(selector: dict | None, labels: dict[str, str], expected: bool) -> None:  # type: ignore[type-arg]
    assert selector_matches(selector, labels) is expected


def pod(name: str, namespace: str, labels: dict[str, str], containers: dict[str, str]) -> PodInfo:
    infos = {cid: ContainerInfo(f"containerd://{cid}", cname, "img", "", "", False, ())
             for cname, cid in containers.items()}
    return PodInfo(namespace, name, f"uid-{name}", MappingProxyType(labels), None, name, "Pod",
                   MappingProxyType(infos))


class Pods:
    def __init__(self) -> None:
        self.version, self.list = 1, [pod("web-a", "team-a", {"app": "web"}, {"main": A1, "sidecar": A2}),
                                      pod("web-b", "team-b", {"app": "web"}, {"main": B1})]

    def pods(self) -> tuple[int, list[PodInfo]]:
        return self.version, self.list


def policy(text: str):  # type: ignore[no-untyped-def]
    return load_policies_text(text, "p.yaml")[0]


NAMESPACED = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicyNamespaced
metadata: {name: p, namespace: team-a}
spec: {}
"""
SELECTED = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata: {name: p}
spec:
  podSelector: {matchLabels: {app: web}}
  containerSelector: {matchExpressions: [{key: name, operator: In, values: [main]}]}
"""


def test_policies_get_the_cgroups_of_their_containers_and_below(tmp_path: Path) -> None:
    pods_dir = tmp_path / "kubepods.slice" / "kubepods-besteffort.slice"
    a1 = pods_dir / "kubepods-besteffort-pod1.slice" / f"cri-containerd-{A1}.scope"
    a1_child = a1 / "init.scope"  # a cgroup a container made for itself
    a2 = pods_dir / "kubepods-besteffort-pod1.slice" / f"cri-containerd-{A2}.scope"
    b1 = pods_dir / "kubepods-besteffort-pod2.slice" / f"cri-containerd-{B1}.scope"
    for path in (a1_child, a2, b1):
        path.mkdir(parents=True)
    ino = {path: os.stat(path).st_ino for path in (a1, a1_child, a2, b1)}
    pods = Pods()
    scope = PolicyScope(tmp_path, pods, rescan=3600)
    assert scope.refresh() is True and scope.refresh() is False  # nothing new the second time
    assert scope.cgroups(policy(NAMESPACED)) == {ino[a1], ino[a1_child], ino[a2]}
    assert scope.cgroups(policy(SELECTED)) == {ino[a1], ino[a1_child], ino[b1]}

    pods.version, pods.list = 2, pods.list[1:]  # web-a deleted
    assert scope.refresh() is True
    assert scope.cgroups(policy(NAMESPACED)) == set()
    assert scope.cgroups(policy(SELECTED)) == {ino[b1]}


def test_without_the_kubernetes_api_a_scoped_policy_applies_to_nothing(tmp_path: Path) -> None:
    scope = PolicyScope(tmp_path, None)
    assert scope.refresh() is False
    assert scope.cgroups(policy(NAMESPACED)) == set()
