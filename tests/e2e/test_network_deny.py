"""Network deny without kprobes or BPF LSM: cgroup sock_addr programs in this kernel.

Each policy is scoped to a cgroup v2 directory made for the module; children
join it before they exec and then connect, bind or send. Every test proves the
effect (or its absence) on a real peer: the listener has nothing to accept,
the receiver nothing to read, and the caller got the policy's error.
"""

import errno
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import RunningAgent, tetra
from tetra.kernel.mounts import cgroup2_mount

DENY_CONNECT = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: deny-connect
spec:
  options:
  - name: cgroup-path
    value: "{cgroup}"
  kprobes:
  - call: security_socket_connect
    syscall: false
    args:
    - index: 0
      type: socket
    - index: 1
      type: sockaddr
    - index: 2
      type: int
    selectors:
    - matchArgs:
      - index: 1
        operator: SAddr
        values: ["127.0.0.0/8", "::1"]
      - index: 1
        operator: SPort
        values: ["{port}"]
      matchActions:
      - action: Override
        argError: -111
"""

DENY_BIND = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: deny-bind
spec:
  options:
  - name: cgroup-path
    value: "{cgroup}"
  lsmhooks:
  - hook: socket_bind
    args:
    - index: 1
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 1
        operator: SPort
        values: ["{port}"]
      matchActions:
      - action: Override
        argError: -1
"""

DENY_SENDTO = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: deny-sendto
spec:
  options:
  - name: cgroup-path
    value: "{cgroup}"
  kprobes:
  - call: sys_sendto
    syscall: true
    args:
    - index: 0
      type: int
    - index: 4
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 4
        operator: SPort
        values: ["{port}"]
      matchActions:
      - action: Override
        argError: -1
"""

MONITOR_CONNECT = DENY_CONNECT.replace("name: deny-connect", "name: watch-connect").replace(
    "  options:\n", "  options:\n  - name: policy-mode\n    value: monitor\n")

# Run in the child: join the cgroup (given as argv[1]) happened before exec; do one
# operation and print its outcome as JSON ({"ok": true} or {"errno": n}).
CHILD = r"""
import json, socket, sys
op, family, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam, host = {"6": (socket.AF_INET6, "::1"), "mapped": (socket.AF_INET6, "::ffff:127.0.0.1")}.get(
    family, (socket.AF_INET, "127.0.0.1"))
try:
    if op == "connect":
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.connect((host, port))
    elif op == "bind":
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.bind((host, port))
    else:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.sendto(b"secret", (host, port))
    print(json.dumps({"ok": True}))
except OSError as err:
    print(json.dumps({"errno": err.errno}))
"""


@pytest.fixture(scope="module")
def cgroup() -> Iterator[Path]:
    path = Path(cgroup2_mount()) / f"tetra-test-net-{secrets.token_hex(4)}"
    path.mkdir()
    yield path
    path.rmdir()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {name: free_port() for name in ("connect", "bind", "sendto", "monitor", "other")}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, cgroup: Path, ports: dict[str, int]) -> Iterator[RunningAgent]:
    work = tmp_path_factory.mktemp("net-deny")
    policies = work / "policies"
    policies.mkdir()
    for name, text, port in (("connect", DENY_CONNECT, ports["connect"]), ("bind", DENY_BIND, ports["bind"]),
                             ("sendto", DENY_SENDTO, ports["sendto"]),
                             ("monitor", MONITOR_CONNECT, ports["monitor"])):
        (policies / f"{name}.yaml").write_text(text.format(cgroup=cgroup.name, port=port))
    running = RunningAgent(work, "--tracing-policy-dir", str(policies)).start()
    yield running
    running.stop()


def attempt(op: str, port: int, cgroup: Path | None, family: str = "4") -> tuple[int, dict[str, Any]]:
    """(pid, outcome) of one operation in a child process, inside ``cgroup`` when given."""

    def join() -> None:
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    proc = subprocess.Popen([sys.executable, "-c", CHILD, op, family, str(port)], stdout=subprocess.PIPE,
                            preexec_fn=join)
    out, _ = proc.communicate(timeout=60)
    return proc.pid, json.loads(out)


def listening(port: int, family: int = socket.AF_INET) -> socket.socket:
    server = socket.socket(family)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", port))
    server.listen(8)
    server.setblocking(False)
    return server


def accepted(server: socket.socket) -> int:
    """How many connections reached the listener."""
    count = 0
    time.sleep(0.2)
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def kprobe_events(agent: RunningAgent, policy: str, pid: int, kind: str = "process_kprobe") -> list[dict[str, Any]]:
    """The policy's events of this process, once there is one."""

    def mine(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e[kind] for e in events if kind in e and e[kind]["policy_name"] == policy
                and e[kind]["process"]["pid"] == pid]

    return mine(agent.wait_for(lambda events: bool(mine(events))))


def test_a_denied_connect_never_reaches_the_listener(agent: RunningAgent, cgroup: Path,
                                                     ports: dict[str, int]) -> None:
    with listening(ports["connect"]) as server:
        pid, outcome = attempt("connect", ports["connect"], cgroup)
        assert outcome == {"errno": errno.ECONNREFUSED}  # the policy's argError, -111
        assert accepted(server) == 0
        [event] = kprobe_events(agent, "deny-connect", pid)
    assert event["function_name"] == "security_socket_connect"
    assert event["action"] == "KPROBE_ACTION_OVERRIDE" and "policy_mode" not in event
    assert event["args"] == [
        {"sock_arg": {"family": "AF_INET", "type": "SOCK_STREAM", "protocol": "IPPROTO_TCP", "saddr": "0.0.0.0",
                      "daddr": "127.0.0.1", "sport": 0, "dport": ports["connect"], "state": "0"}},
        {"sockaddr_arg": {"family": "AF_INET", "addr": "127.0.0.1", "port": ports["connect"]}},
    ]


