"""An enforcing policy never signals the agent itself or PID 1, unless it says so.

The policy below matches every system call of one process and kills it. Aimed
at a child it kills the child; aimed at the agent it must leave the agent
running, with events that say the signal was withheld and why.
"""

import subprocess
import time
from pathlib import Path

from tests.e2e.harness import RunningAgent, tetra

KILL_PID = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    selectors:
    - matchPIDs:
      - operator: In
        values: [{pid}]
      matchActions:
      - action: Sigkill
      - action: Post
        rateLimit: 1m
"""


def add(agent: RunningAgent, path: Path, name: str, pid: int) -> None:
    path.write_text(KILL_PID.format(name=name, pid=pid))
    done = tetra(agent, "tracingpolicy", "add", str(path))
    assert done.returncode == 0, done.stderr


def test_a_policy_aimed_at_the_agent_does_not_kill_it(tmp_path: Path) -> None:
    agent = RunningAgent(tmp_path).start()
    assert agent.proc is not None
    try:
        victim = subprocess.Popen(["/bin/sh", "-c", "while sleep 0.1; do :; done"])
        add(agent, tmp_path / "victim.yaml", "kill-victim", victim.pid)
        assert victim.wait(30) == -9  # the same policy kills an ordinary process

        add(agent, tmp_path / "agent.yaml", "kill-agent", agent.proc.pid)
        events = agent.wait_for(lambda ev: any(e.get("process_tracepoint", {}).get("policy_name") == "kill-agent"
                                               for e in ev))
        mine = [e["process_tracepoint"] for e in events
                if e.get("process_tracepoint", {}).get("policy_name") == "kill-agent"]
        assert {(e["process"]["pid"], e["action"], e["protected_process"]) for e in mine} == {
            (agent.proc.pid, "KPROBE_ACTION_SIGKILL", True)}
        time.sleep(1)
        assert agent.proc.poll() is None
        status = tetra(agent, "status")  # and it still answers
        assert status.returncode == 0, status.stderr
    finally:
        agent.stop()
