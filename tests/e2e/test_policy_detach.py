"""A policy's programs leave the kernel when it is deleted or disabled, even where its
hooks share a tracepoint.

bcc keeps one descriptor per tracepoint name, so a policy with several hooks on
``sched:sched_switch`` (or two syscall hooks on one syscall, which become the
same syscall tracepoint here) used to have only its last program detached: the
others went on posting records of a policy the agent no longer knew. What the
kernel holds is read with ``bpftool``: the perf events and raw tracepoints the
agent's process owns (``perf list``) and the programs loaded (``prog list``).
Program ids are never reused, so "the policy's programs are gone" is exact even
with other BPF users on the machine.
"""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.e2e.harness import RunningAgent, attachments, loaded_programs, tetra

pytestmark = pytest.mark.usefixtures("root")

# Four hooks on one tracepoint and two on one raw tracepoint (matching no pid: the
# programs run on every switch, post nothing), and two syscall hooks on one syscall
# (the second with a return probe) that post every call: nine programs sharing
# three events (four with the syscall's exit).
SWITCH_HOOK = """\
  - subsystem: sched
    event: sched_switch{raw}
    args:
    - index: {index}
      type: int
    selectors:
    - matchPIDs:
      - operator: In
        values: [{pid}]
"""
POLICY = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: shared-hooks
spec:
  tracepoints:
""" + "".join(SWITCH_HOOK.format(raw="\n    raw: true" if raw else "", index=0 if raw else 7, pid=999_990 + i)
              for i, raw in enumerate([False] * 4 + [True] * 2)) + """\
  kprobes:
  - call: sys_getppid
    syscall: true
  - call: sys_getppid
    syscall: true
    return: true
    returnArg:
      index: 0
      type: int
"""
PROGRAMS = 4 + 2 + 1 + 2


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None) -> Iterator[RunningAgent]:
    running = RunningAgent(tmp_path_factory.mktemp("detach-agent")).start(180)
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


def ok(agent: RunningAgent, *args: str) -> str:
    done = tetra(agent, "tracingpolicy", *args)
    assert done.returncode == 0, (args, done.stderr.decode())
    return done.stdout.decode()


def test_delete_and_disable_detach_every_program(agent: RunningAgent, tmp_path: Path) -> None:
    assert agent.proc is not None
    pid = agent.proc.pid
    policy = tmp_path / "shared.yaml"
    policy.write_text(POLICY)
    before = attachments(pid)

    def added() -> dict[int, str]:
        now = attachments(pid)
        assert set(before) <= set(now), "the process sensor's programs stay attached"
        new = {prog: what for prog, what in now.items() if prog not in before}
        assert len(new) == PROGRAMS, new
        assert sorted(new.values()).count("sched_switch") == 6, new
        return new

    ok(agent, "add", str(policy))
    first = added()

    ok(agent, "disable", "shared-hooks")
    assert attachments(pid) == before
    assert not set(first) & loaded_programs(), "a disabled policy's programs are unloaded"

    ok(agent, "enable", "shared-hooks")
    second = added()

    ok(agent, "delete", "shared-hooks")
    assert attachments(pid) == before
    assert not set(second) & loaded_programs(), "a deleted policy's programs are unloaded"
    # Records posted just before the delete may arrive as policy_unknown; none after
    # it, however often the syscall its hooks were on is called.
    time.sleep(2)
    settled = policy_unknown(agent)
    subprocess.run([sys.executable, "-c", "import os\nfor _ in range(10000): os.getppid()"], check=True)
    time.sleep(2)
    assert policy_unknown(agent) == settled

    agent.stop()
    assert not set(before) & loaded_programs(), "the agent's exit unloads the rest"


def policy_unknown(agent: RunningAgent) -> int:
    done = tetra(agent, "status", "-o", "json")
    assert done.returncode == 0, done.stderr.decode()
    return orjson.loads(done.stdout)["losses"]["pipeline"]["policy_unknown"]
