"""--cgroup-rate on a real agent: an exec storm in one cgroup is throttled in the kernel and resumed.

Two cgroup v2 directories made (and removed) by the test: a shell in one runs
300 /bin/true; the other runs one marked process meanwhile. The storm's
cgroup gets one THROTTLE_START, fewer exec events than execs, every exec that
did not go out counted as throttled (status and metrics), and a THROTTLE_STOP
once it is quiet, in the JSON export and on a gRPC stream alike; the other
cgroup's process is exported as usual. Below the agent, the process sensor's
map is read and pruned as the agent does it.
"""

import os
import signal
import socket
import subprocess
import time
import traceback
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.e2e.harness import TETRA, Event, RunningAgent, tetra
from tetra.errors import KernelError
from tetra.kernel.btf import Btf
from tetra.kernel.mounts import cgroup2_mount
from tetra.kernel.offsets import resolve_offsets
from tetra.process.throttle import CgroupRate
from tetra.sensors.process import ProcessSensor

pytestmark = pytest.mark.usefixtures("root")

EXECS = 300
RATE = "20,1s"  # per CPU: a storm of 300 is far over it on any machine; a single exec far under


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def cgroups() -> Iterator[tuple[Path, Path]]:
    """Two fresh cgroups (storm, calm); on teardown what is left in them goes to the root and they go."""
    try:
        mount = Path(cgroup2_mount())
    except KernelError as err:
        pytest.skip(f"no cgroup v2 hierarchy: {err}")
    tag = uuid.uuid4().hex[:10]
    made = [mount / f"tetra-rate-storm-{tag}", mount / f"tetra-rate-calm-{tag}"]
    for path in made:
        path.mkdir()
    try:
        yield made[0], made[1]
    finally:
        for path in made:
            for pid in (path / "cgroup.procs").read_text().split():
                try:
                    (mount / "cgroup.procs").write_text(pid)
                except OSError:  # it exited meanwhile
                    pass
            os.rmdir(path)


def _in_cgroup(cgroup: Path, script: str) -> subprocess.CompletedProcess[bytes]:
    """``script`` run by a shell that first moves itself into ``cgroup``."""
    return subprocess.run(["/bin/sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && {script}'],
                          check=True, capture_output=True, timeout=120)


def _throttles(events: list[Event], cgroup: str) -> list[str]:
    return [e["process_throttle"]["type"] for e in events
            if e.get("process_throttle", {}).get("cgroup") == cgroup]


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith("tetra_cgroup_rate")}


def _subscribe(agent: RunningAgent, out: Path) -> subprocess.Popen[bytes]:
    """`tetra getevents` of the throttle events into ``out``, once the agent counts it as a subscriber."""
    with out.open("wb") as sink:
        client = subprocess.Popen([*TETRA, "getevents", "-o", "json", "-e", "PROCESS_THROTTLE",
                                   "--server-address", agent.address], stdin=subprocess.DEVNULL, stdout=sink)
    deadline = time.monotonic() + 30
    while not orjson.loads(tetra(agent, "status", "-o", "json", check=True).stdout).get("subscribers"):
        assert time.monotonic() < deadline and client.poll() is None, "getevents did not subscribe"
        time.sleep(0.2)
    return client


def test_storm_is_throttled_counted_and_resumed(tmp_path: Path, cgroups: tuple[Path, Path]) -> None:
    storm, calm = cgroups
    port = _free_port()
    agent = RunningAgent(tmp_path, "--cgroup-rate", RATE, "--metrics-server", f"127.0.0.1:{port}").start()
    client = None
    try:
        client = _subscribe(agent, tmp_path / "stream.json")
        tag = uuid.uuid4().hex[:8]
        _in_cgroup(storm, f"for i in $(seq {EXECS}); do /bin/true storm-{tag}; done")
        _in_cgroup(calm, f"/bin/echo calm-{tag}")  # while the storm's cgroup is throttled

        events = agent.wait_for(lambda ev: _throttles(ev, storm.name)[-1:] == ["THROTTLE_STOP"], timeout=30)
        kinds = _throttles(events, storm.name)
        assert kinds == ["THROTTLE_START", "THROTTLE_STOP"] * (len(kinds) // 2)  # a slow storm may resume between
        start = next(e for e in events if e.get("process_throttle", {}).get("cgroup") == storm.name)
        assert start["node_name"] and start["time"]
        assert not _throttles(events, calm.name)

        def execs(arguments: str) -> list[Event]:
            return [e for e in events if e.get("process_exec", {}).get("process", {}).get("arguments") == arguments]

        trues = execs(f"storm-{tag}")
        assert 0 < len(trues) < EXECS
        assert len(execs(f"calm-{tag}")) == 1

        status = orjson.loads(tetra(agent, "status", "-o", "json", check=True).stdout)
        dropped = int(status["losses"]["kernel_throttled"])
        assert dropped >= EXECS - len(trues)  # each exec not exported was counted (and clones beside them)
        deadline = time.monotonic() + 10  # the endpoint shows the last tick's snapshot
        while (metrics := _scrape(port)).get("tetra_cgroup_rate_throttled_events_total", 0) < dropped:
            assert time.monotonic() < deadline, metrics
            time.sleep(0.5)
        client.send_signal(signal.SIGINT)
        client.wait(20)
        streamed = [orjson.loads(line) for line in (tmp_path / "stream.json").read_bytes().splitlines()]
        assert _throttles(streamed, storm.name) == kinds  # the gRPC stream says what the export does
    finally:
        if client is not None and client.poll() is None:
            client.kill()
        summary = agent.stop()
    assert summary["kernel_throttled"] >= dropped
    assert summary["pipeline"]["events"]["process_throttle"] >= 2


def test_the_sensors_counts_per_cpu_and_forgetting_a_cgroup(cgroups: tuple[Path, Path]) -> None:
    """In a child process: bcc keeps a process's shared tables (tetra_execve, tetra_stats) registered
    after their module is gone, so a second process sensor in the test process would leave later
    policy modules' extern tables pointing at closed maps."""
    child = os.fork()
    if child == 0:
        code = 1
        try:
            _sensor_counts(*cgroups)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's assertion failed: its traceback is above"


def _sensor_counts(storm: Path, calm: Path) -> None:
    sensor = ProcessSensor(resolve_offsets(Btf.load()), cgroup_rate=CgroupRate(5, 10**9))
    sensor.load()
    try:
        _in_cgroup(storm, "for i in $(seq 50); do /bin/true; done")
        storm_id, calm_id = os.stat(storm).st_ino, os.stat(calm).st_ino  # a cgroup's id is its inode
        counts = sensor.cgroup_rate_counts()
        assert calm_id not in counts  # no event there yet
        slots = counts[storm_id]
        assert len(slots) >= (os.cpu_count() or 1)  # one per possible CPU
        dropped = sum(slot.dropped for slot in slots)
        assert 0 < dropped < 100  # of 50 clones and 50 execs, a few went out on each CPU
        assert any(slot.throttled for slot in slots)
        sensor.forget_cgroups([storm_id, storm_id + 10**9])  # one that is not there: nothing to do
        assert storm_id not in sensor.cgroup_rate_counts()
    finally:
        sensor.close()
