"""TracingPolicies in the real kernel: typed arguments, in-kernel selectors, actions.

One agent loads every policy of this module (written at run time, with this
run's temporary paths as values), real processes trigger the hooks, and the
assertions are on the exported events and on the kernel's per-hook counters
(calls seen versus events posted: what did not match never left the kernel).
"""

import base64
import os
import signal
import socket
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Event, RunningAgent

pytestmark = pytest.mark.usefixtures("root")

POLICIES = {
    "open-prefix": """
        kprobes:
        - call: "sys_openat"
          syscall: true
          args:
          - index: 0
            type: int
          - index: 1
            type: "string"
            label: "path"
          - index: 2
            type: int
          selectors:
          - matchArgs:
            - index: 1
              operator: "Prefix"
              values: ["{root}/prefix/"]
        """,
    "open-postfix-notequal": """
        kprobes:
        - call: "sys_openat"
          syscall: true
          args:
          - index: 1
            type: "string"
          selectors:
          - matchArgs:
            - index: 1
              operator: "Postfix"
              values: [".secret"]
            - index: 1
              operator: "NotEqual"
              values: ["{root}/ignored.secret"]
        """,
    "kill-on-open": """
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
              values: ["{root}/forbidden"]
            matchActions:
            - action: Sigkill
        """,
    "monitor-kill": """
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
              values: ["{root}/monitored"]
            matchActions:
            - action: Sigkill
        options:
        - name: policy-mode
          value: monitoring
        """,
    "binaries": """
        kprobes:
        - call: "sys_openat"
          syscall: true
          args:
          - index: 1
            type: "string"
          selectors:
          - matchArgs:
            - index: 1
              operator: "Prefix"
              values: ["{root}/bin/"]
            matchBinaries:
            - operator: "In"
              values: ["/usr/bin/cat"]
        """,
    "read-return": """
        kprobes:
        - call: "sys_read"
          syscall: true
          return: true
          args:
          - index: 0
            type: "fd"
          - index: 1
            type: "char_buf"
            returnCopy: true
          - index: 2
            type: "size_t"
          returnArg:
            index: 0
            type: "int"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Prefix"
              values: ["{root}/read/"]
            matchReturnArgs:
            - index: 0
              operator: "GT"
              values: ["0"]
        """,
    "unlink-tracepoint": """
        tracepoints:
        - subsystem: "syscalls"
          event: "sys_enter_unlinkat"
          args:
          - index: 6
            type: "string"
          selectors:
          - matchArgs:
            - index: 6
              operator: "Prefix"
              values: ["{root}/unlink/"]
        """,
    "connect": """
        kprobes:
        - call: "sys_connect"
          syscall: true
          args:
          - index: 0
            type: "int"
          - index: 1
            type: "sockaddr"
          selectors:
          - matchArgs:
            - index: 1
              operator: "SAddr"
              values: ["127.0.0.0/8"]
            - index: 1
              operator: "SPort"
              values: ["{port}"]
        """,
    "rate-and-stack": """
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
              values: ["{root}/limited"]
            matchActions:
            - action: Post
              rateLimit: "1m"
              rateLimitScope: "global"
              userStackTrace: true
        """,
    "namespaces-caps": """
        kprobes:
        - call: "sys_mkdir"
          syscall: true
          args:
          - index: 0
            type: "string"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Prefix"
              values: ["{root}/mkdir/"]
            matchNamespaces:
            - namespace: Mnt
              operator: In
              values: ["host_ns"]
            matchCapabilities:
            - type: Effective
              operator: In
              values: ["CAP_SYS_ADMIN"]
        """,
    "sock-state": """
        tracepoints:
        - subsystem: "sock"
          event: "inet_sock_set_state"
          args:
          - index: 4
            type: "sock"
          - index: 6
            type: "int"
          selectors:
          - matchArgs:
            - index: 4
              operator: "DPort"
              values: ["{port}"]
            - index: 4
              operator: "DAddr"
              values: ["127.0.0.1/32"]
        """,
    "sched-exec": """
        tracepoints:
        - subsystem: "sched"
          event: "sched_process_exec"
          args:
          - index: 4
            type: "string"
          - index: 5
            type: "int"
          selectors:
          - matchArgs:
            - index: 4
              operator: "Postfix"
              values: ["/printenv"]
        """,
    "raw-exec": """
        tracepoints:
        - subsystem: "sched"
          event: "sched_process_exec"
          raw: true
          args:
          - index: 1
            type: "int"
        """,
    "follow-children": """
        kprobes:
        - call: "sys_openat"
          syscall: true
          args:
          - index: 1
            type: "string"
          selectors:
          - matchArgs:
            - index: 1
              operator: "Prefix"
              values: ["{root}/follow/"]
            matchBinaries:
            - operator: "In"
              followChildren: true
              values: ["/usr/bin/dash"]
        """,
    "follow-forks": """
        kprobes:
        - call: "sys_openat"
          syscall: true
          args:
          - index: 1
            type: "string"
          selectors:
          - matchArgs:
            - index: 1
              operator: "Prefix"
              values: ["{root}/forks/"]
            matchPIDs:
            - operator: "In"
              followForks: true
              values: [{pytest_pid}]
        """,
    "broken": """
        kprobes:
        - call: "sys_openat"
          syscall: true
          args:
          - index: 1
            type: "sock"
        """,
}


