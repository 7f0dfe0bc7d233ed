"""--enable-process-cred, --enable-process-ns, --enable-ancestors and --username-metadata:
credentials, capabilities, namespaces, ancestors and user names on the events of real processes.

Real processes: a setuid-root binary run by an unprivileged user (the kernel
raises its effective uid and capabilities at exec), a plain unprivileged one,
a process in new namespaces made by unshare(1), and a three-deep process tree
whose middle shell calls chdir(2) under a tracepoint policy.
"""

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.e2e.harness import Event, RunningAgent, of_pid
from tetra.decode.credentials import TETRAGON_CAPABILITIES

pytestmark = pytest.mark.usefixtures("root")
# The host's namespaces: this test's own (PID 1's may be unreadable in a sandbox; the agent then takes its own).
NOBODY = 65534
ALL_CAPS = set(TETRAGON_CAPABILITIES)


CHDIR_POLICY = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: chdir-ancestors
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_chdir
"""


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None) -> Iterator[RunningAgent]:
    workdir = tmp_path_factory.mktemp("agent")
    policy = workdir / "chdir.yaml"
    policy.write_text(CHDIR_POLICY)
    # Only this test's processes: with the context each event is kilobytes, and a busy machine
    # would rotate the export file past what the tests look for.
    only_mine = orjson.dumps({"pid_set": [os.getpid()]}).decode()
    running = RunningAgent(workdir, "--enable-pid-set-filter", "--export-allowlist", only_mine,
                           "--enable-process-cred", "--enable-process-ns",
                           "--enable-ancestors", "base,tracepoint", "--username-metadata", "unix",
                           "--tracing-policy", str(policy)).start()
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


def exec_of(agent: RunningAgent, pid: int) -> Event:
    events = agent.wait_for(lambda evs: bool(of_pid(evs, "process_exit", pid)))
    execs = of_pid(events, "process_exec", pid)
    assert execs, f"no exec of {pid}"
    return execs[-1]


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user can reach (pytest's tmp_path sits under a root-only one)."""
    path = Path(tempfile.mkdtemp(prefix="tetra-context-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def test_setuid_binary_run_by_an_unprivileged_user(agent: RunningAgent, public_dir: Path) -> None:
    suid = public_dir / "suid-id"
    shutil.copy("/usr/bin/id", suid)
    os.chown(suid, 0, 0)
    os.chmod(suid, 0o4755)
    proc = subprocess.Popen([str(suid), "-u"], user=NOBODY, group=NOBODY, extra_groups=[], stdout=subprocess.PIPE)
    out, _ = proc.communicate()
    assert out.strip() == b"0"  # the kernel honoured the setuid bit
    ex = exec_of(agent, proc.pid)
    assert ex["process"]["binary"] == str(suid)
    p = ex["process"]
    creds = p["process_credentials"]
    assert (creds["uid"], creds["gid"], creds["euid"], creds["suid"], creds["fsuid"]) == (NOBODY, NOBODY, 0, 0, 0)
    assert creds["egid"] == NOBODY  # setuid, not setgid
    # A setuid-root exec gives the full permitted and effective sets (no SECBIT_NOROOT).
    assert p["cap"]["permitted"] == p["cap"]["effective"]
    assert set(p["cap"]["effective"]) <= ALL_CAPS
    assert {"CAP_SYS_ADMIN", "DAC_OVERRIDE", "CAP_SETUID"} <= set(p["cap"]["effective"])
    assert creds["caps"] == p["cap"]
    assert creds["user_ns"] == {"level": 0, "uid": 0, "gid": 0, "ns": {"inum": os.stat("/proc/self/ns/user").st_ino,
                                                                        "is_host": True}}
    assert p["uid"] == NOBODY
    assert p["binary_properties"] == {"setuid": 0, "privileges_changed": ["PRIVILEGES_RAISED_EXEC_FILE_SETUID"]}


@pytest.mark.skipif(shutil.which("setcap") is None, reason="setcap (libcap2-bin) is not installed")
def test_file_capabilities_raise_privileges(agent: RunningAgent, public_dir: Path) -> None:
    ping = public_dir / "caps-true"
    shutil.copy("/bin/true", ping)
    subprocess.run(["setcap", "cap_net_raw+ep", str(ping)], check=True)
    proc = subprocess.Popen([str(ping)], user=NOBODY, group=NOBODY, extra_groups=[])
    proc.wait()
    p = exec_of(agent, proc.pid)["process"]
    assert p["cap"] == {"permitted": ["CAP_NET_RAW"], "effective": ["CAP_NET_RAW"]}
    assert p["binary_properties"] == {"privileges_changed": ["PRIVILEGES_RAISED_EXEC_FILE_CAP"]}


def test_fileless_exec_shows_the_unlinked_inode(agent: RunningAgent) -> None:
    """A memfd has no links: binary_properties.file says so, with its inode."""
    fd = os.memfd_create("tetra-fileless", 0)
    try:
        with open("/bin/true", "rb") as src:
            os.write(fd, src.read())
        proc = subprocess.Popen([f"/proc/self/fd/{fd}"], pass_fds=(fd,))
        proc.wait()
        p = exec_of(agent, proc.pid)["process"]
        assert p["binary_properties"] == {"file": {"inode": {"number": str(os.fstat(fd).st_ino), "links": 0}}}
    finally:
        os.close(fd)


def test_unprivileged_process_has_no_capabilities(agent: RunningAgent) -> None:
    proc = subprocess.Popen(["/bin/true"], user=NOBODY, group=NOBODY, extra_groups=[])
    proc.wait()
    p = exec_of(agent, proc.pid)["process"]
    assert "cap" not in p  # empty sets are left out, as Tetragon's protojson does
    creds = p["process_credentials"]
    assert {k: creds[k] for k in ("uid", "gid", "euid", "egid", "suid", "sgid", "fsuid", "fsgid")} == dict.fromkeys(
        ("uid", "gid", "euid", "egid", "suid", "sgid", "fsuid", "fsgid"), NOBODY)
    assert "caps" not in creds and "securebits" not in creds and "binary_properties" not in p
    assert p["user"] == {"name": "nobody"}  # --username-metadata unix: from /etc/passwd


def test_root_process_in_the_host_namespaces(agent: RunningAgent) -> None:
    proc = subprocess.Popen(["/bin/true"])
    proc.wait()
    p = exec_of(agent, proc.pid)["process"]
    assert set(p["cap"]["effective"]) >= {"CAP_SYS_ADMIN", "CAP_BPF", "DAC_OVERRIDE"}
    assert p["user"] == {"name": "root"}
    for name, ns in p["ns"].items():
        host = os.stat(f"/proc/self/ns/{name}").st_ino
        assert ns == {"inum": host, "is_host": True}, name
    assert p["in_init_tree"] is False  # the host's processes are no container's init tree


def test_process_in_new_namespaces(agent: RunningAgent) -> None:
    """unshare(1) makes new uts, ipc, net, mount, pid (for its children), cgroup and user
    namespaces and execs sleep in them: its ns are the kernel's, not the host's."""
    proc = subprocess.Popen(["unshare", "--uts", "--ipc", "--net", "--mount", "--cgroup", "--pid", "--fork",
                             "--user", "--map-root-user", "/bin/sleep", "0.5"])
    proc.wait()
    events = agent.wait_for(lambda evs: any(e["process"]["binary"] == "/usr/bin/sleep" and
                                            e.get("parent", {}).get("pid") == proc.pid
                                            for e in (ev.get("process_exec") for ev in evs) if e))
    sleep = next(e for e in (ev.get("process_exec") for ev in events)
                 if e and e["process"]["binary"] == "/usr/bin/sleep" and e.get("parent", {}).get("pid") == proc.pid)
    ns = sleep["process"]["ns"]
    host = {name: os.stat(f"/proc/self/ns/{name}").st_ino for name in ns}
    for name in ("uts", "ipc", "net", "mnt", "cgroup", "user", "pid"):
        assert ns[name]["inum"] != host[name] and "is_host" not in ns[name], name
    assert ns["time"] == {"inum": host["time"], "is_host": True}  # not unshared
    assert "user" not in sleep["process"]  # another mount namespace: the host's passwd does not name its users
    assert sleep["process"]["in_init_tree"] is True  # pid 1 of its pid namespace
    creds = sleep["process"]["process_credentials"]
    assert creds["uid"] == 0  # root inside its user namespace (mapped from root)
    assert creds["user_ns"]["level"] == 1 and creds["user_ns"]["uid"] == 0
    assert creds["user_ns"]["ns"] == ns["user"]


def test_three_deep_tree_lists_ancestors_on_exec_exit_and_policy_events(agent: RunningAgent) -> None:
    """python (this test) -> a: sh -> b: sh (chdir) -> c: sleep. c's events name b as parent
    and list a, then this test's process, ...; b's policy event lists this test's process first."""
    a = subprocess.Popen(["/bin/sh", "-c", 'sh -c "cd /; sleep 0.1; exit 3"; exit 0'])
    assert a.wait() == 0

    def is_c(e: Event | None) -> bool:
        return (e is not None and e["process"]["binary"] == "/usr/bin/sleep"
                and e.get("ancestors", [{}])[0].get("pid") == a.pid)

    events = agent.wait_for(lambda evs: any(is_c(ev.get("process_exit")) for ev in evs))
    a_exec = of_pid(events, "process_exec", a.pid)[-1]["process"]
    c_exec = next(e for e in (ev.get("process_exec") for ev in events) if is_c(e))
    b_pid = c_exec["parent"]["pid"]
    ancestors = c_exec["ancestors"]
    assert ancestors[0]["exec_id"] == a_exec["exec_id"]
    assert ancestors[1]["pid"] == os.getpid()
    assert all(p["exec_id"] == c["parent_exec_id"] for c, p in zip([c_exec["parent"], *ancestors], ancestors))
    assert ancestors[-1]["pid"] in (1, 2) or len(ancestors) >= 3  # up to init, as far as the cache knows
    assert all("process_credentials" in p and "ns" in p for p in ancestors)  # every process has its context
    c_exit = of_pid(events, "process_exit", c_exec["process"]["pid"])[-1]
    assert c_exit["ancestors"] == ancestors or [p["exec_id"] for p in c_exit["ancestors"]] == [
        p["exec_id"] for p in ancestors]  # refcnt may differ: a and b were still alive at the exec
    chdirs = [e["process_tracepoint"] for e in events
              if "process_tracepoint" in e and e["process_tracepoint"]["process"]["pid"] == b_pid]
    assert chdirs, "no chdir event of b"
    assert chdirs[0]["parent"]["exec_id"] == a_exec["exec_id"]
    assert chdirs[0]["ancestors"][0]["pid"] == os.getpid()
    assert chdirs[0]["process"]["process_credentials"]["uid"] == 0 and "ns" in chdirs[0]["process"]


def test_a_process_entering_a_pid_namespace_is_not_in_its_init_tree(agent: RunningAgent) -> None:
    """nsenter (as kubectl exec does) starts a process in a container's pid namespace whose parent
    lives outside: unlike the container's own processes, it is not in the init tree."""
    init = subprocess.Popen(["unshare", "--pid", "--fork", "/bin/sh", "-c", "sleep 1; /bin/true; sleep 3"])
    try:
        inner = ""  # the namespace's init: unshare's child
        deadline = time.monotonic() + 10
        while not inner and time.monotonic() < deadline:
            inner = subprocess.run(["pgrep", "-P", str(init.pid)], capture_output=True, text=True).stdout.strip()
            time.sleep(0.05)
        assert inner, "unshare started no child"
        entered = subprocess.Popen(["nsenter", "-t", inner, "--pid", "/bin/true"])
        assert entered.wait() == 0

        def trues_of(events: list[Event], parent: int) -> list[Event]:
            return [e["process_exec"]["process"] for e in events if "process_exec" in e
                    and e["process_exec"]["process"]["binary"] == "/usr/bin/true"
                    and e["process_exec"].get("parent", {}).get("pid") == parent]

        events = agent.wait_for(lambda evs: bool(trues_of(evs, entered.pid) and trues_of(evs, int(inner))),
                                timeout=20)
        assert trues_of(events, entered.pid)[0]["in_init_tree"] is False  # entered from the host
        assert trues_of(events, int(inner))[0]["in_init_tree"] is True  # started by the namespace's init
    finally:
        init.kill()
        init.wait()
