"""Kernel-function hooks: kprobes, kretprobes, fentry and BPF LSM from policies.

These need kernel features the CI machine's own kernel lacks; the markers skip
them there and the VM lane (tests/vm) runs them on a stock kernel. One policy
module per mechanism keeps the compiles (slow under emulation) few.
"""

import ctypes
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tetra.compiler.kernel import KernelSupport
from tetra.compiler.plan import HookPlan, Mechanism
from tetra.compiler.program import CompiledPolicy, compile_policy
from tetra.decode import process as _process  # noqa: F401  (registers decoders)
from tetra.decode.generic import ArgsDecoder, GenericRecord, decode_args
from tetra.decode.registry import decode
from tetra.kernel.btf import Btf
from tetra.kernel.offsets import resolve_offsets
from tetra.policy.loader import load_policies_text
from tetra.wire.constants import GEN_PROTECTED, Action

pytestmark = pytest.mark.usefixtures("root")


class Session:
    """One process sensor for the module (its maps are shared by name, so only one
    may live at a time), and the policy whose events are being collected."""

    def __init__(self) -> None:
        from tetra.sensors.process import ProcessSensor

        self.btf = Btf.load()
        self.offsets = resolve_offsets(self.btf)
        self.process = ProcessSensor(self.offsets)
        self.process.load()
        self.current: "Loaded | None" = None
        self._callback = self._on_record  # kept alive: bcc holds only a weak reference
        self.process.bpf["tetra_events"].open_ring_buffer(self._callback)

    def _on_record(self, _ctx: object, data: int, size: int) -> int:
        record = decode(ctypes.string_at(data, size))
        current = self.current
        if isinstance(record, GenericRecord) and current is not None \
                and record.policy_id == current.compiled.policy_id:
            hook = current.compiled.hooks[record.hook_id]
            current.events.append((hook, record, decode_args(record.blob, hook)))
        return 0


@dataclass
class Loaded:
    """One policy loaded beside the session's process sensor, with its events."""

    session: Session
    compiled: CompiledPolicy
    policy: Any
    events: list[tuple[HookPlan, GenericRecord, list[dict[str, Any]]]] = field(default_factory=list)

    def collect(self, trigger: Callable[[], object]) -> list[tuple[HookPlan, GenericRecord, list[dict[str, Any]]]]:
        self.session.current = self
        self.events.clear()
        trigger()
        self.session.process.bpf.ring_buffer_poll(200)
        self.session.process.bpf.ring_buffer_consume()
        return list(self.events)


def _policy(name: str, spec: str) -> str:
    return (f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:\n"
            + textwrap.indent(textwrap.dedent(spec), "  "))


def _load(session: Session, text: str, support: KernelSupport, policy_id: int,
          agent_tgid: int = 0, from_object: bool = False) -> Iterator[Loaded]:
    """``agent_tgid``: the process the policy is to treat as the agent (none by default).
    ``from_object``: built beside this process and loaded without clang, as the agent does with its
    object cache (kprobe and kretprobe programs through bpf() directly); else compiled by bcc here."""
    from tetra.sensors.build import Build
    from tetra.sensors.policy import PolicySensor
    from tetra.sensors.process import SHARED_TABLES

    compiled = compile_policy(load_policies_text(text, "hooks.yaml")[0], policy_id, support, session.btf)
    policy = PolicySensor(compiled, {**session.offsets, "TETRA_RINGBUF_PAGES": 2048, "TETRA_AGENT_TGID": agent_tgid})
    request = policy.build_request(SHARED_TABLES) if from_object else None
    if request is not None:
        (spec,) = Build([request]).wait()
        policy.load(obj=spec, shared=session.process.shared_maps())
        assert policy.from_object
    else:
        policy.load()
    try:
        yield Loaded(session, compiled, policy)
    finally:
        policy.close()


@pytest.fixture(scope="module")
def session(root: None) -> Iterator[Session]:
    subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True)  # a bare VM starts with lo down
    running = Session()
    yield running
    running.process.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hooks")
    (path / "data").write_text("kernel hooks")
    return path


