"""--enable-process-cred and --enable-process-ns: credentials, capabilities and
namespaces on the process of every event, from the kernel at exec.

Real processes: a setuid-root binary run by an unprivileged user (the kernel
raises its effective uid and capabilities at exec), a plain unprivileged one,
and a process in new namespaces made by unshare(1).
"""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Event, RunningAgent, of_pid
from tetra.process.context import TETRAGON_CAPABILITIES

pytestmark = pytest.mark.usefixtures("root")
# The host's namespaces: this test's own (PID 1's may be unreadable in a sandbox; the agent then takes its own).
NOBODY = 65534
ALL_CAPS = set(TETRAGON_CAPABILITIES)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None) -> Iterator[RunningAgent]:
    running = RunningAgent(tmp_path_factory.mktemp("agent"), "--enable-process-cred", "--enable-process-ns").start()
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


def test_unprivileged_process_has_no_capabilities(agent: RunningAgent) -> None:
    proc = subprocess.Popen(["/bin/true"], user=NOBODY, group=NOBODY, extra_groups=[])
    proc.wait()
    p = exec_of(agent, proc.pid)["process"]
    assert "cap" not in p  # empty sets are left out, as Tetragon's protojson does
    creds = p["process_credentials"]
    assert {k: creds[k] for k in ("uid", "gid", "euid", "egid", "suid", "sgid", "fsuid", "fsgid")} == dict.fromkeys(
        ("uid", "gid", "euid", "egid", "suid", "sgid", "fsuid", "fsgid"), NOBODY)
    assert "caps" not in creds and "securebits" not in creds


def test_root_process_in_the_host_namespaces(agent: RunningAgent) -> None:
    proc = subprocess.Popen(["/bin/true"])
    proc.wait()
    p = exec_of(agent, proc.pid)["process"]
    assert set(p["cap"]["effective"]) >= {"CAP_SYS_ADMIN", "CAP_BPF", "DAC_OVERRIDE"}
    for name, ns in p["ns"].items():
        host = os.stat(f"/proc/self/ns/{name}").st_ino
        assert ns == {"inum": host, "is_host": True}, name


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
    creds = sleep["process"]["process_credentials"]
    assert creds["uid"] == 0  # root inside its user namespace (mapped from root)
    assert creds["user_ns"]["level"] == 1 and creds["user_ns"]["uid"] == 0
    assert creds["user_ns"]["ns"] == ns["user"]
