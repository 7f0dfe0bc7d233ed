"""An exec storm of 20,000 processes: every exec arrives, or its loss is counted."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import RunningAgent

DRIVER = Path(__file__).resolve().parents[2] / "benchmarks" / "drivers" / "exec_storm.c"
PROCESSES = 20_000

pytestmark = pytest.mark.usefixtures("root")


@pytest.fixture(scope="module")
def storm_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("driver") / "exec_storm"
    subprocess.run(["gcc", "-O2", "-o", str(out), str(DRIVER)], check=True)
    return out


@pytest.fixture
def agent(tmp_path: Path, root: None) -> Iterator[RunningAgent]:
    running = RunningAgent(tmp_path, "--export-file-max-size-mb", "4", "--export-file-max-backups", "20",
                           "--export-file-compress").start()
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


def test_storm_every_exec_arrives_or_is_counted(agent: RunningAgent, storm_binary: Path) -> None:
    driver = subprocess.Popen([str(storm_binary), str(PROCESSES)], stdout=subprocess.PIPE)
    out, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0
    assert int(out.split()[1]) == PROCESSES

    def storm(events: list[dict]) -> list[dict]:
        return [e["process_exec"] for e in events if "process_exec" in e
                and e["process_exec"].get("parent", {}).get("pid") == driver.pid]

    try:
        agent.wait_for(lambda ev: len(storm(ev)) >= PROCESSES, timeout=60)
    except AssertionError:
        pass  # some are missing: the kernel's count below must account for them
    summary = agent.stop()
    events = agent.events()
    execs = storm(events)
    lost = summary["kernel"]["exec"]["lost"]
    assert len(execs) + lost == PROCESSES
    assert lost == 0, f"{lost} exec records lost in the kernel (counted)"
    assert all(e["process"]["binary"] == os.path.realpath("/bin/true") for e in execs)  # the file that ran
    assert len({e["process"]["exec_id"] for e in execs}) == PROCESSES
    exits = {e["process_exit"]["process"]["exec_id"] for e in events if "process_exit" in e}
    assert {e["process"]["exec_id"] for e in execs} <= exits
    assert summary["pipeline"]["decode_errors"] == 0
    assert summary["kernel_sent"] == summary["received"]
    assert len(agent.files()) > 1, "the export should have rotated at 4 MB"
    assert all(path.suffix == ".gz" for path in agent.files()[:-1]), "rotated files are gzipped"
