"""The agent as the DaemonSet runs it: flags from a --config-dir (a ConfigMap's layout), GET /healthz
for the kubelet's probes, JSON log lines for the node's log collector, cluster_name on events."""

import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import orjson

from tests.e2e.harness import RunningAgent


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_health_endpoint_json_logs_and_cluster_name_from_a_config_dir(tmp_path: Path, root: None) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    conf = tmp_path / "conf"
    conf.mkdir()
    for flag, value in (("health-server-address", f"127.0.0.1:{port}"), ("log-format", "json"),
                        ("cluster-name", "test-cluster")):
        (conf / flag).write_text(value + "\n")
    agent = RunningAgent(tmp_path, "--config-dir", str(conf)).start()
    try:
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and orjson.loads(body) == {"status": "HEALTH_STATUS_RUNNING", "details": "running"}
        assert _get(f"http://127.0.0.1:{port}/metrics")[0] == 404
        subprocess.run(["/usr/bin/true", "health-4242"], check=True)
        events = agent.wait_for(lambda events: any("health-4242" in str(e) for e in events))
    finally:
        agent.stop()
    assert events and all(e["cluster_name"] == "test-cluster" for e in events)
    logs = [orjson.loads(line) for line in agent.stderr_lines if not line.startswith('{"summary"')]
    assert logs and all(set(log) >= {"time", "level", "msg", "logger"} for log in logs)
    assert any(log["msg"] == f"health serving at http://127.0.0.1:{port}/healthz" and log["level"] == "info"
               for log in logs)
    assert any(log["msg"].startswith("ready in ") for log in logs)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the health endpoint outlived the agent"