def _write_policies(directory: Path, root: Path, port: int) -> None:
    for name, spec in POLICIES.items():
        body = textwrap.dedent(spec).format(root=root, port=port, pytest_pid=os.getpid())
        text = ("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n"
                f"  name: {name}\nspec:\n" + textwrap.indent(body, "  "))
        (directory / f"{name}.yaml").write_text(text)


@pytest.fixture(scope="module")
def root_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("policy-root")
    for sub in ("prefix", "bin", "read", "unlink", "mkdir", "follow", "forks"):
        (root / sub).mkdir()
    return root


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None, root_dir: Path,
          listener: socket.socket) -> Iterator[RunningAgent]:
    policy_dir = tmp_path_factory.mktemp("policies")
    _write_policies(policy_dir, root_dir, listener.getsockname()[1])
    running = RunningAgent(tmp_path_factory.mktemp("agent"), "--tracing-policy-dir", str(policy_dir),
                           "--tracing-policy-keep-going").start(180)  # "broken" fails, the others run
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


def policy_events(events: list[Event], policy: str, kind: str = "process_kprobe") -> list[Event]:
    return [e[kind] for e in events if kind in e and e[kind].get("policy_name") == policy]


def wait_policy(agent: RunningAgent, policy: str, count: int = 1, kind: str = "process_kprobe") -> list[Event]:
    events = agent.wait_for(lambda ev: len(policy_events(ev, policy, kind)) >= count)
    return policy_events(events, policy, kind)


def test_prefix_match_with_typed_arguments(agent: RunningAgent, root_dir: Path) -> None:
    target = root_dir / "prefix" / "file"
    target.write_text("x")
    (root_dir / "elsewhere").write_text("y")
    subprocess.run(["/usr/bin/cat", str(root_dir / "elsewhere"), str(target)], check=True, capture_output=True)
    found = wait_policy(agent, "open-prefix")
    assert all(e["args"][1]["string_arg"].startswith(f"{root_dir}/prefix/") for e in found)
    found = agent.wait_for(lambda ev: any(e["process"]["binary"] == "/usr/bin/cat"
                                          for e in policy_events(ev, "open-prefix")))
    event = [e for e in policy_events(found, "open-prefix") if e["process"]["binary"] == "/usr/bin/cat"][0]
    assert event["args"][1]["string_arg"] == str(target)
    assert event["function_name"] == "__x64_sys_openat"
    assert event["action"] == "KPROBE_ACTION_POST"
    assert event["args"][0] == {"int_arg": -100}  # AT_FDCWD
    assert event["args"][1]["label"] == "path"
    assert event["process"]["binary"] == "/usr/bin/cat"
    assert event["parent"]["pid"] == os.getpid()


def test_postfix_and_notequal(agent: RunningAgent, root_dir: Path) -> None:
    for name in ("a.secret", "ignored.secret", "b.public"):
        (root_dir / name).write_text("z")
        subprocess.run(["/usr/bin/cat", str(root_dir / name)], check=True, capture_output=True)
    found = wait_policy(agent, "open-postfix-notequal")
    paths = {e["args"][0]["string_arg"] for e in found}
    assert str(root_dir / "a.secret") in paths
    assert str(root_dir / "ignored.secret") not in paths
    assert all(p.endswith(".secret") for p in paths)