@pytest.fixture(scope="module")
def kprobes(workdir: Path, listener: socket.socket, session: Session) -> Iterator[Loaded]:
    text = _policy("kprobe-hooks", f"""\
        kprobes:
        - call: "security_file_permission"
          syscall: false
          return: true
          args:
          - index: 0
            type: "file"
          - index: 1
            type: "int"
          returnArg:
            index: 0
            type: "int"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Prefix"
              values: ["{workdir}/"]
        - call: "tcp_connect"
          syscall: false
          args:
          - index: 0
            type: "sock"
          selectors:
          - matchArgs:
            - index: 0
              operator: "DPort"
              values: ["{listener.getsockname()[1]}"]
        - call: "sys_openat"
          syscall: true
          args:
          - index: 1
            type: "string"
          selectors:
          - matchArgs:
            - index: 1
              operator: "Equal"
              values: ["{workdir}/data"]
        - call: "commit_creds"
          syscall: false
          args:
          - index: 0
            type: "cred"
        - call: "d_path"
          syscall: false
          return: true
          args:
          - index: 0
            type: "path"
          returnArg:
            type: "string"
          selectors:
          - matchReturnArgs:
            - operator: "Prefix"
              values: ["{workdir}/"]
        """)
    yield from _load(session, text, KernelSupport.detect(), 1, from_object=True)


@pytest.mark.kprobe
def test_kprobe_and_kretprobe_on_a_kernel_function(kprobes: Loaded, workdir: Path) -> None:
    events = kprobes.collect(lambda: (workdir / "data").read_text())
    found = [(h, r, a) for h, r, a in events if h.function_name == "security_file_permission"]
    assert found, events
    hook, record, args = found[0]
    assert hook.mechanism is Mechanism.KPROBE and hook.return_attach == "security_file_permission"
    assert args[0] == {"file_arg": {"path": f"{workdir}/data"}}
    assert args[1] == {"int_arg": 4}  # MAY_READ
    assert record.ret == 0


