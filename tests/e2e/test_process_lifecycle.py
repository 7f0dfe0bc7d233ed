"""The agent as a user runs it: real processes in, Tetragon JSON lines out.

One agent serves the module; every test runs its own workload with a unique
marker and waits for its events in the export file.
"""

import base64
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Event, RunningAgent, of_pid, run

pytestmark = pytest.mark.usefixtures("root")


@pytest.fixture(scope="module")
def early_sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process that exists before the agent starts: it must come from /proc."""
    proc = subprocess.Popen(["/bin/sleep", f"300.{os.getpid()}"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None,
          early_sleeper: subprocess.Popen[bytes]) -> Iterator[RunningAgent]:
    running = RunningAgent(tmp_path_factory.mktemp("agent")).start()
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


def marker() -> str:
    return f"tetra-test-{uuid.uuid4().hex[:12]}"


def test_exec_and_exit_of_a_process(agent: RunningAgent, tmp_path: Path) -> None:
    token = marker()
    os.chmod(tmp_path, 0o755)
    proc = subprocess.Popen(["/bin/sh", "-c", "exit 7", token], cwd=tmp_path, user=65534)
    assert proc.wait() == 7
    events = agent.wait_for(lambda ev: len(of_pid(ev, "process_exit", proc.pid)) >= 1)
    execs = [e for e in of_pid(events, "process_exec", proc.pid) if token in e["process"].get("arguments", "")]
    exits = of_pid(events, "process_exit", proc.pid)
    assert len(execs) == 1 and len(exits) == 1
    p = execs[0]["process"]
    assert p["binary"] == os.path.realpath("/bin/sh")  # the file that runs, symlinks resolved
    assert p["arguments"] == f'-c "exit 7" {token}'
    assert p["cwd"] == str(tmp_path)
    assert p["uid"] == 65534
    assert p["pid"] == p["tid"] == proc.pid
    assert "execve" in p["flags"].split() and "clone" in p["flags"].split()
    node, ktime, pid = base64.b64decode(p["exec_id"]).decode().rsplit(":", 2)
    assert int(pid) == proc.pid and int(ktime) > 0 and node
    assert exits[0]["process"]["exec_id"] == p["exec_id"]
    assert exits[0]["status"] == 7 and "signal" not in exits[0]


def test_parent_exec_id_resolves_to_the_parent(agent: RunningAgent) -> None:
    token = marker()
    proc = subprocess.Popen(["/bin/sh", "-c", "/bin/true parent-check", token])
    proc.wait()
    events = agent.wait_for(lambda ev: len(of_pid(ev, "process_exit", proc.pid)) >= 1)
    shell = of_pid(events, "process_exec", proc.pid)[0]
    # Our own (pytest) process predates the agent: it came from /proc.
    me = [e for e in of_pid(events, "process_exec", os.getpid())]
    assert me and "procFS" in me[0]["process"]["flags"]
    assert shell["process"]["parent_exec_id"] == me[-1]["process"]["exec_id"]
    assert shell["parent"]["exec_id"] == me[-1]["process"]["exec_id"]
    true_exec = [e["process_exec"] for e in events if "process_exec" in e
                 and e["process_exec"]["process"].get("arguments") == "parent-check"
                 and e["process_exec"]["process"]["parent_exec_id"] == shell["process"]["exec_id"]]
    assert len(true_exec) == 1
    assert true_exec[0]["parent"]["binary"] == os.path.realpath("/bin/sh")


def test_killed_process_reports_its_signal(agent: RunningAgent) -> None:
    proc = subprocess.Popen(["/bin/sleep", f"30.{uuid.uuid4().int % 10**6}"])
    agent.wait_for(lambda ev: len(of_pid(ev, "process_exec", proc.pid)) >= 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    events = agent.wait_for(lambda ev: len(of_pid(ev, "process_exit", proc.pid)) >= 1)
    exit_ = of_pid(events, "process_exit", proc.pid)[0]
    assert exit_["signal"] == "SIGKILL"
    assert "status" not in exit_


def test_preexisting_process_comes_from_procfs(agent: RunningAgent,
                                               early_sleeper: subprocess.Popen[bytes]) -> None:
    events = agent.wait_for(lambda ev: len(of_pid(ev, "process_exec", early_sleeper.pid)) >= 1)
    p = of_pid(events, "process_exec", early_sleeper.pid)[0]["process"]
    assert "procFS" in p["flags"].split()
    assert p["binary"] == "/usr/bin/sleep"
    assert p["arguments"] == f"300.{os.getpid()}"


def test_500_arguments_and_non_utf8_bytes(agent: RunningAgent) -> None:
    token = marker()
    argv: list[str | bytes] = ["/bin/true", token, *[f"a{i}" for i in range(498)], b"caf\xc3\xa9\xff"]
    proc = subprocess.Popen(argv)
    proc.wait()
    events = agent.wait_for(lambda ev: len(of_pid(ev, "process_exit", proc.pid)) >= 1)
    p = of_pid(events, "process_exec", proc.pid)[0]["process"]
    args = p["arguments"].split(" ")
    assert len(args) == 500
    assert args[0] == token and args[498] == "a497"
    assert args[499] == "café\\xff"
    assert "truncArgs" not in p["flags"]


def test_argv_beyond_the_limit_is_cut_and_flagged(agent: RunningAgent) -> None:
    token = marker()
    proc = subprocess.Popen(["/bin/true", token, *["x" * 1000] * 40])  # 40 kB of arguments
    proc.wait()
    events = agent.wait_for(lambda ev: len(of_pid(ev, "process_exit", proc.pid)) >= 1)
    p = of_pid(events, "process_exec", proc.pid)[0]["process"]
    assert "truncArgs" in p["flags"].split()
    assert p["arguments"].startswith(token)
    assert 15_000 < len(p["arguments"]) <= 16_384


def test_relative_exec_and_deep_cwd(agent: RunningAgent, tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*[f"d{i}" for i in range(12)])
    deep.mkdir(parents=True)
    program = deep / "run"
    shutil.copy2("/usr/bin/true", program)
    script = deep / "run.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    for argv in (["./run", "program"], ["./run.sh", "script"]):
        assert run(argv, cwd=deep).returncode == 0
    events = agent.wait_for(lambda ev: len([e for e in ev if "process_exec" in e
                                            and e["process_exec"]["process"].get("cwd") == str(deep)]) >= 2)
    execs = {p["arguments"].split()[-1]: p for p in (e["process_exec"]["process"] for e in events
                                                     if "process_exec" in e) if p.get("cwd") == str(deep)}
    assert execs["program"]["binary"] == str(program)
    # A script's binary is its interpreter (the file the kernel loaded), the script an argument.
    assert execs["script"]["binary"] == os.path.realpath("/bin/sh")
    assert execs["script"]["arguments"] == "./run.sh script"


def test_events_carry_node_and_time(agent: RunningAgent) -> None:
    events: list[Event] = agent.wait_for(lambda ev: len(ev) > 0)
    e = events[-1]
    assert e["node_name"]
    assert e["time"].endswith("Z") and "T" in e["time"]