def test_sigkill_stops_the_process(agent: RunningAgent, root_dir: Path) -> None:
    staged = root_dir / "staged"
    staged.write_text("no")
    staged.rename(root_dir / "forbidden")  # opening the forbidden path ourselves would be fatal
    proc = subprocess.run(["/usr/bin/cat", str(root_dir / "forbidden")], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout == b""  # killed before the read returned anything
    event = wait_policy(agent, "kill-on-open")[0]
    assert event["action"] == "KPROBE_ACTION_SIGKILL"


def test_monitoring_mode_reports_without_killing(agent: RunningAgent, root_dir: Path) -> None:
    (root_dir / "monitored").write_text("ok")
    proc = subprocess.run(["/usr/bin/cat", str(root_dir / "monitored")], capture_output=True)
    assert proc.returncode == 0 and proc.stdout == b"ok"
    event = wait_policy(agent, "monitor-kill")[0]
    assert event["action"] == "KPROBE_ACTION_SIGKILL"


def test_match_binaries(agent: RunningAgent, root_dir: Path) -> None:
    target = root_dir / "bin" / "f"
    target.write_text("1")
    subprocess.run(["/usr/bin/head", "-c1", str(target)], check=True, capture_output=True)
    subprocess.run(["/usr/bin/cat", str(target)], check=True, capture_output=True)
    found = wait_policy(agent, "binaries")
    assert {e["process"]["binary"] for e in found} == {"/usr/bin/cat"}


def test_return_probe_copies_the_read_buffer(agent: RunningAgent, root_dir: Path) -> None:
    target = root_dir / "read" / "data"
    target.write_bytes(b"hello tetra")
    subprocess.run(["/usr/bin/cat", str(target)], check=True, capture_output=True)
    found = wait_policy(agent, "read-return")
    event = found[0]
    assert event["args"][0] == {"file_arg": {"path": str(target)}}
    assert base64.b64decode(event["args"][1]["bytes_arg"]) == b"hello tetra"
    assert event["return"] == {"int_arg": len(b"hello tetra")}
    assert len(found) == 1  # the read that returned 0 (end of file) did not match GT 0


def test_tracepoint_field_index(agent: RunningAgent, root_dir: Path) -> None:
    victim = root_dir / "unlink" / "gone"
    victim.write_text("")
    subprocess.run(["/usr/bin/rm", str(victim)], check=True)
    event = wait_policy(agent, "unlink-tracepoint", kind="process_tracepoint")[0]
    assert (event["subsys"], event["event"]) == ("syscalls", "sys_enter_unlinkat")
    assert event["args"][0]["string_arg"] == str(victim)


def test_connect_sockaddr_filters(agent: RunningAgent, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port)):
        pass
    event = wait_policy(agent, "connect")[0]
    assert event["args"][1]["sockaddr_arg"] == {"family": "AF_INET", "addr": "127.0.0.1", "port": port}


def test_sock_argument_on_a_tracepoint(agent: RunningAgent, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port)) as client:
        local_port = client.getsockname()[1]
    def established(events: list[Event]) -> list[Event]:
        return [e for e in policy_events(events, "sock-state", "process_tracepoint")
                if e["args"][1]["int_arg"] == 1 and e["args"][0]["sock_arg"]["sport"] == local_port]

    found = established(agent.wait_for(lambda ev: bool(established(ev))))
    sock = found[0]["args"][0]["sock_arg"]
    assert (sock["family"], sock["protocol"], sock["type"]) == ("AF_INET", "IPPROTO_TCP", "SOCK_STREAM")
    assert (sock["daddr"], sock["dport"]) == ("127.0.0.1", port)
    assert sock["saddr"] == "127.0.0.1"
    assert sock["state"] == "TCP_SYN_SENT"  # the tracepoint fires before the state changes


def test_tracepoint_data_loc_string(agent: RunningAgent) -> None:
    proc = subprocess.run(["/usr/bin/printenv", "HOME"], capture_output=True)
    event = wait_policy(agent, "sched-exec", kind="process_tracepoint")[0]
    assert event["args"] == [{"string_arg": "/usr/bin/printenv"}, {"int_arg": event["process"]["pid"]}]
    assert proc.returncode == 0


