"""The exporters as the agent runs them: export filters, OTLP and Prometheus metrics.

One agent with a denylist, a redaction filter, a field filter, an OTLP
endpoint (a real LogsService in this process) and a metrics endpoint; real
processes; the JSON file, the OTLP records and the scraped metrics must agree.
"""

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import RunningAgent
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
            for line in text.splitlines() if line.startswith("tetra_")}


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
    assert metrics['tetra_observer_ringbuf_events_lost_total{op="exec"}'] == 0
    assert metrics["tetra_process_cache_size"] > 0
    assert metrics["tetra_event_handling_latency_seconds_count"] >= metrics['tetra_events_total{type="process_exit"}']
    assert metrics['tetra_event_handling_latency_seconds_bucket{le="+Inf"}'] == \
        metrics["tetra_event_handling_latency_seconds_count"]
    assert metrics['tetra_events_total{type="process_exec"}'] > 0
