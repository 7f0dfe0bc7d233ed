"""The policy library (policies/) as shipped: loaded together, each one triggered for real.

One agent loads the whole directory with --tracing-policy-dir, exactly as a
user deploys it. Every policy then gets a real process that does what the
policy is about (opening /etc/shadow, setting uid 0, attaching with ptrace,
loading a BPF program with garbage attributes, ...), and the assertions are on
the exported events: policy name, hook, typed arguments, action. Where a
policy filters, a near miss (the same call that must not match) runs first
in the same or an earlier process, and the positive call after it: the agent
exports events in ring-buffer order, so once the positive event is there, a
near-miss event would be there too, and its absence is a real result.

Everything is done so that the CI machine is left as it was: files created
under /etc, /home or /dev/shm carry a random name and are removed, no kernel
module can load (this kernel has none, and the calls get invalid arguments),
the BPF program and the ptrace target are garbage and our own child, mounts
and namespaces are made in children and undone. The Sigkill policy is
enforced in a second agent on a copy of the file whose prefix is narrowed to
this run's directory, so nothing else on a shared machine can be killed.
"""

import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import TETRA, Event, RunningAgent

pytestmark = pytest.mark.usefixtures("root")

LIBRARY = Path(__file__).resolve().parents[2] / "policies"
POLICY_FILES = sorted(LIBRARY.glob("*.yaml"))
HEADER_SECTIONS = ("Purpose", "Catches", "Misses", "Noise", "Tuning", "Mechanism")

O_WRITE_MASK = 0x243  # O_WRONLY | O_RDWR | O_CREAT | O_TRUNC

# Every Python child starts with this: raw syscalls through libc.
PRELUDE = textwrap.dedent("""\
    import ctypes, errno, os, socket, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    L = ctypes.c_long
    def err():
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    """)


@dataclass
class Ran:
    pid: int
    returncode: int
    stdout: str
    stderr: str