def test_raw_tracepoint_arguments(agent: RunningAgent) -> None:
    proc = subprocess.Popen(["/usr/bin/true"])
    proc.wait()
    events = agent.wait_for(lambda ev: any(e["process"]["pid"] == proc.pid
                                           for e in policy_events(ev, "raw-exec", "process_tracepoint")))
    event = [e for e in policy_events(events, "raw-exec", "process_tracepoint") if e["process"]["pid"] == proc.pid][0]
    assert (event["subsys"], event["event"]) == ("sched", "sched_process_exec")
    assert event["args"] == [{"int_arg": proc.pid}]  # old_pid


def test_match_binaries_follow_children(agent: RunningAgent, root_dir: Path) -> None:
    target = root_dir / "follow" / "f"
    target.write_text("c")
    subprocess.run(["/usr/bin/cat", str(target)], check=True, capture_output=True)  # not under dash
    subprocess.run(["/usr/bin/dash", "-c", f"/usr/bin/cat {target}; /usr/bin/true"], check=True, capture_output=True)
    found = wait_policy(agent, "follow-children")
    assert {e["process"]["binary"] for e in found} == {"/usr/bin/cat"}
    assert all(e["parent"]["binary"] == "/usr/bin/dash" for e in found)


def test_match_pids_follow_forks(agent: RunningAgent, root_dir: Path) -> None:
    target = root_dir / "forks" / "f"
    target.write_text("f")
    orphan_done = root_dir / "orphan-done"
    # A grandchild whose parent exits at once is adopted by init: no longer our descendant.
    subprocess.run(["/bin/sh", "-c", f"(sleep 0.5; /usr/bin/cat {target}; : > {orphan_done}) &"], check=True)
    subprocess.run(["/usr/bin/head", "-c1", str(target)], check=True, capture_output=True)
    agent.wait_for(lambda ev: orphan_done.exists(), timeout=10)
    found = wait_policy(agent, "follow-forks")
    binaries = {e["process"]["binary"] for e in found}
    assert "/usr/bin/head" in binaries
    assert "/usr/bin/cat" not in binaries


def test_rate_limit_and_user_stack(agent: RunningAgent, root_dir: Path) -> None:
    target = root_dir / "limited"
    target.write_text("r")
    for _ in range(5):
        subprocess.run(["/usr/bin/cat", str(target)], check=True, capture_output=True)
    found = wait_policy(agent, "rate-and-stack")
    assert len(found) >= 1
    assert found[0]["user_stack_trace"], "a user stack was asked for"


def test_namespaces_and_capabilities(agent: RunningAgent, root_dir: Path) -> None:
    subprocess.run(["/usr/bin/mkdir", str(root_dir / "mkdir" / "as-root")], check=True)
    subprocess.run(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    "/usr/bin/mkdir", str(root_dir / "mkdir" / "as-nobody")], capture_output=True)
    found = wait_policy(agent, "namespaces-caps")
    paths = {e["args"][0]["string_arg"] for e in found}
    assert str(root_dir / "mkdir" / "as-root") in paths
    assert str(root_dir / "mkdir" / "as-nobody") not in paths  # no CAP_SYS_ADMIN


def test_summary_counts_and_broken_policy(agent: RunningAgent, root_dir: Path) -> None:
    summary = agent.stop()
    policies = {p["name"]: p for p in summary["policies"]}
    assert policies["broken"]["state"] == "load_error"
    assert "type 'sock' is a kernel pointer" in policies["broken"]["error"]
    assert "broken.yaml:" in policies["broken"]["error"]
    assert all(p["state"] == "enabled" for name, p in policies.items() if name != "broken")
    events = agent.events()
    for name in ("open-prefix", "rate-and-stack"):
        hook = policies[name]["hooks"][0]
        assert hook["mechanism"] == "tracepoint"
        posted = len(policy_events(events, name))
        assert hook["posted"] == posted, name  # every event the kernel posted arrived
        assert hook["seen"] > posted, name  # the calls that did not match stayed in the kernel
    rate_limited = len(policy_events(events, "rate-and-stack"))
    assert rate_limited == 1  # six identical opens within the minute, any process: one event
