"""`tetra bugtool` as a user runs it: a real agent with a policy, the archive opened and read.

The agent is given secrets the way they reach a node: a token inside a flag's
value (an allowlist hunting for a leaked token) and a kubeconfig holding one.
Neither may appear anywhere in the archive, while the pieces a report needs
(versions, status, settings, log, the policy's YAML, the probe report and
bpftool's lists with the agent's own programs) must be there with real content.
Without an agent, or without bpftool, the archive is still written and says
what is missing.
"""

import json
import stat
import subprocess
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.e2e.harness import TETRA, RunningAgent, attachments, tetra
from tetra import __version__

pytestmark = pytest.mark.usefixtures("root")

POLICY_NAME = "bugtool-e2e-open"
POLICY = textwrap.dedent(f"""\
    # watched by the bugtool test
    apiVersion: cilium.io/v1alpha1
    kind: TracingPolicy
    metadata:
      name: {POLICY_NAME}
    spec:
      kprobes:
      - call: sys_openat
        syscall: true
        args:
        - index: 1
          type: string
    """)
FLAG_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJidWd0b29sLWUyZSJ9.ZmxhZy1zaWduYXR1cmUtc2VjcmV0"
KUBE_TOKEN = "kubeconfig-token-3f9c2a7e51d8b046"
AGENT_PIECES = ("status.json", "config.json", "agent.log", "policies.json", "policies.yaml")
BPFTOOL_PIECES = tuple(f"bpftool/{name}.json" for name in ("prog", "map", "link", "perf", "cgroup-tree"))


def _files(archive: Path) -> dict[str, bytes]:
    """The archive's files by their names under its one top directory."""
    with tarfile.open(archive, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        tops = {m.name.split("/", 1)[0] for m in members}
        assert len(tops) == 1 and tops.pop().startswith("tetra-bugtool-")
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    work = tmp_path_factory.mktemp("bugtool")
    policy = work / "policy.yaml"
    policy.write_text(POLICY)
    kubeconfig = work / "kubeconfig"
    kubeconfig.write_text(f"apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: {KUBE_TOKEN}\n")
    allowlist = json.dumps({"arguments_regex": [f"Authorization: Bearer {FLAG_TOKEN}"]})
    running = RunningAgent(work, "--tracing-policy", str(policy), "--export-allowlist", allowlist,
                           "--k8s-kubeconfig-path", str(kubeconfig)).start()
    yield running
    running.stop()


def test_the_archive_of_a_running_agent(agent: RunningAgent, tmp_path: Path) -> None:
    out = tmp_path / "report.tar.gz"
    done = tetra(agent, "bugtool", "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    files = _files(out)
    missing = {name for name in files if name.endswith(".error")} - {"journal.log.error"}  # systemd or not
    assert not missing, {name: files[name] for name in missing}

    assert orjson.loads(files["version.json"]) == {"client": __version__, "server": __version__}
    status = orjson.loads(files["status.json"])
    assert status["version"] == __version__ and status["losses"]["kernel_lost"] == 0
    listed = {p["name"]: p for p in orjson.loads(files["policies.json"])["policies"]}
    assert listed[POLICY_NAME]["state"] == "TP_STATE_ENABLED"
    yaml = files["policies.yaml"].decode()
    assert f"name: {POLICY_NAME}" in yaml and "- call: sys_openat" in yaml
    config = orjson.loads(files["config.json"])
    assert config["tracing_policies"] == [str(agent.export.parent / "policy.yaml")]
    assert config["k8s_kubeconfig_path"] == str(agent.export.parent / "kubeconfig")  # a path is kept
    log = files["agent.log"].decode()
    assert f"policy {POLICY_NAME} loaded" in log and "policies settled in" in log
    assert orjson.loads(files["probe.json"])["features"]

    programs = {p["id"]: p for p in orjson.loads(files["bpftool/prog.json"])}
    own = attachments(agent.proc.pid)  # type: ignore[union-attr]
    assert own and set(own) <= set(programs), "the agent's programs are in bpftool's list"
    assert any("sched_process_exec" in programs[i]["name"] for i in own)
    assert any(p["pid"] == agent.proc.pid for p in orjson.loads(files["bpftool/perf.json"]))  # type: ignore[union-attr]
    for name in BPFTOOL_PIECES:
        orjson.loads(files[name])  # complete JSON, not cut
    assert all(name in files for name in ("bugtool.log", *AGENT_PIECES))

    for name, data in files.items():
        for secret in (FLAG_TOKEN, *FLAG_TOKEN.split("."), KUBE_TOKEN):
            assert secret.encode() not in data, f"{secret} in {name}"
    assert "[redacted]" in config["export_allowlist"]


def test_without_an_agent_or_bpftool_the_archive_says_so(tmp_path: Path) -> None:
    out = tmp_path / "report.tar.gz"
    done = subprocess.run([*TETRA, "bugtool", "-o", str(out), "--server-address", f"unix://{tmp_path}/none.sock",
                           "--bpftool", str(tmp_path / "bpftool")], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    files = _files(out)
    version = orjson.loads(files["version.json"])
    assert version["client"] == __version__ and "no tetra agent at" in version["server_error"]
    for name in AGENT_PIECES:
        assert name not in files and b"no tetra agent at" in files[name + ".error"]
    for name in BPFTOOL_PIECES:
        assert name not in files and b"not an executable file" in files[name + ".error"]
    assert b"missing status.json: no tetra agent" in files["bugtool.log"]
    assert orjson.loads(files["probe.json"])["features"]  # what needs neither is there
    stderr = done.stderr.decode()
    assert stderr.count("no tetra agent at") == 1, stderr  # one warning for every piece the agent owes
    assert "warning: bpftool/prog.json, bpftool/map.json" in stderr


def test_an_archive_that_cannot_be_written_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "no-such-dir" / "report.tar.gz"
    done = subprocess.run([*TETRA, "bugtool", "--out", str(out), "--server-address", f"unix://{tmp_path}/none.sock"],
                          capture_output=True, timeout=60)
    assert done.returncode == 1
    assert f"cannot write {out}" in done.stderr.decode() and "warning" not in done.stderr.decode()
    assert list(tmp_path.iterdir()) == []
