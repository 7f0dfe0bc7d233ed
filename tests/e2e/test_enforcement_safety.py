"""An enforcing policy never acts on the agent itself or PID 1, unless it says so.

A policy sees the agent's own calls only with the option ``observe-agent``; the
policies aimed at the agent below set it, so what spares the agent is the
protected-process check. The first policy matches every system call of one
process and kills it: aimed at a child it kills the child; aimed at the agent
it must leave the agent running, with events that say the signal was withheld
and why. ``Override`` (and ``NotifyEnforcer``'s error) is withheld the same
way: here a connect deny that would cut the agent off from its collector.
BPF LSM, ``bpf_override_return`` and ``fmod_ret`` are missing on this machine;
tests/e2e/test_kernel_hooks.py checks the same kernel-side check through an
LSM Override in the VM lane.
"""

import errno
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.e2e.harness import Event, RunningAgent, tetra

OBSERVE_AGENT = '  options:\n  - name: observe-agent\n    value: "true"\n'

KILL_PID = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: {name}
spec:
{options}  tracepoints:
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

# Every loopback connect to one port is refused (a cgroup connect program at the root
# cgroup here: no kprobes on this machine), the agent's included unless it is spared.
# gRPC connects from a dual-stack IPv6 socket, to the IPv4-mapped address.
DENY_CONNECT = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: deny-collector
spec:
""" + OBSERVE_AGENT + """  kprobes:
  - call: security_socket_connect
    syscall: false
    args:
    - index: 0
      type: socket
    - index: 1
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 1
        operator: SAddr
        values: ["127.0.0.1", "::ffff:127.0.0.1"]
      - index: 1
        operator: SPort
        values: ["{port}"]
      matchActions:
      - action: Override
        argError: -111
"""

CONNECT = """
import json, socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
    print(json.dumps({"ok": True}))
except OSError as err:
    print(json.dumps({"errno": err.errno}))
"""


def add(agent: RunningAgent, path: Path, text: str) -> None:
    path.write_text(text)
    done = tetra(agent, "tracingpolicy", "add", str(path))
    assert done.returncode == 0, done.stderr


def policy_events(events: list[Event], name: str) -> list[Event]:
    """The events of one policy, whatever kind of hook posted them."""
    return [body for e in events for kind, body in e.items()
            if kind.startswith("process_") and isinstance(body, dict) and body.get("policy_name") == name]


def spared(agent: RunningAgent, name: str, action: str) -> list[Event]:
    """The agent's events from policy ``name`` say ``action`` was withheld, and it still runs and answers.
    Returns the policy's events."""
    assert agent.proc is not None
    pid = agent.proc.pid
    events = agent.wait_for(lambda ev: any(e["process"]["pid"] == pid for e in policy_events(ev, name)))
    mine = [e for e in policy_events(events, name) if e["process"]["pid"] == pid]
    assert {(e["action"], e.get("protected_process")) for e in mine} == {(action, True)}
    time.sleep(1)
    assert agent.proc.poll() is None
    status = tetra(agent, "status")
    assert status.returncode == 0, status.stderr
    return policy_events(agent.events(), name)


def test_a_policy_aimed_at_the_agent_does_not_kill_it(tmp_path: Path) -> None:
    agent = RunningAgent(tmp_path).start()
    assert agent.proc is not None
    try:
        victim = subprocess.Popen(["/bin/sh", "-c", "while sleep 0.1; do :; done"])
        add(agent, tmp_path / "victim.yaml", KILL_PID.format(name="kill-victim", options="", pid=victim.pid))
        assert victim.wait(30) == -9  # the same policy kills an ordinary process

        add(agent, tmp_path / "agent.yaml",
            KILL_PID.format(name="kill-agent", options=OBSERVE_AGENT, pid=agent.proc.pid))
        spared(agent, "kill-agent", "KPROBE_ACTION_SIGKILL")
    finally:
        agent.stop()


class Collector:
    """A TCP listener standing in for an OTLP collector: counts the connections it accepts
    (and drops them, so the agent's exporter keeps reconnecting)."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.accepted = 0

    def start(self) -> None:
        self.server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def wait(self, at_least: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.accepted < at_least:
            assert time.monotonic() < deadline, "the agent never reached its collector"
            time.sleep(0.1)


def test_a_connect_deny_does_not_cut_the_agent_off_its_collector(tmp_path: Path) -> None:
    collector = Collector()
    try:
        policy = tmp_path / "deny.yaml"
        policy.write_text(DENY_CONNECT.format(port=collector.port))
        agent = RunningAgent(tmp_path, "--tracing-policy", str(policy),
                             "--export-otlp-endpoint", f"127.0.0.1:{collector.port}").start()
        assert agent.proc is not None
        try:
            collector.start()  # only now: every connect it sees was made under the policy
            child = subprocess.run([sys.executable, "-c", CONNECT, str(collector.port)], capture_output=True,
                                   check=True, timeout=30)
            assert json.loads(child.stdout) == {"errno": errno.ECONNREFUSED}  # an ordinary process is denied
            collector.wait(at_least=1)  # the agent's exporter is not
            events = spared(agent, "deny-collector", "KPROBE_ACTION_OVERRIDE")
            denied = [e for e in events if e["process"]["pid"] != agent.proc.pid]  # the child: not spared
            assert denied and all("protected_process" not in e for e in denied)
        finally:
            agent.stop()
    finally:
        collector.server.close()
