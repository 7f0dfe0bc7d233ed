"""GetUrl and DnsLookup on a live agent: a real mkdir under the test's directory makes the agent GET a
URL of an HTTP server on 127.0.0.1 and look up "localhost"; the events say KPROBE_ACTION_GETURL /
KPROBE_ACTION_DNSLOOKUP, and `tetra status` counts the requests.

The agent runs as configured by default, so the compiled line path is on where it is built: the hook's
events must still reach the worker (the line path leaves hooks with these actions to the Python path).
"""

import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.harness import RunningAgent, tetra

pytestmark = pytest.mark.usefixtures("root")

# sys_enter_mkdirat's fields: common_* 0-3, __syscall_nr 4, dfd 5, pathname 6, mode 7
POLICY = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: canaries
spec:
  tracepoints:
  - subsystem: "syscalls"
    event: "sys_enter_mkdirat"
    args:
    - index: 6
      type: "string"
    selectors:
    - matchArgs:
      - index: 6
        operator: "Prefix"
        values: ["{root}/web/"]
      matchActions:
      - action: GetUrl
        argUrl: "{url}/canary?dir=web"
    - matchArgs:
      - index: 6
        operator: "Prefix"
        values: ["{root}/dns/"]
      matchActions:
      - action: DnsLookup
        argFqdn: "localhost"
"""


@pytest.fixture
def web() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server; the paths it was asked for."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            paths.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", paths
    httpd.shutdown()
    httpd.server_close()


def mkdirat(path: Path) -> None:
    """mkdirat(2) of an absolute path (os.mkdir alone makes mkdir(2))."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.mkdir(path, dir_fd=fd)
    finally:
        os.close(fd)


def user_actions(agent: RunningAgent) -> dict[str, dict[str, int]]:
    done = tetra(agent, "status", "-o", "json")
    assert done.returncode == 0, done.stderr
    return {row["action"]: row for row in orjson.loads(done.stdout).get("user_actions", [])}


def test_a_matching_mkdir_makes_the_agent_get_the_url_and_look_up_the_name(
        tmp_path: Path, web: tuple[str, list[str]]) -> None:
    url, paths = web
    root = tmp_path / "root"
    (root / "web").mkdir(parents=True)
    (root / "dns").mkdir()
    policy = tmp_path / "canaries.yaml"
    policy.write_text(POLICY.format(root=root, url=url))
    agent = RunningAgent(tmp_path, "--tracing-policy", str(policy)).start(180)
    try:
        for made in (root / "web" / "opened", root / "dns" / "opened", root / "elsewhere"):  # the last: no request
            mkdirat(made)
        events = agent.wait_for(lambda evs: sum("process_tracepoint" in e for e in evs) >= 2)
        deadline = time.monotonic() + 15  # the status is the agent's last tick's
        while time.monotonic() < deadline:
            counts = user_actions(agent)
            if counts.get("GetUrl", {}).get("done") and counts.get("DnsLookup", {}).get("done"):
                break
            time.sleep(0.5)
    finally:
        summary = agent.stop()
    tracepoints = [e["process_tracepoint"] for e in events if "process_tracepoint" in e]
    by_path = {tp["args"][0]["string_arg"]: tp for tp in tracepoints}
    assert by_path[f"{root}/web/opened"]["action"] == "KPROBE_ACTION_GETURL"
    assert by_path[f"{root}/dns/opened"]["action"] == "KPROBE_ACTION_DNSLOOKUP"
    assert f"{root}/elsewhere" not in by_path
    assert paths == ["/canary?dir=web"]
    assert counts["GetUrl"]["done"] == 1 and counts["DnsLookup"]["done"] == 1
    assert summary["user_actions"] == {
        "DnsLookup": {"done": 1, "failed": 0, "rate_limited": 0, "dropped_queue_full": 0, "dropped_at_close": 0},
        "GetUrl": {"done": 1, "failed": 0, "rate_limited": 0, "dropped_queue_full": 0, "dropped_at_close": 0}}
