"""spec.loader: true: process_loader events for the shared libraries real processes load, with the
build id readelf shows; the loader sensor is attached only while such a policy is loaded."""

import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.e2e.harness import Event, RunningAgent, attachments, of_pid, tetra
from tests.unit.test_buildid import readelf_build_id

pytestmark = pytest.mark.usefixtures("root")
LIBZ = Path("/usr/lib/x86_64-linux-gnu/libz.so.1")
PYTHON = "/usr/bin/python3"  # dynamically linked: the loader maps its libraries
POLICY = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: loader
spec:
  loader: true
"""


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None) -> Iterator[RunningAgent]:
    if not LIBZ.exists():
        pytest.skip("needs libz.so.1")
    workdir = tmp_path_factory.mktemp("agent")
    policy = workdir / "loader.yaml"
    policy.write_text(POLICY)
    only_mine = orjson.dumps({"pid_set": [os.getpid()]}).decode()
    running = RunningAgent(workdir, "--enable-pid-set-filter", "--export-allowlist", only_mine,
                           "--tracing-policy", str(policy)).start()
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


def _loads(events: list[Event], pid: int) -> list[Event]:
    return of_pid(events, "process_loader", pid)


def test_dlopen_of_a_library_is_reported_with_its_build_id(agent: RunningAgent) -> None:
    proc = subprocess.run([PYTHON, "-c", "import ctypes, os; ctypes.CDLL('libz.so.1'); print(os.getpid())"],
                          check=True, capture_output=True)
    pid = int(proc.stdout)
    real = LIBZ.resolve()
    events = agent.wait_for(lambda evs: any(e["path"] == str(real) for e in _loads(evs, pid)))
    (libz,) = [e for e in _loads(events, pid) if e["path"] == str(real)]
    assert libz["process"]["pid"] == pid and libz["process"]["binary"] == os.path.realpath(PYTHON)
    assert base64.b64decode(libz["buildid"]) == readelf_build_id(real)
    # the dynamic loader's own mappings of the interpreter's libraries too, libc among them
    assert any("/libc.so" in e["path"] for e in _loads(events, pid))


def _mmap_hooks(agent: RunningAgent) -> set[str]:
    assert agent.proc is not None
    return {target for target in attachments(agent.proc.pid).values() if "mmap" in target}


def test_the_sensor_leaves_with_the_last_loader_policy(agent: RunningAgent) -> None:
    listed = tetra(agent, "tracingpolicy", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr.decode()
    (policy,) = [p for p in orjson.loads(listed.stdout)["policies"] if p["name"] == "loader"]
    assert {h["attach"] for h in policy["tetra_hooks"]} == {"syscalls:sys_enter_mmap", "syscalls:sys_exit_mmap"}
    assert len(_mmap_hooks(agent)) == 2
    done = tetra(agent, "tracingpolicy", "delete", "loader")
    assert done.returncode == 0, done.stderr.decode()
    assert _mmap_hooks(agent) == set()  # the syscall tracepoints left with the policy
    proc = subprocess.run([PYTHON, "-c", "import ctypes, os; ctypes.CDLL('libz.so.1'); print(os.getpid())"],
                          check=True, capture_output=True)
    pid = int(proc.stdout)
    events = agent.wait_for(lambda evs: bool(of_pid(evs, "process_exit", pid)))
    assert _loads(events, pid) == []
