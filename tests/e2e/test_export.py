"""The exporters as the agent runs them: export filters, OTLP and Prometheus metrics;
the export file under SIGHUP, an outside rename or delete, logrotate, and a link.

One agent with a denylist, a redaction filter, a field filter, an OTLP
endpoint (a real LogsService in this process) and a metrics endpoint; real
processes; the JSON file, the OTLP records and the scraped metrics must agree.
"""

import gzip
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.harness import TETRA, RunningAgent, run, tetra
from tests.unit.test_otlp import Receiver, _serve

pytestmark = pytest.mark.usefixtures("root")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def otlp() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    server, port = _serve(receiver)
    yield receiver, f"127.0.0.1:{port}"
    server.stop(0)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None,
          otlp: tuple[Receiver, str]) -> Iterator[tuple[RunningAgent, int]]:
    port = _free_port()
    running = RunningAgent(
        tmp_path_factory.mktemp("export"),
        "--export-denylist", '{"binary_regex": ["^/usr/bin/printenv$"]}',
        "--redaction-filters", '{"redact": ["--password[= ](\\\\S+)"]}',
        "--field-filters", '{"fields": "process.cwd", "event_set": ["PROCESS_EXEC"], "action": "EXCLUDE"}',
        "--export-otlp-endpoint", otlp[1],
        "--metrics-server", f"127.0.0.1:{port}",
    ).start()
    yield running, port
    if running.proc and running.proc.poll() is None:
        running.stop()


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith(("tetra_", "tetragon_", "process_"))}


def test_filters_otlp_and_metrics_agree(agent: tuple[RunningAgent, int], otlp: tuple[Receiver, str]) -> None:
    running, _port = agent
    subprocess.run(["/usr/bin/printenv", "HOME"], check=True, capture_output=True)  # denied
    subprocess.run(["/bin/echo", "login", "--password=hunter2", "x"], check=True, capture_output=True)
    events = running.wait_for(lambda ev: any("login" in e.get("process_exec", {}).get("process", {})
                                             .get("arguments", "") for e in ev))
    echo = [e["process_exec"]["process"] for e in events
            if "login" in e.get("process_exec", {}).get("process", {}).get("arguments", "")][0]
    assert echo["arguments"] == "login --password=***** x"
    assert "cwd" not in echo  # excluded by the field filter
    assert not any(e.get("process_exec", {}).get("process", {}).get("binary") == "/usr/bin/printenv"
                   for e in events)

    summary = running.stop()
    lines = running.events()
    receiver, _ = otlp
    records = receiver.records()
    assert len(records) == len(lines)  # every exported event reached the collector once
    assert sorted(json.loads(r.body.string_value)["time"] for r in records) == sorted(e["time"] for e in lines)
    assert summary["pipeline"]["events"]["process_exec"] >= 2


def test_metrics_count_what_was_exported(tmp_path: Path, root: None) -> None:
    port = _free_port()
    running = RunningAgent(tmp_path, "--metrics-server", f"127.0.0.1:{port}",
                           "--export-denylist", '{"binary_regex": ["^/usr/bin/printenv$"]}').start()
    try:
        subprocess.run(["/usr/bin/printenv", "HOME"], check=True, capture_output=True)
        subprocess.run(["/usr/bin/true"], check=True)
        running.wait_for(lambda ev: any(e.get("process_exit", {}).get("process", {}).get("binary")
                                        == "/usr/bin/true" for e in ev))
        deadline = time.monotonic() + 10  # the endpoint shows the snapshot of the last tick
        while True:
            metrics = _scrape(port)
            if metrics.get('tetra_events_dropped_total{stage="export_filter"}', 0) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        running.stop()
    assert metrics['tetra_events_dropped_total{stage="export_filter"}'] >= 2  # printenv's exec and exit
    assert metrics['tetragon_bpf_missed_events_total{error="ENOSPC",msg_op="exec"}'] == 0
    assert metrics["tetragon_process_cache_size"] > 0
    assert metrics["tetra_event_handling_latency_seconds_count"] >= metrics['tetragon_events_total{type="PROCESS_EXIT"}']
    assert metrics['tetra_event_handling_latency_seconds_bucket{le="+Inf"}'] == \
        metrics["tetra_event_handling_latency_seconds_count"]
    assert metrics['tetragon_events_total{type="PROCESS_EXEC"}'] > 0
    assert metrics["process_resident_memory_bytes"] > 0 and metrics["process_cpu_seconds_total"] > 0  # the agent's


