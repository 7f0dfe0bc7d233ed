"""The action counters as /metrics serves them: a Sigkill taken and one only reported are two samples.

One agent with the same Sigkill policy twice, one enforcing and one in
monitoring mode (syscall kprobes on openat, as tests/e2e/test_policies.py's),
real processes opening each policy's file; the scraped
``tetra_policy_actions_total`` must tell the kill from the report by its
``policy`` and ``mode`` labels. Run once on the compiled line path and once on
the pure-Python one (TETRA_PURE_PYTHON=1): each counts the events it writes.
"""

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.harness import RunningAgent
from tests.e2e.test_export import _free_port, _scrape

pytestmark = pytest.mark.usefixtures("root")

POLICY = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Equal"
        values: ["{path}"]
      matchActions:
      - action: Sigkill
{options}"""
MONITORING = """  options:
  - name: policy-mode
    value: monitoring
"""
KILLED = 'tetra_policy_actions_total{action="KPROBE_ACTION_SIGKILL",mode="enforce",policy="kill-enforced"}'
REPORTED = 'tetra_policy_actions_total{action="KPROBE_ACTION_SIGKILL",mode="monitor",policy="kill-monitored"}'


@pytest.mark.parametrize("pure", ["0", "1"], ids=["compiled", "pure-python"])
def test_monitored_and_enforced_sigkills_are_counted_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           pure: str) -> None:
    monkeypatch.setenv("TETRA_PURE_PYTHON", pure)  # the agent subprocess inherits it
    policies, files = tmp_path / "policies", tmp_path / "files"
    policies.mkdir()
    files.mkdir()
    forbidden, monitored = files / "forbidden", files / "monitored"
    (policies / "enforced.yaml").write_text(POLICY.format(name="kill-enforced", path=forbidden, options=""))
    (policies / "monitored.yaml").write_text(POLICY.format(name="kill-monitored", path=monitored,
                                                           options=MONITORING))
    staged = files / "staged"
    staged.write_text("no")
    monitored.write_text("ok")
    port = _free_port()
    running = RunningAgent(tmp_path, "--tracing-policy-dir", str(policies),
                           "--metrics-server", f"127.0.0.1:{port}").start(180)
    try:
        staged.rename(forbidden)  # opened by pytest itself, the path would kill pytest
        assert subprocess.run(["/usr/bin/cat", str(forbidden)], capture_output=True).returncode == -signal.SIGKILL
        done = subprocess.run(["/usr/bin/cat", str(monitored)], capture_output=True)
        assert done.returncode == 0 and done.stdout == b"ok"
        deadline = time.monotonic() + 15  # the endpoint shows the status of the agent's last tick
        while True:
            metrics = _scrape(port)
            if (KILLED in metrics and REPORTED in metrics) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        summary = running.stop()
    assert (summary["pipeline"]["compiled_lines"] > 0) == (pure == "0")  # the path meant took the events
    actions = {name: value for name, value in metrics.items() if name.startswith("tetra_policy_actions_total")}
    assert actions == {KILLED: 1, REPORTED: 1}
