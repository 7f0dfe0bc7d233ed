"""Compiled policy objects: a second start loads them from the cache, and they work the same.

Each test has a cache directory of its own (``--policy-cache-dir``). The first
start builds the policies' objects beside the agent and keeps them; the second
loads them without clang. What is checked is what a user sees: the ready and
"settled" lines, each policy's origin in the summary, events and a Sigkill
from the cached programs, and the cache's files (root's, nobody else may write
them; a tampered one is rejected, said in the log, and rebuilt).
"""

import os
import re
import signal
import stat
import subprocess
import textwrap
from pathlib import Path

import orjson
import pytest

from tests.e2e.harness import TETRA, RunningAgent, tetra
from tests.e2e.test_policy_detach import attachments

pytestmark = pytest.mark.usefixtures("root")

POLICY = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values: ["{root}/{name}-watched"]
    - matchArgs:
      - index: 1
        operator: Equal
        values: ["{root}/{name}-forbidden"]
      matchActions:
      - action: Sigkill
"""
# A hook this kernel has no tracepoint for: compiles, fails to attach.
BROKEN = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: broken
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_no_such_call
"""


def write_policies(directory: Path, root: Path, names: list[str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name in names:
        (directory / f"{name}.yaml").write_text(POLICY.format(name=name, root=root))
    return directory


def start(workdir: Path, policies: Path, cache: Path, *args: str) -> RunningAgent:
    workdir.mkdir(exist_ok=True)
    return RunningAgent(workdir, "--tracing-policy-dir", str(policies), "--policy-cache-dir", str(cache),
                        *args).start(240)


def origins(summary: dict) -> dict[str, str]:
    return {p["name"]: p.get("origin", p["state"]) for p in summary["policies"]}


def line(agent: RunningAgent, mark: str) -> str:
    return next(ln for ln in agent.stderr_lines if mark in ln)


def test_second_start_loads_from_the_cache_and_enforces(tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    policies = write_policies(tmp_path / "policies", root, ["cached-a", "cached-b"])
    cache = tmp_path / "cache"

    first = start(tmp_path / "first", policies, cache)
    assert "policies: 0 enabled (0 from the cache), 2 loading, 0 load_error" in line(first, "ready in")
    assert origins(first.stop()) == {"cached-a": "built", "cached-b": "built"}
    st = os.lstat(cache)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700)
    entries = list(cache.iterdir())
    assert len(entries) == 2
    assert all(e.stat().st_uid == 0 and not e.stat().st_mode & 0o022 for e in entries)

    second = start(tmp_path / "second", policies, cache)
    try:
        assert re.search(r"policies settled in [\d.]+s: 2 enabled \(2 from the cache\), 0 loading, 0 load_error",
                         line(second, "policies settled in"))
        (root / "cached-b-watched").write_text("x")
        (root / "staged").write_text("x")
        (root / "staged").rename(root / "cached-a-forbidden")  # opening it ourselves would be fatal
        subprocess.run(["/usr/bin/cat", str(root / "cached-b-watched")], check=True, capture_output=True)
        killed = subprocess.run(["/usr/bin/cat", str(root / "cached-a-forbidden")], capture_output=True)
        assert killed.returncode == -signal.SIGKILL
        events = second.wait_for(lambda ev: {e["process_kprobe"]["policy_name"] for e in ev if "process_kprobe" in e
                                             and e["process_kprobe"]["process"]["binary"] == "/usr/bin/cat"}
                                 >= {"cached-a", "cached-b"})
        kprobes = [e["process_kprobe"] for e in events if "process_kprobe" in e]
        watched = [e for e in kprobes if e["policy_name"] == "cached-b" and e["process"]["binary"] == "/usr/bin/cat"]
        assert watched[0]["args"][0]["string_arg"] == str(root / "cached-b-watched")
        assert any(e["action"] == "KPROBE_ACTION_SIGKILL" for e in kprobes if e["policy_name"] == "cached-a")

        # Deleting one cached policy detaches its program only: the other still kills.
        assert second.proc is not None
        before = attachments(second.proc.pid)
        assert tetra(second, "tracingpolicy", "delete", "cached-b").returncode == 0
        after = attachments(second.proc.pid)
        assert set(after) < set(before) and len(before) - len(after) == 1, (before, after)
        killed = subprocess.run(["/usr/bin/cat", str(root / "cached-a-forbidden")], capture_output=True)
        assert killed.returncode == -signal.SIGKILL
    finally:
        summary = second.stop()
    assert origins(summary) == {"cached-a": "cache"}
    posted = {p["name"]: sum(h["posted"] for h in p["hooks"]) for p in summary["policies"]}
    assert posted["cached-a"] >= 2  # the cached program's own counters: two kills


def test_tampered_entries_are_rejected_and_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    policies = write_policies(tmp_path / "policies", root, ["tamper-a", "tamper-b", "tamper-c"])
    cache = tmp_path / "cache"
    start(tmp_path / "first", policies, cache).stop()
    writable, foreign, corrupt = sorted(cache.iterdir())
    writable.chmod(0o666)
    os.chown(foreign, 65534, 65534)
    doc = orjson.loads(corrupt.read_bytes())
    name = next(iter(doc["object"]["programs"]))
    doc["object"]["programs"][name]["insns"] = "BwAAAAEAAAA=" + doc["object"]["programs"][name]["insns"]
    corrupt.write_bytes(orjson.dumps(doc))  # one instruction more (r0 += 1): the digest no longer matches

    agent = start(tmp_path / "second", policies, cache)
    summary = agent.stop()
    log = "\n".join(agent.stderr_lines)
    assert f"{writable} rejected (writable by others (mode 666))" in log
    assert f"{foreign} rejected (owned by uid 65534)" in log
    assert f"{corrupt} rejected (its content does not match its digest)" in log
    assert origins(summary) == {"tamper-a": "built", "tamper-b": "built", "tamper-c": "built"}
    for entry in cache.iterdir():
        st = entry.stat()
        assert st.st_uid == 0 and not st.st_mode & 0o022


def test_a_cache_others_may_write_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    policies = write_policies(tmp_path / "policies", root, ["refused-cache"])
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    agent = start(tmp_path / "agent", policies, cache)
    summary = agent.stop()
    assert f"policy cache refused: {cache} is writable by others (mode 777)" in "\n".join(agent.stderr_lines)
    assert origins(summary) == {"refused-cache": "compiled"}
    assert list(cache.iterdir()) == []


def test_a_failing_policy_does_not_stop_the_others(tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    policies = write_policies(tmp_path / "policies", root, ["fine-one"])
    (policies / "broken.yaml").write_text(textwrap.dedent(BROKEN))
    cache = tmp_path / "cache"
    for run in ("first", "second"):
        agent = start(tmp_path / run, policies, cache, "--tracing-policy-keep-going")
        settled = line(agent, "policies settled in")
        summary = agent.stop()
        assert "1 enabled" in settled and "1 load_error" in settled, settled
        states = {p["name"]: p["state"] for p in summary["policies"]}
        assert states == {"fine-one": "enabled", "broken": "load_error"}
    assert origins(summary)["fine-one"] == "cache"


def test_an_api_add_loads_in_the_loop_and_again_from_the_cache(tmp_path: Path) -> None:
    """While the first add's object is built, the agent answers (the policy is listed as loading);
    the second add of the same policy comes from the cache."""
    root = tmp_path / "files"
    root.mkdir()
    policy = write_policies(tmp_path / "policies", root, ["api-added"]) / "api-added.yaml"
    (tmp_path / "agent").mkdir()
    agent = RunningAgent(tmp_path / "agent", "--policy-cache-dir", str(tmp_path / "cache")).start()
    try:
        adding = subprocess.Popen([*TETRA, "tracingpolicy", "add", str(policy), "--server-address", agent.address],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seen: list[str] = []
        while adding.poll() is None and "TP_STATE_LOADING" not in seen:
            listed = tetra(agent, "tracingpolicy", "list", "-o", "json")
            assert listed.returncode == 0, listed.stderr.decode()
            seen += [p["state"] for p in orjson.loads(listed.stdout)["policies"]]
        out, err = adding.communicate(timeout=120)
        assert "TP_STATE_LOADING" in seen, f"the agent answered while the policy loaded: {seen}"
        assert adding.returncode == 0, err.decode()
        assert re.search(r"added api-added: enabled, enforce; hooks: .*; loaded in [\d.]+s \(built, now cached\)",
                         out.decode())
        assert tetra(agent, "tracingpolicy", "delete", "api-added").returncode == 0
        again = tetra(agent, "tracingpolicy", "add", str(policy))
        assert again.returncode == 0, again.stderr.decode()
        assert re.search(r"loaded in [\d.]+s \(from the cache\)", again.stdout.decode())
    finally:
        agent.stop()
