"""A policy hook does not see the agent's own calls, unless the policy asks.

The agent reads its ring buffer with ``epoll_wait``. A hook on that syscall
with no selector would post each of the agent's calls, and every event the
agent reads makes it call again: a storm that fed itself at ~23,600 events/s.
The generated programs now return before any work when the caller is the
agent; a policy that does want the agent (option ``observe-agent``) sees it.
"""

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from tests.e2e.harness import Event, RunningAgent, tetra

EPOLL_WAIT = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
{options}  tracepoints:
  - subsystem: syscalls
    event: sys_enter_epoll_wait
"""
OBSERVE_AGENT = '  options:\n  - name: observe-agent\n    value: "true"\n'

# An ordinary process calling epoll_wait, as the agent's reader does.
EPOLL_CALLER = "import select\nwith select.epoll() as ep:\n    for _ in range(20):\n        ep.poll(0.001)\n"


def posted(agent: RunningAgent, name: str) -> int:
    """Events the policy's hooks posted, as `tetra status -o json` reports them."""
    done = tetra(agent, "status", "-o", "json")
    assert done.returncode == 0, done.stderr
    policy = next(p for p in orjson.loads(done.stdout)["policies"] if p["name"] == name)
    return sum(hook["posted"] for hook in policy["tetra_hooks"])


def of_policy(events: list[Event], name: str) -> list[dict[str, Any]]:
    return [e["process_tracepoint"] for e in events if e.get("process_tracepoint", {}).get("policy_name") == name]


def pids(events: list[Event], name: str) -> set[int]:
    return {e["process"]["pid"] for e in of_policy(events, name)}


def test_the_agent_does_not_see_its_own_reader_unless_asked(tmp_path: Path) -> None:
    policy = tmp_path / "epoll-all.yaml"
    policy.write_text(EPOLL_WAIT.format(name="epoll-all", options=""))
    agent = RunningAgent(tmp_path, "--tracing-policy", str(policy)).start()
    assert agent.proc is not None
    try:
        child = subprocess.Popen([sys.executable, "-c", EPOLL_CALLER])
        assert child.wait(30) == 0
        agent.wait_for(lambda ev: child.pid in pids(ev, "epoll-all"))  # an ordinary caller is seen

        before = posted(agent, "epoll-all")
        time.sleep(3)
        # the storm posted tens of thousands a second; what remains is the rest of the machine
        assert posted(agent, "epoll-all") - before < 5000
        assert agent.proc.pid not in pids(agent.events(), "epoll-all")

        opted_in = tmp_path / "epoll-self.yaml"
        opted_in.write_text(EPOLL_WAIT.format(name="epoll-self", options=OBSERVE_AGENT))
        done = tetra(agent, "tracingpolicy", "add", str(opted_in))
        assert done.returncode == 0, done.stderr
        agent.wait_for(lambda ev: agent.proc is not None and agent.proc.pid in pids(ev, "epoll-self"))
        done = tetra(agent, "tracingpolicy", "delete", "epoll-self")  # it feeds itself: end it at once
        assert done.returncode == 0, done.stderr
        assert agent.proc.pid not in pids(agent.events(), "epoll-all")
    finally:
        agent.stop()