# -- the export file as the system around it treats it: links, SIGHUP, logrotate ------------------

EXAMPLE_LOGROTATE = Path(__file__).parents[2] / "examples" / "logrotate" / "tetra"


def _json_state(running: RunningAgent) -> dict[str, Any]:
    done = tetra(running, "status", "-o", "json")
    assert done.returncode == 0, done.stderr
    return {e["name"]: e for e in json.loads(done.stdout)["exporters"]}["json"]


def _marker_execs(lines: list[bytes], prefix: str) -> list[str]:
    """The arguments of the exec events of /usr/bin/true run with ``prefix...`` in these lines."""
    out = []
    for line in lines:
        process = json.loads(line).get("process_exec", {}).get("process", {})
        if process.get("binary") == "/usr/bin/true" and process.get("arguments", "").startswith(prefix):
            out.append(process["arguments"])
    return out


def _lines_of(paths: list[Path]) -> list[bytes]:
    lines: list[bytes] = []
    for path in paths:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        assert data == b"" or data.endswith(b"\n"), f"{path.name} ends inside a line"
        lines += data.splitlines()
    return lines


def test_an_export_file_that_is_a_link_is_refused_at_start(tmp_path: Path, root: None) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    victim.chmod(0o644)
    link = tmp_path / "events.log"
    link.symlink_to(victim)
    done = run([*TETRA, "agent", "-o", "none", "--server-address", "", "--export-filename", str(link)],
               timeout=60)
    stderr = done.stderr.decode().strip()
    assert done.returncode == 1 and "Traceback" not in stderr
    assert stderr == f"tetra: {link} is a symbolic link: the export file must be a regular file " \
                     "(links are not followed)"
    assert victim.read_bytes() == b"precious\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644


def test_sighup_reopens_and_a_moved_or_deleted_file_is_noticed(tmp_path: Path, root: None) -> None:
    pid_file = tmp_path / "run" / "tetra.pid"
    running = RunningAgent(tmp_path, "--pid-file", str(pid_file)).start()
    assert running.proc is not None
    try:
        assert int(pid_file.read_text()) == running.proc.pid
        subprocess.run(["/usr/bin/true", "hup-a"], check=True)
        running.wait_for(lambda ev: _marker_execs([orjson.dumps(e) for e in ev], "hup-a") != [])
        moved = tmp_path / "moved.log"
        running.export.rename(moved)
        os.kill(int(pid_file.read_text()), signal.SIGHUP)  # as logrotate's postrotate does
        subprocess.run(["/usr/bin/true", "hup-b"], check=True)
        running.wait_for(lambda ev: _marker_execs([orjson.dumps(e) for e in ev], "hup-b") != [])
        assert running.proc.poll() is None, "SIGHUP killed the agent"
        state = _json_state(running)
        assert state["state"] == "ok (reopened: SIGHUP)" and state["counters"]["reopens"] == 1
        assert _marker_execs(_lines_of([moved]), "hup-") == ["hup-a"]

        running.export.unlink()  # no signal: the agent's tick notices
        subprocess.run(["/usr/bin/true", "hup-c"], check=True)
        running.wait_for(lambda ev: _marker_execs([orjson.dumps(e) for e in ev], "hup-c") != [], timeout=5)
        state = _json_state(running)
        assert state["state"] == "ok (reopened: deleted)" and state["counters"]["reopens"] == 2
    finally:
        summary = running.stop()
    assert summary["export_write_errors"] == 0 and summary["export_lines_dropped"] == 0
    assert not pid_file.exists()