def test_ipv6_is_denied_by_the_same_policy(agent: RunningAgent, cgroup: Path, ports: dict[str, int]) -> None:
    with listening(ports["connect"], socket.AF_INET6) as server:
        pid, outcome = attempt("connect", ports["connect"], cgroup, family="6")
        assert outcome == {"errno": errno.ECONNREFUSED}
        assert accepted(server) == 0
    [event] = kprobe_events(agent, "deny-connect", pid)
    assert event["args"][1] == {"sockaddr_arg": {"family": "AF_INET6", "addr": "::1", "port": ports["connect"]}}


def test_ipv4_rules_cover_ipv4_mapped_ipv6(agent: RunningAgent, cgroup: Path, ports: dict[str, int]) -> None:
    """A dual-stack socket reaches 127.0.0.1 as ::ffff:127.0.0.1: the IPv4 rule must see it."""
    with listening(ports["connect"]) as server:
        pid, outcome = attempt("connect", ports["connect"], cgroup, family="mapped")
        assert outcome == {"errno": errno.ECONNREFUSED}
        assert accepted(server) == 0
    [event] = kprobe_events(agent, "deny-connect", pid)
    sockaddr = event["args"][1]["sockaddr_arg"]
    assert (sockaddr["family"], sockaddr["port"]) == ("AF_INET6", ports["connect"])
    assert ipaddress.IPv6Address(sockaddr["addr"]).ipv4_mapped == ipaddress.IPv4Address("127.0.0.1")


def test_what_the_policy_does_not_select_connects(agent: RunningAgent, cgroup: Path, ports: dict[str, int]) -> None:
    with listening(ports["connect"]) as server:
        assert attempt("connect", ports["connect"], None)[1] == {"ok": True}  # outside the cgroup
        assert accepted(server) == 1
    with listening(ports["other"]) as server:
        assert attempt("connect", ports["other"], cgroup)[1] == {"ok": True}  # another port
        assert accepted(server) == 1


def test_a_denied_bind_fails_with_eperm(agent: RunningAgent, cgroup: Path, ports: dict[str, int]) -> None:
    pid, outcome = attempt("bind", ports["bind"], cgroup)
    assert outcome == {"errno": errno.EPERM}
    [event] = kprobe_events(agent, "deny-bind", pid, kind="process_lsm")
    assert (event["function_name"], event["action"]) == ("socket_bind", "KPROBE_ACTION_OVERRIDE")
    assert event["args"] == [{"sockaddr_arg": {"family": "AF_INET", "addr": "127.0.0.1", "port": ports["bind"]}}]
    assert attempt("bind", ports["other"], cgroup)[1] == {"ok": True}


def test_a_denied_datagram_never_arrives(agent: RunningAgent, cgroup: Path, ports: dict[str, int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", ports["sendto"]))
        receiver.settimeout(0.5)
        pid, outcome = attempt("sendto", ports["sendto"], cgroup)
        assert outcome == {"errno": errno.EPERM}
        with pytest.raises(TimeoutError):
            receiver.recv(64)
        [event] = kprobe_events(agent, "deny-sendto", pid)
        assert event["function_name"] == "__x64_sys_sendto"
        assert event["args"] == [{"sockaddr_arg": {"family": "AF_INET", "addr": "127.0.0.1",
                                                   "port": ports["sendto"]}}]
        assert attempt("sendto", ports["sendto"], None)[1] == {"ok": True}
        assert receiver.recv(64) == b"secret"


def test_monitor_mode_reports_what_it_would_deny_and_set_mode_enforces(agent: RunningAgent, cgroup: Path,
                                                                       ports: dict[str, int]) -> None:
    port = ports["monitor"]
    with listening(port) as server:
        pid, outcome = attempt("connect", port, cgroup)
        assert outcome == {"ok": True} and accepted(server) == 1
        [event] = kprobe_events(agent, "watch-connect", pid)
        assert (event["action"], event["policy_mode"]) == ("KPROBE_ACTION_OVERRIDE", "monitor")

        done = tetra(agent, "tracingpolicy", "set-mode", "watch-connect", "enforce")
        assert done.returncode == 0, done.stderr
        pid, outcome = attempt("connect", port, cgroup)
        assert outcome == {"errno": errno.ECONNREFUSED} and accepted(server) == 0
        [event] = kprobe_events(agent, "watch-connect", pid)
        assert event["action"] == "KPROBE_ACTION_OVERRIDE" and "policy_mode" not in event


def test_a_killed_agent_leaves_no_rule_behind(tmp_path: Path, cgroup: Path, ports: dict[str, int]) -> None:
    policy = tmp_path / "deny.yaml"
    port = free_port()
    policy.write_text(DENY_CONNECT.format(cgroup=cgroup.name, port=port).replace("deny-connect", "crash-deny"))
    crashing = RunningAgent(tmp_path, "--tracing-policy", str(policy)).start()
    with listening(port) as server:
        assert attempt("connect", port, cgroup)[1] == {"errno": errno.ECONNREFUSED}
        assert crashing.proc is not None
        crashing.proc.send_signal(signal.SIGKILL)
        crashing.proc.wait(30)
        assert attempt("connect", port, cgroup)[1] == {"ok": True}  # its links died with it
        assert accepted(server) == 1