@pytest.mark.kprobe
def test_kprobe_sock_argument(kprobes: Loaded, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    events = kprobes.collect(lambda: socket.create_connection(("127.0.0.1", port)).close())
    socks = [a[0]["sock_arg"] for h, _, a in events if h.function_name == "tcp_connect"]
    assert socks and socks[0]["daddr"] == "127.0.0.1" and socks[0]["dport"] == port


@pytest.mark.kprobe
def test_syscall_on_its_kprobe(kprobes: Loaded, workdir: Path) -> None:
    events = kprobes.collect(lambda: (workdir / "data").read_text())
    opens = [(h, a) for h, _, a in events if h.function_name.endswith("sys_openat")]
    assert opens and opens[0][0].mechanism is Mechanism.KPROBE
    assert opens[0][1] == [{"string_arg": f"{workdir}/data"}]


@pytest.mark.kprobe
def test_kprobe_cred_argument_of_a_real_setresuid(kprobes: Loaded) -> None:
    """commit_creds(new): the credentials a child gives itself, as Tetragon's process_credentials_arg."""
    child: list[int] = []

    def trigger() -> None:
        proc = subprocess.Popen([sys.executable, "-c", "import os; os.setresgid(4321, 4321, 4321); "
                                 "os.setresuid(1234, 1234, 1234)"])
        assert proc.wait() == 0
        child.append(proc.pid)

    events = kprobes.collect(trigger)
    creds = [a[0]["process_credentials_arg"] for h, r, a in events
             if h.function_name == "commit_creds" and r.pid == child[0]]
    final = [c for c in creds if c["uid"] == 1234]
    assert final, creds
    assert {key: final[-1][key] for key in ("uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid")} == \
        {"uid": 1234, "euid": 1234, "suid": 1234, "fsuid": 1234, "gid": 4321, "egid": 4321, "sgid": 4321,
         "fsgid": 4321}
    assert final[-1]["caps"] == {}  # leaving uid 0 without keepcaps drops every capability
    assert final[-1]["user_ns"] == {"level": 0, "uid": 0, "gid": 0,
                                    "ns": {"inum": os.stat("/proc/self/ns/user").st_ino, "is_host": True}}
    assert any(c["uid"] == 0 and "CAP_SYS_ADMIN" in c["caps"].get("effective", []) for c in creds)  # the setresgid


@pytest.mark.kprobe
def test_kretprobe_returned_string_is_matched_and_reported(kprobes: Loaded, workdir: Path) -> None:
    """d_path returns a pointer into its buffer: reported as the text, compared with matchReturnArgs."""
    def trigger() -> None:
        with open(workdir / "data") as inside, open("/etc/hostname") as outside:
            os.readlink(f"/proc/self/fd/{inside.fileno()}")
            os.readlink(f"/proc/self/fd/{outside.fileno()}")  # no workdir prefix: filtered in the kernel

    events = kprobes.collect(trigger)
    returned = [ArgsDecoder(h).returned(r.blob, r.ret) for h, r, _ in events if h.function_name == "d_path"]
    assert returned == [{"string_arg": f"{workdir}/data"}]


@pytest.fixture(scope="module")
def fentry(workdir: Path, session: Session) -> Iterator[Loaded]:
    text = _policy("fentry-hooks", f"""\
        kprobes:
        - call: "security_file_permission"
          syscall: false
          args:
          - index: 0
            type: "file"
          - index: 1
            type: "int"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Postfix"
              values: ["/data"]
            - index: 0
              operator: "Prefix"
              values: ["{workdir}/"]
        """)
    yield from _load(session, text, KernelSupport(kprobe=False, fentry=True, lsm=False), 2)


@pytest.mark.fentry
def test_fentry_when_kprobes_are_missing(fentry: Loaded, workdir: Path) -> None:
    assert fentry.compiled.hooks[0].mechanism is Mechanism.FENTRY
    events = fentry.collect(lambda: (workdir / "data").read_text())
    assert any(a[0] == {"file_arg": {"path": f"{workdir}/data"}} for _, _, a in events), events


@pytest.fixture(scope="module")
def lsm(workdir: Path, session: Session) -> Iterator[Loaded]:
    text = _policy("lsm-hooks", f"""\
        lsmhooks:
        - hook: "file_open"
          args:
          - index: 0
            type: "file"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Equal"
              values: ["{workdir}/data"]
        """)
    yield from _load(session, text, KernelSupport.detect(), 3)


@pytest.mark.lsm
def test_lsm_hook_event(lsm: Loaded, workdir: Path) -> None:
    assert lsm.compiled.hooks[0].mechanism is Mechanism.LSM
    events = lsm.collect(lambda: (workdir / "data").read_text())
    assert [a for _, _, a in events] == [[{"file_arg": {"path": f"{workdir}/data"}}]]
    assert events[0][0].event == "process_lsm"


@pytest.fixture(scope="module")
def lsm_deny(workdir: Path, session: Session) -> Iterator[Loaded]:
    (workdir / "denied").write_text("secret")
    text = _policy("lsm-deny", f"""\
        lsmhooks:
        - hook: "file_open"
          args:
          - index: 0
            type: "file"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Equal"
              values: ["{workdir}/denied"]
            matchActions:
            - action: Override
              argError: -1
        """)
    yield from _load(session, text, KernelSupport.detect(), 4)


@pytest.mark.lsm
def test_lsm_override_denies_the_open(lsm_deny: Loaded, workdir: Path) -> None:
    def attempt() -> None:
        with pytest.raises(PermissionError):
            (workdir / "denied").read_text()
        assert (workdir / "data").read_text() == "kernel hooks"  # other files open as before

    events = lsm_deny.collect(attempt)
    assert [r.action for _, r, _ in events] == [Action.OVERRIDE]
    assert events[0][2] == [{"file_arg": {"path": f"{workdir}/denied"}}]


@pytest.fixture(scope="module")
def syscall_override(workdir: Path, session: Session) -> Iterator[Loaded]:
    (workdir / "hidden").write_text("still here")
    text = _policy("syscall-override", f"""\
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
              values: ["{workdir}/hidden"]
            matchActions:
            - action: Override
              argError: -2
        """)
    yield from _load(session, text, KernelSupport.detect(), 5)


@pytest.mark.kprobe
@pytest.mark.override_return
def test_override_return_makes_the_syscall_fail(syscall_override: Loaded, workdir: Path) -> None:
    def attempt() -> None:
        with pytest.raises(FileNotFoundError):
            (workdir / "hidden").read_text()  # the file exists: the kernel said ENOENT for us

    events = syscall_override.collect(attempt)
    assert events and events[0][1].action == 4
    assert (workdir / "hidden").exists()


@pytest.fixture(scope="module")
def enforcer(session: Session) -> Iterator[Loaded]:
    text = _policy("notify-enforcer", """\
        enforcers:
        - calls:
          - "sys_write"
        kprobes:
        - call: "sys_write"
          syscall: true
          args:
          - index: 0
            type: "int"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Equal"
              values: ["77"]
            matchActions:
            - action: NotifyEnforcer
              argError: -1
        """)
    yield from _load(session, text, KernelSupport.detect(), 6)


@pytest.mark.fmod_ret
def test_notify_enforcer_makes_the_write_fail(enforcer: Loaded, workdir: Path) -> None:
    import os

    target = workdir / "enforced"
    target.write_bytes(b"")
    other = workdir / "not-enforced"

    def attempt() -> None:
        with target.open("wb") as f:
            os.dup2(f.fileno(), 77)
            try:
                with pytest.raises(PermissionError):
                    os.write(77, b"never lands")
            finally:
                os.close(77)
        other.write_bytes(b"lands")  # the same call on another descriptor

    events = enforcer.collect(attempt)
    assert enforcer.compiled.enforcers == ("__x64_sys_write",)
    assert [(r.action, a) for _, r, a in events] == [(Action.NOTIFY_ENFORCER, [{"int_arg": 77}])]
    assert target.read_bytes() == b"" and other.read_bytes() == b"lands"


@pytest.fixture(scope="module")
def security_deny(workdir: Path, session: Session) -> Iterator[Loaded]:
    (workdir / "guarded").write_text("secret")
    text = _policy("security-deny", f"""\
        kprobes:
        - call: "security_file_open"
          syscall: false
          args:
          - index: 0
            type: "file"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Equal"
              values: ["{workdir}/guarded"]
            matchActions:
            - action: Override
              argError: -13
        """)
    yield from _load(session, text, KernelSupport.detect(), 7)


@pytest.mark.lsm
def test_override_on_a_security_kprobe_denies_through_its_lsm_hook(security_deny: Loaded, workdir: Path) -> None:
    def attempt() -> None:
        with pytest.raises(PermissionError):  # EACCES, the policy's -13
            (workdir / "guarded").read_text()
        assert (workdir / "data").read_text() == "kernel hooks"

    hook = security_deny.compiled.hooks[0]
    assert (hook.mechanism, hook.function_name) == (Mechanism.LSM, "security_file_open")
    events = security_deny.collect(attempt)
    assert [(h.event, r.action, a) for h, r, a in events] == [
        ("process_kprobe", 4, [{"file_arg": {"path": f"{workdir}/guarded"}}])]


@pytest.fixture(scope="module")
def agent_deny(workdir: Path, session: Session) -> Iterator[Loaded]:
    """A deny that this test process, standing in for the agent, must be spared."""
    (workdir / "spared").write_text("agent's")
    text = _policy("agent-deny", f"""\
        options:
        - name: observe-agent
          value: "true"
        lsmhooks:
        - hook: "file_open"
          args:
          - index: 0
            type: "file"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Equal"
              values: ["{workdir}/spared"]
            matchActions:
            - action: Override
              argError: -1
        """)
    yield from _load(session, text, KernelSupport.detect(), 8, agent_tgid=os.getpid())


@pytest.mark.lsm
def test_lsm_override_spares_the_agent(agent_deny: Loaded, workdir: Path) -> None:
    child: list[subprocess.CompletedProcess[bytes]] = []

    def attempt() -> None:
        assert (workdir / "spared").read_text() == "agent's"
        child.append(subprocess.run(["/usr/bin/cat", str(workdir / "spared")], capture_output=True))

    events = agent_deny.collect(attempt)
    assert child[0].returncode != 0 and b"Operation not permitted" in child[0].stderr  # an ordinary process
    assert [(r.pid == os.getpid(), r.action, bool(r.flags & GEN_PROTECTED)) for _, r, _ in events] == [
        (True, Action.OVERRIDE, True), (False, Action.OVERRIDE, False)]  # withheld from the agent only


@pytest.fixture(scope="module")
def net_device(session: Session) -> Iterator[Loaded]:
    """A raw tracepoint (present here) handing a struct net_device: its name is what is reported."""
    text = _policy("net-device", """\
        tracepoints:
        - subsystem: "net"
          event: "net_dev_start_xmit"
          raw: true
          args:
          - index: 0
            type: "skb"
          - index: 1
            type: "net_device"
          selectors:
          - matchArgs:
            - index: 1
              operator: "Equal"
              values: ["lo"]
            - index: 0
              operator: "DPort"
              values: ["9"]
        """)
    yield from _load(session, text, KernelSupport.detect(), 12, from_object=True)


def test_net_device_argument_is_its_name(net_device: Loaded) -> None:
    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"x", ("127.0.0.1", 9))  # the discard port: nothing needs to listen

    events = net_device.collect(send)
    assert events, "no event for a datagram sent on lo"
    hook, _, args = events[0]
    assert hook.mechanism is Mechanism.RAW_TRACEPOINT
    assert args[1] == {"string_arg": "lo"}
    assert args[0]["skb_arg"]["dport"] == 9


