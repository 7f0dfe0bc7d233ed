"""Every manifest in examples/kubernetes/ against the Kubernetes schemas, offline.

Built-in kinds are checked with ``kubernetes-validate``, which ships the
JSON schemas of each Kubernetes release inside the package (no network), in
its strict form (unknown fields are errors: a misspelt ``hostPid`` must not
pass silently). The client's models were the fallback; they would not have
caught unknown fields, which is the common mistake. Custom resources
(TracingPolicy*) are checked against the CRD's own openAPIV3Schema from
crds.yaml, and by tetra's policy loader. Then what no schema sees: the
references between the objects (ConfigMap keys, volumes, the ServiceAccount,
RBAC covering the CRDs).
"""

import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from tetra.agent.config import AgentConfig
from tetra.policy.loader import load_policies

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kubernetes"
FILES = sorted(EXAMPLES.glob("*.yaml"))
VERSIONS = [kubernetes_validate.utils.all_versions()[0], kubernetes_validate.utils.latest_version()]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


ALL = [(path.name, doc) for path in FILES for doc in _docs(path)]
BUILTIN = [(name, doc) for name, doc in ALL if not doc["apiVersion"].startswith("cilium.io/")]
CUSTOM = [(name, doc) for name, doc in ALL if doc["apiVersion"].startswith("cilium.io/")]


