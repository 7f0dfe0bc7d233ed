"""--enable-process-environment-variables: the environment of real processes on their events,
filtered by --filter-environment-variables and masked by --redaction-filters; absent without it.

Real processes exec'd with known variables; a process that predates the agent
shows its environment from /proc; an environment longer than the kernel's bound
is cut and flagged.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.e2e.harness import Event, RunningAgent, of_pid
from tetra.wire.constants import ENV_MAX

pytestmark = pytest.mark.usefixtures("root")
REDACT = orjson.dumps({"redact": ["^TETRA_TEST_SECRET=(.*)$"]}).decode()
SHOWN = "TETRA_TEST_PLAIN,TETRA_TEST_SECRET,TETRA_TEST_EARLY,TETRA_TEST_LAST"


def _only_mine() -> str:
    """Only this test's processes: with environments each event is kilobytes."""
    return orjson.dumps({"pid_set": [os.getpid()]}).decode()


def _exec_of(agent: RunningAgent, pid: int) -> Event:
    events = agent.wait_for(lambda evs: bool(of_pid(evs, "process_exit", pid)))
    execs = of_pid(events, "process_exec", pid)
    assert execs, f"no exec of {pid}"
    return execs[-1]


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": "/root", **extra}


@pytest.fixture(scope="module")
def early() -> Iterator[subprocess.Popen[bytes]]:
    """A process started before the agent: the agent reads it from /proc."""
    proc = subprocess.Popen(["/bin/sleep", "60"], env=_env(TETRA_TEST_EARLY="from-proc"))
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None,
          early: subprocess.Popen[bytes]) -> Iterator[RunningAgent]:
    running = RunningAgent(tmp_path_factory.mktemp("agent"), "--enable-pid-set-filter",
                           "--export-allowlist", _only_mine(), "--redaction-filters", REDACT,
                           "--enable-process-environment-variables",
                           "--filter-environment-variables", SHOWN).start()
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


def test_exec_shows_the_listed_variables_with_secrets_masked(agent: RunningAgent) -> None:
    proc = subprocess.Popen(["/bin/true"], env=_env(TETRA_TEST_PLAIN="hello world", TETRA_TEST_SECRET="hunter2"))
    proc.wait()
    process = _exec_of(agent, proc.pid)["process"]
    assert process["environment_variables"] == [
        {"Key": "TETRA_TEST_PLAIN", "Value": "hello world"}, {"Key": "TETRA_TEST_SECRET", "Value": "*****"}]
    assert "truncEnv" not in process["flags"]


def test_a_process_from_proc_shows_its_environment(agent: RunningAgent, early: subprocess.Popen[bytes]) -> None:
    seeded = [e for e in agent.wait_for(lambda evs: bool(of_pid(evs, "process_exec", early.pid)))
              if "process_exec" in e and e["process_exec"]["process"]["pid"] == early.pid]
    process = seeded[0]["process_exec"]["process"]
    assert "procFS" in process["flags"]
    assert process["environment_variables"] == [{"Key": "TETRA_TEST_EARLY", "Value": "from-proc"}]


def test_environment_past_the_bound_is_cut_and_flagged(agent: RunningAgent) -> None:
    big = "x" * ENV_MAX
    proc = subprocess.Popen(["/bin/true"], env=_env(TETRA_TEST_PLAIN="first", BIG=big, TETRA_TEST_LAST="lost"))
    proc.wait()
    process = _exec_of(agent, proc.pid)["process"]
    assert process["environment_variables"] == [{"Key": "TETRA_TEST_PLAIN", "Value": "first"}]
    assert "truncEnv" in process["flags"].split()


def test_without_the_flag_there_is_no_environment(tmp_path: Path, root: None) -> None:
    running = RunningAgent(tmp_path, "--enable-pid-set-filter", "--export-allowlist", _only_mine()).start()
    try:
        proc = subprocess.Popen(["/bin/true"], env=_env(TETRA_TEST_PLAIN="hello"))
        proc.wait()
        process = _exec_of(running, proc.pid)["process"]
        assert "environment_variables" not in process
        assert process["flags"] == "execve clone"
    finally:
        running.stop()