@pytest.fixture(scope="module")
def sock_tracking(listener: socket.socket, session: Session) -> Iterator[Loaded]:
    """sock:inet_sock_set_state (a tracepoint, present here) with TrackSock at SYN_SENT and
    UntrackSock at CLOSE; its skaddr field is the struct sock."""
    port = listener.getsockname()[1]
    text = _policy("sock-tracking", f"""\
        tracepoints:
        - subsystem: "sock"
          event: "inet_sock_set_state"
          args:
          - index: 4
            type: "sock"
          - index: 6
            type: "int"
            label: "newstate"
          - index: 8
            type: "uint16"
          selectors:
          - matchArgs:
            - index: 8
              operator: "Equal"
              values: ["{port}"]
            - index: 6
              operator: "Equal"
              values: ["2"]
            matchActions:
            - action: TrackSock
              argSock: 4
          - matchArgs:
            - index: 8
              operator: "Equal"
              values: ["{port}"]
            - index: 6
              operator: "Equal"
              values: ["7"]
            matchActions:
            - action: UntrackSock
              argSock: 4
          - matchArgs:
            - index: 8
              operator: "Equal"
              values: ["{port}"]
        """)
    yield from _load(session, text, KernelSupport.detect(), 13, from_object=True)


# Connects, then a forked child shuts the socket down: the FIN_WAIT1 transition happens in the child.
_CONNECT_THEN_CHILD_SHUTS = """
import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
child = os.fork()
if child == 0:
    s.shutdown(socket.SHUT_WR)
    os._exit(0)
os.waitpid(child, 0)
print(os.getpid(), child)
"""


