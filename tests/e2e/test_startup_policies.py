"""Policies named at start that fail: the agent refuses to run (unless told to keep going) and says why.

A node whose agent says "ready" with a policy missing believes it is protected
and is not; these start the agent as an operator would, with a file that does
not exist and with a policy the kernel refuses (a tracepoint it has not).
"""

import subprocess
from pathlib import Path

from tests.e2e.harness import TETRA, RunningAgent

FINE = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: fine
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_openat
"""
# Valid, compiles, and fails only when attached (the binary has no such symbol): after "ready".
UNATTACHABLE = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: unattachable
spec:
  uprobes:
  - path: /usr/bin/true
    symbols:
    - no_such_symbol
"""


def _agent(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TETRA, "agent", "-o", "none", "--server-address", f"unix://{tmp_path}/tetra.sock",
                           "--policy-cache-dir", str(tmp_path / "cache"), *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)


def test_a_missing_policy_file_stops_the_agent_before_ready(tmp_path: Path, root: None) -> None:
    missing = tmp_path / "sensitive-files.yaml"
    done = _agent(tmp_path, "--tracing-policy", str(missing))
    assert done.returncode == 1, done.stderr
    assert "ready in" not in done.stderr
    assert "Traceback" not in done.stderr
    assert (f"tetra: refusing to run: 1 of 1 start-up policies did not load (fix or remove them, or pass "
            f"--tracing-policy-keep-going to run without them):\n  {missing}:\n    "
            f"{missing}:1:1: cannot read: No such file or directory\n") in done.stderr, done.stderr


def test_a_policy_the_kernel_refuses_stops_the_agent_once_settled(tmp_path: Path, root: None) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "fine.yaml").write_text(FINE)
    (policies / "unattachable.yaml").write_text(UNATTACHABLE)
    done = _agent(tmp_path, "--tracing-policy-dir", str(policies))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert any("ready in" in line for line in lines), done.stderr
    settled = next(line for line in lines if "policies settled in" in line)
    assert "1 enabled (0 from the cache), 0 loading, 1 load_error: unattachable (" in settled, settled
    assert "refusing to run: 1 of 2 start-up policies did not load" in done.stderr
    assert (f"  unattachable ({policies / 'unattachable.yaml'}):\n    policy unattachable: cannot attach a uprobe to "
            "/usr/bin/true:no_such_symbol: ") in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_keep_going_runs_and_says_which_failed(tmp_path: Path, root: None) -> None:
    missing = tmp_path / "nowhere.yaml"
    agent = RunningAgent(tmp_path, "--tracing-policy", str(missing), "--tracing-policy-dir", str(tmp_path / "no-dir"),
                         "--tracing-policy-keep-going").start()
    try:
        ready = next(line for line in agent.stderr_lines if "ready in" in line)
        assert ready.endswith(f"policies: 0 enabled (0 from the cache), 0 loading, 2 load_error: "
                              f"{tmp_path / 'no-dir'} (--tracing-policy-dir {tmp_path / 'no-dir'}: not a directory), "
                              f"{missing} ({missing}:1:1: cannot read: No such file or directory)"), ready
        status = subprocess.run([*TETRA, "status", "--server-address", agent.address], capture_output=True,
                                text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert "policies: 0 enabled, 2 load_error" in status.stdout, status.stdout
    finally:
        agent.stop()