def _one(kind: str) -> dict[str, Any]:
    found = [doc for _name, doc in ALL if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def test_the_examples_are_all_there() -> None:
    kinds = sorted(doc["kind"] for _name, doc in ALL)
    assert kinds == sorted(["ClusterRole", "ClusterRoleBinding", "ConfigMap", "CustomResourceDefinition",
                            "CustomResourceDefinition", "DaemonSet", "ServiceAccount", "TracingPolicyNamespaced"])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,doc", BUILTIN, ids=[f"{n}:{d['kind']}" for n, d in BUILTIN])
def test_builtin_kinds_match_the_kubernetes_schema(name: str, doc: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        where = ".".join(str(p) for p in err.path)
        pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {where}: {err.message} (Kubernetes {version})",
                    pytrace=False)


def _crd_for(resource: dict[str, Any]) -> dict[str, Any]:
    group, version = resource["apiVersion"].split("/")
    for _name, crd in ALL:
        if crd["kind"] == "CustomResourceDefinition" and crd["spec"]["group"] == group \
                and crd["spec"]["names"]["kind"] == resource["kind"]:
            served = {v["name"]: v for v in crd["spec"]["versions"] if v["served"]}
            assert version in served, f"{crd['metadata']['name']} does not serve {version}"
            return crd | {"version": served[version]}
    raise AssertionError(f"no CRD for {resource['apiVersion']} {resource['kind']}")


@pytest.mark.parametrize("name,doc", CUSTOM, ids=[f"{n}:{d['kind']}" for n, d in CUSTOM])
def test_custom_resources_match_their_crd_and_load_as_policies(name: str, doc: dict[str, Any]) -> None:
    crd = _crd_for(doc)
    jsonschema.Draft202012Validator(crd["version"]["schema"]["openAPIV3Schema"]).validate(doc)
    namespaced = crd["spec"]["scope"] == "Namespaced"
    assert bool(doc["metadata"].get("namespace")) == namespaced
    if doc["kind"] == "TracingPolicyNamespaced":
        assert "hostSelector" not in doc["spec"]
    policies = load_policies(EXAMPLES / name)
    assert [p.name for p in policies] == [doc["metadata"]["name"]]


def test_crds_are_named_and_shaped_as_tetragons() -> None:
    crds = {doc["metadata"]["name"]: doc for _name, doc in ALL if doc["kind"] == "CustomResourceDefinition"}
    assert set(crds) == {"tracingpolicies.cilium.io", "tracingpoliciesnamespaced.cilium.io"}
    for name, crd in crds.items():
        names = crd["spec"]["names"]
        assert name == f"{names['plural']}.{crd['spec']['group']}"
        assert names["listKind"] == names["kind"] + "List"
        (version,) = crd["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
        assert version["subresources"] == {"status": {}}
        props = version["schema"]["openAPIV3Schema"]["properties"]
        assert props["spec"]["x-kubernetes-preserve-unknown-fields"] is True
    assert crds["tracingpolicies.cilium.io"]["spec"]["scope"] == "Cluster"
    assert crds["tracingpoliciesnamespaced.cilium.io"]["spec"]["scope"] == "Namespaced"


def test_rbac_is_least_privilege_and_covers_the_crds() -> None:
    rules = _one("ClusterRole")["rules"]
    granted = {(group, resource, verb) for rule in rules for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    plurals = [doc["spec"]["names"]["plural"] for _n, doc in ALL if doc["kind"] == "CustomResourceDefinition"]
    expected = {("", "pods", verb) for verb in ("get", "list", "watch")}
    expected |= {("cilium.io", plural, verb) for plural in plurals for verb in ("get", "list", "watch")}
    expected |= {("cilium.io", f"{plural}/status", verb) for plural in plurals for verb in ("update", "patch")}
    assert granted == expected
    binding, account = _one("ClusterRoleBinding"), _one("ServiceAccount")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": _one("ClusterRole")["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": account["metadata"]["namespace"]}]


def test_daemonset_references_resolve() -> None:
    daemonset, config, account = _one("DaemonSet"), _one("ConfigMap"), _one("ServiceAccount")
    pod = daemonset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert daemonset["metadata"]["namespace"] == account["metadata"]["namespace"] == config["metadata"]["namespace"]
    assert daemonset["spec"]["selector"]["matchLabels"].items() <= daemonset["spec"]["template"]["metadata"]["labels"].items()
    assert pod["hostPID"] is True

    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    (config_dir,) = [arg.split("=", 1)[1] for arg in container["args"] if arg.startswith("--config-dir=")]
    (config_mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == config_dir]
    (config_volume,) = [v for v in pod["volumes"] if v["name"] == config_mount["name"]]
    assert config_volume["configMap"]["name"] == config["metadata"]["name"]

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert set(mounts) == set(volumes)
    host = {v["hostPath"]["path"]: mounts[name]["mountPath"] for name, v in volumes.items() if "hostPath" in v}
    for path in ("/sys/kernel/btf", "/sys/fs/cgroup", "/proc", "/sys/kernel/tracing", "/sys/kernel/debug",
                 "/lib/modules", "/usr/src", "/var/log/tetra", "/var/run/tetra"):
        assert path in host, f"{path} is not mounted"
    export_dir = str(Path(config["data"]["export-filename"]).parent)
    assert export_dir in host.values(), "the export file is not on a hostPath"
    socket = config["data"]["server-address"].removeprefix("unix://")
    assert str(Path(socket).parent) in host.values(), "the gRPC socket is not on a hostPath"
    policies = config["data"]["tracing-policy-dir"]
    assert any(m["mountPath"] == policies for m in mounts.values())


def test_configmap_is_flags_the_agent_takes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap as the DaemonSet mounts it (a file per key) is read by `tetra agent --config-dir`:
    every key a flag, every value one it accepts (the agent stops at build_agent, before any BPF)."""
    import tetra.app.build
    from tetra.cli.main import _register, cli

    for key, value in _one("ConfigMap")["data"].items():
        (tmp_path / key).write_text(value)

    def built(config: object) -> None:
        raise SystemExit(config)

    _register()
    monkeypatch.setattr(tetra.app.build, "build_agent", built)
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # its root check: nothing is loaded
    done = CliRunner().invoke(cli, ["agent", "--config-dir", str(tmp_path)])
    assert done.exit_code != 2, done.output
    config = done.exception.code if isinstance(done.exception, SystemExit) else None
    assert isinstance(config, AgentConfig), done.output
    assert config.stdout == "none" and config.enable_k8s_api and config.health_server_address == ":6789"


def test_probes_reach_the_health_server() -> None:
    (container,) = _one("DaemonSet")["spec"]["template"]["spec"]["containers"]
    port = int(_one("ConfigMap")["data"]["health-server-address"].rpartition(":")[2])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz" and ports[get["port"]] == port, probe