def test_tracked_sock_events_are_the_tracking_process(sock_tracking: Loaded, listener: socket.socket) -> None:
    port = str(listener.getsockname()[1])
    out: list[str] = []

    def connect() -> None:
        done = subprocess.run([sys.executable, "-c", _CONNECT_THEN_CHILD_SHUTS, port], capture_output=True,
                              text=True, check=True)
        out.extend(done.stdout.split())
        listener.accept()[0].close()

    events = sock_tracking.collect(connect)
    parent, child = (int(pid) for pid in out)
    states = {args[1]["int_arg"]: record.pid for _, record, args in events}
    assert states.get(2) == parent, events  # SYN_SENT, in the connecting process: tracked there
    assert 4 in states, events  # FIN_WAIT1 happened in the child...
    assert states[4] == parent != child  # ...and is reported as the process that tracked the socket


@pytest.fixture(scope="module")
def in_map(session: Session) -> Iterator[Loaded]:
    """Tetragon's list-syscalls-tracepoint example: raw_syscalls:sys_enter's id InMap a syscall list."""
    text = _policy("in-map", """\
        lists:
        - name: "dups"
          type: "syscalls"
          values: ["sys_dup", "sys_dup2"]
        tracepoints:
        - subsystem: "raw_syscalls"
          event: "sys_enter"
          args:
          - index: 4
            type: "uint64"
          selectors:
          - matchArgs:
            - index: 4
              operator: "InMap"
              values: ["list:dups"]
        """)
    yield from _load(session, text, KernelSupport.detect(), 14, from_object=True)