def test_logrotate_with_the_example_config(tmp_path: Path, root: None) -> None:
    """logrotate -f three times while processes run: each event line is in exactly one file."""
    if shutil.which("logrotate") is None:
        pytest.skip("logrotate is not installed (apt-get install logrotate)")
    pid_file = tmp_path / "run" / "tetra.pid"
    running = RunningAgent(tmp_path, "--pid-file", str(pid_file)).start()
    config = tmp_path / "logrotate.conf"
    config.write_text(EXAMPLE_LOGROTATE.read_text().replace("/var/log/tetra/tetra.log", str(running.export))
                      .replace("/run/tetra/tetra.pid", str(pid_file)))
    config.chmod(0o644)
    stop_load = threading.Event()
    launched: list[str] = []

    def load() -> None:
        while not stop_load.is_set():
            launched.append(f"rot-{len(launched)}")
            subprocess.run(["/usr/bin/true", launched[-1]], check=True)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        for _ in range(3):
            time.sleep(1.2)  # dateformat has seconds: one rotation per second at most
            done = run(["logrotate", "-f", "-s", str(tmp_path / "logrotate.state"), str(config)], timeout=60)
            assert done.returncode == 0, done.stderr
    finally:
        stop_load.set()
        loader.join()
    subprocess.run(["/usr/bin/true", "rot-last"], check=True)
    launched.append("rot-last")
    running.wait_for(lambda ev: _marker_execs([orjson.dumps(e) for e in ev], "rot-last") != [])
    assert running.proc is not None and running.proc.poll() is None, "logrotate's SIGHUP killed the agent"
    summary = running.stop()

    rotated = sorted(tmp_path.glob("events.log-*"))
    assert len(rotated) == 3 and sum(p.suffix == ".gz" for p in rotated) == 2  # delaycompress
    lines = _lines_of([*rotated, running.export])
    assert len(lines) == len(set(lines))  # no line twice
    assert all(_lines_of([p]) for p in rotated)  # every rotated file got events
    assert sorted(_marker_execs(lines, "rot-")) == sorted(launched)
    assert len(lines) == sum(summary["pipeline"]["events"].values())  # every event exported, once
    assert summary["export_write_errors"] == 0 and summary["export_lines_dropped"] == 0


def test_a_full_disk_keeps_status_answering_and_recovers(tmp_path: Path, root: None) -> None:
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        running = RunningAgent(mnt).start()
        try:
            running.wait_for(lambda ev: len(ev) > 0)  # the processes from /proc are written
            with open(mnt / "filler", "wb", buffering=0) as filler:
                try:
                    while True:
                        filler.write(b"\0" * 65536)
                except OSError:
                    pass
            for i in range(300):
                subprocess.run(["/usr/bin/true", f"full-{i}"], check=True)
            time.sleep(2)
            started = time.monotonic()
            state = _json_state(running)
            assert time.monotonic() - started < 5
            assert 0 < state["counters"]["write_errors"] < 30  # backing off, not retrying per event
            assert state["state"] == "failing: No space left on device"

            (mnt / "filler").unlink()
            subprocess.run(["/usr/bin/true", "full-after"], check=True)
            started = time.monotonic()
            events = running.wait_for(lambda ev: any(e.get("process_exec", {}).get("process", {})
                                                     .get("arguments") == "full-after" for e in ev), timeout=6)
            assert time.monotonic() - started < 5
            assert _json_state(running)["state"] == "ok"
        finally:
            summary = running.stop()
        assert summary["export_lines_dropped"] == 0  # 16 MiB in memory held them all
        args = [e["process_exec"]["process"].get("arguments") for e in events if "process_exec" in e]
        assert all(f"full-{i}" in args for i in range(300))
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