def spawn(argv: list[str], check: bool = True) -> Ran:
    """Run a program to its end; its pid is what its events carry."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "LC_ALL": "C"})
    out, err = proc.communicate(timeout=60)
    ran = Ran(proc.pid, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
    if check:
        assert ran.returncode == 0, f"{argv} failed ({ran.returncode}): {ran.stderr}"
    return ran


def python(code: str, check: bool = True) -> Ran:
    return spawn([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], check=check)


def of_policy(events: list[Event], policy: str, kind: str = "process_kprobe") -> list[Event]:
    return [e[kind] for e in events if kind in e and e[kind].get("policy_name") == policy]


def wait_for(agent: RunningAgent, policy: str, match: Callable[[Event], bool],
             kind: str = "process_kprobe", count: int = 1) -> list[Event]:
    """Events of policy for which match holds, once there are at least count of them."""
    found = agent.wait_for(lambda ev: len([e for e in of_policy(ev, policy, kind) if match(e)]) >= count)
    return [e for e in of_policy(found, policy, kind) if match(e)]


def by_pid(pid: int) -> Callable[[Event], bool]:
    return lambda e: e["process"]["pid"] == pid


def arg(event: Event, label: str) -> object:
    """The value of the argument with this label (the one key besides 'label')."""
    for a in event["args"]:
        if a.get("label") == label:
            return next(v for k, v in a.items() if k != "label")
    raise KeyError(f"no argument {label!r} in {event['args']}")


def unique(prefix: str = "tetra-test-") -> str:
    return prefix + secrets.token_hex(6)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None) -> Iterator[RunningAgent]:
    running = RunningAgent(tmp_path_factory.mktemp("library-agent"),
                           "--tracing-policy-dir", str(LIBRARY)).start(240)
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory under /tmp, whatever pytest's --basetemp (exec-from-writable-dirs watches /tmp)."""
    path = Path(tempfile.mkdtemp(prefix="tetra-lib-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- the files themselves -------------------------------------------------------


def test_library_is_complete_and_documented() -> None:
    assert len(POLICY_FILES) >= 12
    for path in POLICY_FILES:
        text = path.read_text()
        header = text[:text.index("apiVersion:")]
        for section in HEADER_SECTIONS:
            assert re.search(rf"^# {section}\b", header, re.M), f"{path.name}: header lacks '{section}'"
        doc = yaml.safe_load(text)
        assert doc["metadata"]["name"] == path.stem, f"{path.name}: metadata.name differs from the file name"
    result = subprocess.run([*TETRA, "tracingpolicy", "validate", *map(str, POLICY_FILES)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in (result.stdout + result.stderr).lower(), result.stdout + result.stderr


def test_every_policy_loaded_on_tracepoints(agent: RunningAgent) -> None:
    loaded = {}
    for line in agent.stderr_lines:
        found = re.search(r"policy (\S+) loaded in [\d.]+s \([^)]*\): (.*)$", line)
        if found:
            loaded[found[1]] = found[2]
    assert set(loaded) == {p.stem for p in POLICY_FILES}, "\n".join(agent.stderr_lines[-40:])
    for name, hooks in loaded.items():
        mechanisms = set(re.findall(r"\((\w+)\)", hooks))
        assert mechanisms == {"tracepoint"}, f"{name}: {hooks}"


# --- one test per policy --------------------------------------------------------


def test_sensitive_file_read(agent: RunningAgent, scratch: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="tetra-test-", dir="/home"))
    try:
        (home / ".ssh").mkdir()
        key = home / ".ssh" / "id_ed25519"
        key.write_text("not a key\n")
        (home / ".ssh" / "id_ed25519.pub").write_text("ssh-ed25519 AAAA test\n")
        (scratch / ".ssh").mkdir()
        (scratch / ".ssh" / "id_rsa").write_text("not a key\n")
        # near misses: a public key, and a private key name outside /root and /home
        pub = spawn(["/usr/bin/cat", str(home / ".ssh" / "id_ed25519.pub")])
        outside = spawn(["/usr/bin/cat", str(scratch / ".ssh" / "id_rsa")])
        # hits: the shadow file (opened, nothing read), the private key, the legacy open(2) syscall
        shadow = spawn(["/usr/bin/head", "-c", "0", "/etc/shadow"], check=False)
        private = spawn(["/usr/bin/cat", str(key)])
        legacy = python("""
            fd = libc.syscall(L(2), b"/etc/gshadow", L(0))   # SYS_open, O_RDONLY
            if fd >= 0:
                os.close(fd)
            """)
        hosts = spawn(["/usr/bin/head", "-c", "0", "/etc/ssh/ssh_host_ed25519_key"], check=False)

        event = wait_for(agent, "sensitive-file-read", by_pid(shadow.pid))[0]
        assert event["function_name"] == "__x64_sys_openat"
        assert event["process"]["binary"] == "/usr/bin/head"
        assert event["args"][0] == {"int_arg": -100, "label": "dirfd"}  # AT_FDCWD
        assert event["args"][1] == {"string_arg": "/etc/shadow", "label": "path"}
        assert event["action"] == "KPROBE_ACTION_POST"
        assert event["message"] == "credential file opened"
        assert "credential-access" in event["tags"]

        event = wait_for(agent, "sensitive-file-read", by_pid(private.pid))[0]
        assert arg(event, "path") == str(key)

        event = wait_for(agent, "sensitive-file-read", by_pid(legacy.pid))[0]
        assert event["function_name"] == "__x64_sys_open"
        assert event["args"] == [{"string_arg": "/etc/gshadow", "label": "path"}, {"int_arg": 0, "label": "flags"}]

        event = wait_for(agent, "sensitive-file-read", by_pid(hosts.pid))[0]
        assert arg(event, "path") == "/etc/ssh/ssh_host_ed25519_key"

        events = of_policy(agent.events(), "sensitive-file-read")
        assert not [e for e in events if e["process"]["pid"] in (pub.pid, outside.pid)]
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_etc_write(agent: RunningAgent, scratch: Path) -> None:
    target = Path("/etc") / unique()
    try:
        reader = spawn(["/usr/bin/cat", "/etc/hostname"], check=False)  # read-only: no event
        elsewhere = spawn(["/usr/bin/sh", "-c", f"echo x > {scratch}/written"])  # not under /etc
        writer = spawn(["/usr/bin/sh", "-c", f"echo x > {target}"])
        mover = spawn(["/usr/bin/mv", str(target), f"{target}.moved"])

        event = wait_for(agent, "etc-write", by_pid(writer.pid))[0]
        assert event["function_name"] == "__x64_sys_openat"
        assert arg(event, "path") == str(target)
        flags = arg(event, "flags")
        assert isinstance(flags, int) and flags & O_WRITE_MASK == 0x241  # O_WRONLY|O_CREAT|O_TRUNC
        event = wait_for(agent, "etc-write", by_pid(mover.pid))[0]
        assert event["function_name"] in ("__x64_sys_renameat2", "__x64_sys_renameat", "__x64_sys_rename")
        assert arg(event, "oldname") == str(target)
        assert arg(event, "newname") == f"{target}.moved"

        events = of_policy(agent.events(), "etc-write")
        assert not [e for e in events if e["process"]["pid"] in (reader.pid, elsewhere.pid)]
    finally:
        for path in (target, Path(f"{target}.moved")):
            path.unlink(missing_ok=True)


def test_setuid_root(agent: RunningAgent) -> None:
    child = python("""
        os.setresgid(-1, 65534, -1)   # to a non-root group: not reported
        os.setresgid(-1, 0, -1)       # back to root: reported (effective)
        os.setuid(0)                  # reported
        """)
    found = wait_for(agent, "setuid-root", by_pid(child.pid), count=2)
    calls = [(e["function_name"], [a.get("int_arg") for a in e["args"]]) for e in found]
    assert calls == [("__x64_sys_setresgid", [-1, 0, -1]), ("__x64_sys_setuid", [0])]
    assert [a["label"] for a in found[0]["args"]] == ["real", "effective", "saved"]
    assert all(e["message"] == "user or group id set to root" for e in found)


def test_capability_changes(agent: RunningAgent) -> None:
    child = python("""
        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
        class Data(ctypes.Structure):
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                        ("inheritable", ctypes.c_uint32)]
        header, data = Header(0x20080522, 0), (Data * 2)()
        assert libc.capget(ctypes.byref(header), data) == 0, err()
        libc.prctl(15, b"tetra-test", 0, 0, 0)            # PR_SET_NAME: not reported
        libc.prctl(47, L(1), L(10), L(0), L(0))          # PR_CAP_AMBIENT IS_SET: not reported
        assert libc.capset(ctypes.byref(header), data) == 0, err()   # same sets again
        libc.prctl(47, L(2), L(10), L(0), L(0))          # PR_CAP_AMBIENT RAISE CAP_NET_BIND_SERVICE
        """)
    found = wait_for(agent, "capability-changes", by_pid(child.pid), count=2)
    assert [e["function_name"] for e in found] == ["__x64_sys_capset", "__x64_sys_prctl"]
    assert "args" not in found[0]  # no arguments: left out, as protojson does
    assert found[1]["args"] == [{"int_arg": 47, "label": "option"}, {"size_arg": "2", "label": "arg2"},
                                {"size_arg": "10", "label": "arg3"}]


def test_outbound_connect(agent: RunningAgent) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        child = python(f"""
            made = []
            def attempt(family, address):
                try:
                    s = socket.socket(family, socket.SOCK_STREAM)
                except OSError:
                    return
                made.append(address[0])
                s.setblocking(False)
                try:
                    s.connect(address)
                except OSError:
                    pass
                s.close()
            attempt(socket.AF_INET, ("127.0.0.1", {port}))     # loopback
            attempt(socket.AF_INET, ("10.255.255.1", 9))       # private
            attempt(socket.AF_INET, ("192.168.255.1", 9))      # private
            attempt(socket.AF_INET6, ("::1", 9))               # loopback
            attempt(socket.AF_INET6, ("::ffff:10.1.2.3", 9))   # IPv4-mapped private
            u = socket.socket(socket.AF_UNIX)
            try:
                u.connect("/nonexistent-tetra-socket")         # not an IP family
            except OSError:
                pass
            attempt(socket.AF_INET, ("192.0.2.1", 9))          # public (TEST-NET-1): reported
            attempt(socket.AF_INET6, ("2001:db8::1", 9))       # public v6 (documentation): reported
            print("2001:db8::1" in made)
            """)
    have_v6 = child.stdout.strip() == "True"  # this kernel may have IPv6 disabled
    found = wait_for(agent, "outbound-connect", by_pid(child.pid), count=2 if have_v6 else 1)
    assert found[0]["function_name"] == "__x64_sys_connect"
    assert arg(found[0], "address") == {"family": "AF_INET", "addr": "192.0.2.1", "port": 9}
    assert found[0]["args"][0]["label"] == "fd"
    if have_v6:
        address = arg(found[1], "address")
        assert isinstance(address, dict) and address["family"] == "AF_INET6" and address["port"] == 9
        assert ipaddress.ip_address(address["addr"]) == ipaddress.ip_address("2001:db8::1")
    assert len(found) == (2 if have_v6 else 1)  # the near misses before them stayed in the kernel


def test_network_listeners(agent: RunningAgent, scratch: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = python(f"""
        s = socket.socket(); s.bind(("127.0.0.1", 0)); s.close()        # any port: not reported
        u = socket.socket(socket.AF_UNIX); u.bind("{scratch}/sock")      # not an IP family
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", {port}))
        srv.listen(7)
        srv.setblocking(False)
        try:
            srv.accept()                                                  # EAGAIN: not reported
        except BlockingIOError:
            pass
        srv.setblocking(True)
        clients = [socket.create_connection(("127.0.0.1", {port})) for _ in range(2)]
        conns = [srv.accept()[0] for _ in range(2)]                       # the second is rate limited
        last = socket.socket(); last.listen(1)                            # posted after both accepts
        print(srv.fileno(), conns[0].fileno())
        """)
    srv_fd, conn_fd = map(int, child.stdout.split())
    found = wait_for(agent, "network-listeners", by_pid(child.pid), count=4)
    assert [e["function_name"] for e in found] == ["__x64_sys_bind", "__x64_sys_listen", "__x64_sys_accept4",
                                                   "__x64_sys_listen"]
    bind, listen, accept, _ = found  # one accept4 of two: the events are in order, so none is late
    assert bind["args"] == [{"int_arg": srv_fd, "label": "fd"},
                            {"sockaddr_arg": {"family": "AF_INET", "addr": "127.0.0.1", "port": port},
                             "label": "address"}]
    assert listen["args"] == [{"int_arg": srv_fd, "label": "fd"}, {"int_arg": 7, "label": "backlog"}]
    assert accept["args"] == [{"int_arg": srv_fd, "label": "fd"}]
    assert accept["return"] == {"int_arg": conn_fd}


def test_kernel_module_syscalls(agent: RunningAgent) -> None:
    child = python("""
        import json
        results = []
        results.append((libc.syscall(L(313), L(-1), b"", L(0)), err()))               # finit_module(-1)
        results.append((libc.syscall(L(175), None, L(0), b""), err()))                # init_module(NULL, 0)
        results.append((libc.syscall(L(176), b"tetra_no_such_module", L(0)), err()))  # delete_module
        print(json.dumps(results))
        """)
    # every call failed: no module support here, or invalid arguments on a kernel with it
    for ret, code in json.loads(child.stdout):
        assert ret == -1 and code in ("ENOSYS", "EBADF", "EINVAL", "ENOEXEC", "EFAULT", "ENOENT", "EPERM")
    found = wait_for(agent, "kernel-module-syscalls", by_pid(child.pid), kind="process_tracepoint", count=3)
    assert [e["args"] for e in found] == [[{"long_arg": str(n), "label": "syscall"}] for n in (313, 175, 176)]
    assert (found[0]["subsys"], found[0]["event"]) == ("raw_syscalls", "sys_enter")
    assert found[0]["message"] == "kernel module load or unload attempted"
    # the child made hundreds of other syscalls; none of them was posted
    assert len(found) == 3


def test_ptrace_injection(agent: RunningAgent) -> None:
    child = python("""
        import signal, time
        libc.ptrace.restype = ctypes.c_long
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        target = os.fork()
        if target == 0:
            while True:
                time.sleep(1)
        time.sleep(0.1)
        libc.ptrace(2, target, None, None)               # PTRACE_PEEKDATA (not attached): not reported
        assert libc.ptrace(16, target, None, None) == 0, err()   # PTRACE_ATTACH: reported
        os.waitpid(target, 0)
        libc.ptrace(17, target, None, None)              # PTRACE_DETACH: not reported
        os.kill(target, signal.SIGKILL)
        os.waitpid(target, 0)
        # process_vm_writev into our own memory: reported
        class IoVec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
        src, dst = ctypes.create_string_buffer(b"tetra", 8), ctypes.create_string_buffer(8)
        local, remote = IoVec(ctypes.addressof(src), 5), IoVec(ctypes.addressof(dst), 5)
        n = libc.syscall(L(311), L(os.getpid()), ctypes.byref(local), L(1), ctypes.byref(remote), L(1), L(0))
        assert n == 5 and dst.value == b"tetra", err()
        print(target)
        """)
    target = int(child.stdout)
    found = wait_for(agent, "ptrace-injection", by_pid(child.pid), count=2)
    assert [e["function_name"] for e in found] == ["__x64_sys_ptrace", "__x64_sys_process_vm_writev"]
    assert found[0]["args"] == [{"long_arg": "16", "label": "request"}, {"int_arg": target, "label": "pid"},
                                {"size_arg": "0", "label": "addr"}]
    assert found[1]["args"] == [{"int_arg": child.pid, "label": "pid"}]
    assert len(found) == 2  # PEEKDATA and DETACH stayed in the kernel


def test_namespace_changes(agent: RunningAgent, scratch: Path) -> None:
    point = scratch / "mnt"
    point.mkdir()
    source = unique()
    mount = spawn(["/usr/bin/mount", "-t", "tmpfs", source, str(point)])
    spawn(["/usr/bin/umount", str(point)])
    child = python(f"""
        CLONE_FS, CLONE_NEWUTS = 0x200, 0x04000000
        home_uts = os.open("/proc/self/ns/uts", os.O_RDONLY)
        assert libc.unshare(CLONE_FS) == 0, err()               # no namespace flag: not reported
        assert libc.unshare(CLONE_NEWUTS) == 0, err()           # reported
        assert libc.setns(home_uts, CLONE_NEWUTS) == 0, err()   # back home: reported
        r1 = libc.syscall(L(155), b"/nonexistent-tetra-new", b"/nonexistent-tetra-old")  # pivot_root
        r2 = libc.syscall(L(429), L(-100), b"/nonexistent-tetra-from", L(-100), b"/nonexistent-tetra-to", L(0))
        assert r1 == -1 and r2 == -1
        print(home_uts)
        """)
    uts_fd = int(child.stdout)

    event = wait_for(agent, "namespace-changes", by_pid(mount.pid))[0]
    assert event["function_name"] == "__x64_sys_mount"
    assert (arg(event, "source"), arg(event, "target"), arg(event, "fstype")) == (source, str(point), "tmpfs")

    found = wait_for(agent, "namespace-changes", by_pid(child.pid), count=4)
    assert [e["function_name"] for e in found] == ["__x64_sys_unshare", "__x64_sys_setns",
                                                   "__x64_sys_pivot_root", "__x64_sys_move_mount"]
    unshare, setns, pivot, move = found
    assert unshare["args"] == [{"size_arg": str(0x04000000), "label": "flags"}]
    assert setns["args"] == [{"int_arg": uts_fd, "label": "fd"}, {"int_arg": 0x04000000, "label": "nstype"}]
    assert (arg(pivot, "new_root"), arg(pivot, "put_old")) == ("/nonexistent-tetra-new", "/nonexistent-tetra-old")
    assert (arg(move, "from_dirfd"), arg(move, "to_path")) == (-100, "/nonexistent-tetra-to")
    assert len(found) == 4  # unshare(CLONE_FS) stayed in the kernel


def test_bpf_program_load(agent: RunningAgent) -> None:
    child = python("""
        attr = ctypes.create_string_buffer(120)      # all zeros: no valid map or program
        results = [libc.syscall(L(321), L(0), attr, L(120)),   # BPF_MAP_CREATE: not reported
                   libc.syscall(L(321), L(5), attr, L(120)),   # BPF_PROG_LOAD: reported
                   libc.syscall(L(321), L(5), attr, L(120)),   # the same again: rate limited
                   libc.syscall(L(321), L(5), attr, L(112))]   # other arguments: reported
        assert results == [-1, -1, -1, -1], results
        print(err())
        """)
    assert child.stdout.strip() in ("EINVAL", "E2BIG", "EPERM")  # nothing was loaded
    found = wait_for(agent, "bpf-program-load", by_pid(child.pid), count=2)
    assert found[0]["function_name"] == "__x64_sys_bpf"
    assert [e["args"] for e in found] == [
        [{"int_arg": 5, "label": "cmd"}, {"uint_arg": size, "label": "attr_size"}] for size in (120, 112)]


def test_privileged_container_exec(agent: RunningAgent) -> None:
    host = spawn(["/usr/bin/true"])  # host namespaces: not reported
    # setpriv keeps its capabilities across the uid change (PR_SET_KEEPCAPS) and they are
    # dropped by the exec of sh as nobody: setpriv's exec of sh is reported, sh's exec is not
    dropped = spawn(["/usr/bin/unshare", "-m", "/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                     "--clear-groups", "/usr/bin/sh", "-c", "exec /usr/bin/true"])
    privileged = spawn(["/usr/bin/unshare", "-m", "/usr/bin/true"])

    event = wait_for(agent, "privileged-container-exec", by_pid(privileged.pid))[0]
    assert event["function_name"] == "__x64_sys_execve"
    assert event["args"] == [{"string_arg": "/usr/bin/true", "label": "filename"}]
    assert event["process"]["binary"] == "/usr/bin/unshare"  # the caller, before the new image

    events = of_policy(agent.events(), "privileged-container-exec")
    assert not [e for e in events if e["process"]["pid"] == host.pid]
    from_dropped = [arg(e, "filename") for e in events if e["process"]["pid"] == dropped.pid]
    assert from_dropped == ["/usr/bin/setpriv", "/usr/bin/sh"]  # not /usr/bin/true: nobody has no caps


def test_exec_from_writable_dirs(agent: RunningAgent, scratch: Path) -> None:
    copy = scratch / "tetra-true"
    shutil.copy("/usr/bin/true", copy)
    usual = spawn(["/usr/bin/true"])
    dropped = spawn([str(copy)])
    event = wait_for(agent, "exec-from-writable-dirs", by_pid(dropped.pid))[0]
    assert event["function_name"] == "__x64_sys_execve"
    assert event["args"] == [{"string_arg": str(copy), "label": "filename"}]
    assert not [e for e in of_policy(agent.events(), "exec-from-writable-dirs") if e["process"]["pid"] == usual.pid]


def _shm_script(directory: Path, marker: Path) -> Path:
    script = directory / "payload.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    return script


def test_kill_exec_dev_shm_monitoring(agent: RunningAgent, scratch: Path) -> None:
    directory = Path(tempfile.mkdtemp(prefix="tetra-test-", dir="/dev/shm"))
    try:
        marker = scratch / "ran"
        ran = spawn([str(_shm_script(directory, marker))])
        assert marker.exists()  # shipped in monitoring mode: reported, not killed
        event = wait_for(agent, "kill-exec-dev-shm", by_pid(ran.pid))[0]
        assert event["action"] == "KPROBE_ACTION_SIGKILL"
        assert event["args"] == [{"string_arg": str(directory / "payload.sh"), "label": "filename"}]
        also = wait_for(agent, "exec-from-writable-dirs", by_pid(ran.pid))[0]
        assert also["action"] == "KPROBE_ACTION_POST"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_kill_exec_dev_shm_enforced(agent: RunningAgent, scratch: Path,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    """The shipped file with the two edits its header describes: enforcement, and (for a
    shared CI machine) a prefix narrowed to this run's directory."""
    directory = Path(tempfile.mkdtemp(prefix="tetra-test-", dir="/dev/shm"))
    shipped = (LIBRARY / "kill-exec-dev-shm.yaml").read_text()
    enforced = shipped.replace('value: "monitor"', 'value: "enforce"')
    enforced = enforced.replace('values: ["/dev/shm/"]', f'values: ["{directory}/"]')
    changed = [(a, b) for a, b in zip(shipped.splitlines(), enforced.splitlines()) if a != b]
    assert len(changed) == 3, changed  # the mode and the prefix of both hooks, nothing else
    policy_dir = tmp_path_factory.mktemp("enforced-policy")
    (policy_dir / "kill-exec-dev-shm.yaml").write_text(enforced)
    enforcer = RunningAgent(tmp_path_factory.mktemp("enforcer"), "--tracing-policy-dir", str(policy_dir)).start(120)
    try:
        marker = scratch / "ran"
        script = _shm_script(directory, marker)
        fine = spawn(["/usr/bin/true"])
        killed = spawn([str(script)], check=False)
        assert killed.returncode == -9
        assert not marker.exists()  # not one line of the script ran
        assert fine.returncode == 0
        event = wait_for(enforcer, "kill-exec-dev-shm", by_pid(killed.pid))[0]
        assert event["action"] == "KPROBE_ACTION_SIGKILL"
        assert arg(event, "filename") == str(script)
        exits = [e["process_exit"] for e in enforcer.wait_for(
            lambda ev: any(e.get("process_exit", {}).get("process", {}).get("pid") == killed.pid for e in ev))
            if e.get("process_exit", {}).get("process", {}).get("pid") == killed.pid]
        assert exits[0]["signal"] == "SIGKILL"
        summary = enforcer.stop()
        assert [(p["name"], p["state"]) for p in summary["policies"]] == [("kill-exec-dev-shm", "enabled")]
        assert summary["policies"][0]["mode"].startswith("enforce")
    finally:
        if enforcer.proc and enforcer.proc.poll() is None:
            enforcer.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_fileless_exec(agent: RunningAgent) -> None:
    plain = python("""
        argv = (ctypes.c_char_p * 2)(b"true", None)
        envp = (ctypes.c_char_p * 1)(None)
        libc.syscall(L(322), L(-100), b"/usr/bin/true", argv, envp, L(0))   # execveat by path: not reported
        """)
    memfd = python("""
        for _ in range(2):                                   # the second is rate limited
            fd = os.memfd_create("tetra-fileless", 0)
        os.write(fd, open("/usr/bin/true", "rb").read())
        os.execve(fd, ["true"], {})                          # fexecve: execveat(fd, "", AT_EMPTY_PATH)
        """)
    via_proc = python("""
        if len(sys.argv) == 1:
            os.execv("/proc/self/exe", [sys.executable, "-c", sys.orig_argv[2], "again"])   # not reported
        fd = os.memfd_create("tetra-procfd", 0)
        os.write(fd, open("/usr/bin/true", "rb").read())
        os.execv(f"/proc/self/fd/{fd}", ["true"])            # reported
        """)

    found = wait_for(agent, "fileless-exec", by_pid(memfd.pid), count=2)
    assert [e["function_name"] for e in found] == ["__x64_sys_memfd_create", "__x64_sys_execveat"]
    assert found[0]["args"] == [{"string_arg": "tetra-fileless", "label": "name"}, {"uint_arg": 0, "label": "flags"}]
    assert arg(found[1], "flags") == 0x1000 and arg(found[1], "filename") == ""
    assert isinstance(arg(found[1], "fd"), int) and arg(found[1], "fd") >= 3

    found = wait_for(agent, "fileless-exec", lambda e: e["process"]["pid"] == via_proc.pid
                     and e["function_name"] == "__x64_sys_execve")
    assert re.fullmatch(r"/proc/self/fd/\d+", str(arg(found[0], "filename")))

    events = of_policy(agent.events(), "fileless-exec")
    assert not [e for e in events if e["process"]["pid"] == plain.pid]
    assert len([e for e in events if e["process"]["pid"] == memfd.pid]) == 2  # one memfd_create of two
    assert [e["function_name"] for e in events if e["process"]["pid"] == via_proc.pid] == \
        ["__x64_sys_memfd_create", "__x64_sys_execve"]  # the /proc/self/exe re-exec was not reported


def test_proc_mem_write(agent: RunningAgent) -> None:
    child = python("""
        os.close(os.open("/proc/self/mem", os.O_RDONLY))   # read: not reported
        os.close(os.open("/proc/self/mem", os.O_RDWR))     # reported
        """)
    found = wait_for(agent, "proc-mem-write", by_pid(child.pid))
    assert len(found) == 1
    assert found[0]["function_name"] == "__x64_sys_openat"
    assert arg(found[0], "path") == "/proc/self/mem"
    flags = arg(found[0], "flags")
    assert isinstance(flags, int) and flags & 3 == os.O_RDWR


def test_persistence_writes(agent: RunningAgent, scratch: Path) -> None:
    keys = scratch / "home" / ".ssh" / "authorized_keys"
    keys.parent.mkdir(parents=True)
    keys.write_text("")
    cron = Path("/etc") / ("cron." + unique())  # matches the /etc/cron prefix; cron reads no such file
    try:
        reader = spawn(["/usr/bin/cat", str(keys)])  # read: not reported
        appender = spawn(["/usr/bin/sh", "-c", f"echo 'ssh-ed25519 AAAA tetra-test' >> {keys}"])
        cron_writer = spawn(["/usr/bin/sh", "-c", f"echo '# tetra test' > {cron}"])

        event = wait_for(agent, "persistence-writes", by_pid(appender.pid))[0]
        assert arg(event, "path") == str(keys)
        flags = arg(event, "flags")
        assert isinstance(flags, int) and flags & os.O_APPEND and flags & os.O_WRONLY
        event = wait_for(agent, "persistence-writes", by_pid(cron_writer.pid))[0]
        assert arg(event, "path") == str(cron)
        assert "persistence" in event["tags"]
        assert not [e for e in of_policy(agent.events(), "persistence-writes") if e["process"]["pid"] == reader.pid]
    finally:
        cron.unlink(missing_ok=True)


def test_suid_sgid_chmod(agent: RunningAgent, scratch: Path) -> None:
    target = scratch / "backdoor"
    shutil.copy("/usr/bin/true", target)
    plain = spawn(["/usr/bin/chmod", "0755", str(target)])  # no special bits: not reported
    suid = spawn(["/usr/bin/chmod", "u+s", str(target)])
    child = python(f"""
        os.chmod("{target}", 0o2755)            # chmod(2): setgid
        fd = os.open("{target}", os.O_RDONLY)
        os.fchmod(fd, 0o4755)                   # fchmod(2): setuid, path from the descriptor
        os.chmod("{target}", 0o755)             # clearing the bits: not reported
        """)

    event = wait_for(agent, "suid-sgid-chmod", by_pid(suid.pid))[0]
    assert event["function_name"] in ("__x64_sys_fchmodat", "__x64_sys_fchmodat2")
    assert arg(event, "path") == str(target)
    mode = arg(event, "mode")
    assert isinstance(mode, int) and mode & 0o4000

    found = wait_for(agent, "suid-sgid-chmod", by_pid(child.pid), count=2)
    assert [(e["function_name"], arg(e, "mode")) for e in found] == \
        [("__x64_sys_chmod", 0o2755), ("__x64_sys_fchmod", 0o4755)]
    assert arg(found[0], "path") == str(target)
    assert arg(found[1], "file") == {"path": str(target)}
    events = of_policy(agent.events(), "suid-sgid-chmod")
    assert not [e for e in events if e["process"]["pid"] == plain.pid]
    assert len([e for e in events if e["process"]["pid"] == child.pid]) == 2


def test_summary_every_policy_loaded_and_counted(agent: RunningAgent) -> None:
    summary = agent.stop()
    policies = {p["name"]: p for p in summary["policies"]}
    assert set(policies) == {p.stem for p in POLICY_FILES}
    not_loaded = {name: p.get("error") for name, p in policies.items() if p["state"] != "enabled"}
    assert not not_loaded
    assert policies["kill-exec-dev-shm"]["mode"].startswith("monitor")
    assert all(p["mode"].startswith("enforce") for name, p in policies.items() if name != "kill-exec-dev-shm")
    assert summary["kernel_lost"] == 0
    events = agent.events()
    for name, policy in policies.items():
        kind = "process_tracepoint" if name == "kernel-module-syscalls" else "process_kprobe"
        exported = of_policy(events, name, kind)
        assert sum(hook["posted"] for hook in policy["hooks"]) >= 1, name  # triggered by its test
        for hook in policy["hooks"]:
            assert hook["mechanism"] == "tracepoint", (name, hook)
            assert hook["seen"] >= hook["posted"], (name, hook)
            mine = exported if kind == "process_tracepoint" else \
                [e for e in exported if e["function_name"] == hook["hook"]]
            assert len(mine) == hook["posted"], (name, hook)  # every posted event was exported