# dup(2) and dup2(2) through libc (Python's os.dup is an fcntl), then an open that is not in the list
_DUPS = """
import ctypes, os
libc = ctypes.CDLL(None)
libc.dup(0)
libc.dup2(0, 100)
os.close(os.open("/dev/null", os.O_RDONLY))
print(os.getpid())
"""


def test_inmap_matches_a_syscall_lists_numbers(in_map: Loaded) -> None:
    out: list[str] = []
    events = in_map.collect(lambda: out.append(subprocess.run([sys.executable, "-c", _DUPS], capture_output=True,
                                                              text=True, check=True).stdout))
    ids = [args[0]["size_arg"] for _, record, args in events if record.pid == int(out[0])]
    # dup and dup2 on x86_64 (tetra.compiler.lists.syscall_numbers); the interpreter dup2s at start too.
    # Its many other syscalls (openat, read, mmap...) match nothing.
    assert set(ids) == {"32", "33"}


@pytest.fixture(scope="module")
def override_with_return(workdir: Path, session: Session) -> Iterator[Loaded]:
    """Override on a hook that also has a return probe: the overridden call is decided at entry."""
    (workdir / "hidden-too").write_text("still here")
    text = _policy("override-with-return", f"""\
        kprobes:
        - call: "sys_openat"
          syscall: true
          return: true
          args:
          - index: 1
            type: "string"
          returnArg:
            index: 0
            type: "int"
          selectors:
          - matchArgs:
            - index: 1
              operator: "Equal"
              values: ["{workdir}/data"]
          - matchArgs:
            - index: 1
              operator: "Equal"
              values: ["{workdir}/hidden-too"]
            matchActions:
            - action: Override
              argError: -2
        """)
    yield from _load(session, text, KernelSupport.detect(), 15)


@pytest.mark.kprobe
@pytest.mark.override_return
def test_override_with_a_return_probe_denies_at_entry(override_with_return: Loaded, workdir: Path) -> None:
    def attempt() -> None:
        (workdir / "data").read_text()  # selector 0: reported at return, with the descriptor
        with pytest.raises(FileNotFoundError):
            (workdir / "hidden-too").read_text()  # selector 1: denied at entry

    events = override_with_return.collect(attempt)
    by_path = {args[0]["string_arg"]: record for _, record, args in events}
    denied, opened = by_path[f"{workdir}/hidden-too"], by_path[f"{workdir}/data"]
    assert denied.action == 4 and denied.selector == 1
    assert opened.selector == 0 and opened.ret >= 0


@pytest.fixture(scope="module")
def fexit(workdir: Path, session: Session) -> Iterator[Loaded]:
    """A return probe where only fentry exists: one fexit program with the arguments and the result."""
    text = _policy("fexit-hooks", f"""\
        kprobes:
        - call: "security_file_permission"
          syscall: false
          return: true
          args:
          - index: 0
            type: "file"
          - index: 1
            type: "int"
          returnArg:
            index: 0
            type: "int"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Equal"
              values: ["{workdir}/data"]
            matchReturnArgs:
            - index: 0
              operator: "Equal"
              values: ["0"]
        """)
    yield from _load(session, text, KernelSupport(kprobe=False, fentry=True, lsm=False), 16)


@pytest.mark.fentry
def test_fexit_for_return_probes_when_kprobes_are_missing(fexit: Loaded, workdir: Path) -> None:
    assert fexit.compiled.hooks[0].mechanism is Mechanism.FEXIT
    events = fexit.collect(lambda: (workdir / "data").read_text())
    found = [(r, a) for _, r, a in events if a[0] == {"file_arg": {"path": f"{workdir}/data"}}]
    assert found, events
    record, args = found[0]
    assert args[1] == {"int_arg": 4} and record.ret == 0  # MAY_READ, allowed
