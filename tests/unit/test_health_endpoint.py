"""--health-server-address's GET /healthz over real HTTP: the verdict follows the agent loop's last
iteration (its CommandQueue's ``last_run``) and its stop event. The agent here is what the endpoint
reads of one (a real CommandQueue and stop Event); the live agent is in tests/e2e/test_agent_health.py."""

import socket
import threading
import urllib.error
import urllib.request
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from tetra.agent.commands import CommandQueue
from tetra.agent.health import STALLED_AFTER
from tetra.app.services import HealthEndpoint
from tetra.errors import ExportError


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_healthz_follows_the_loop_and_the_stop() -> None:
    agent = SimpleNamespace(commands=CommandQueue(), stop=threading.Event())
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    endpoint = HealthEndpoint(f"127.0.0.1:{port}")
    endpoint.start(agent)  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        assert _get(url) == (200, {"status": "HEALTH_STATUS_RUNNING", "details": "running"})
        agent.commands.last_run -= STALLED_AFTER + 5
        status, body = _get(url)
        assert status == 503 and b"HEALTH_STATUS_ERROR" in body and b"the agent loop has not run for" in body
        agent.commands.run_pending()  # the loop is back
        assert _get(url)[0] == 200
        assert _get(url.replace("/healthz", "/"))[0] == 404
        agent.stop.set()
        status, body = _get(url)
        assert status == 503 and b"HEALTH_STATUS_STOPPED" in body
    finally:
        endpoint.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


def test_bad_or_taken_addresses_are_refused_naming_the_flag() -> None:
    with pytest.raises(ExportError, match="--health-server-address 'nowhere': expected"):
        HealthEndpoint("nowhere")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = HealthEndpoint(f"127.0.0.1:{taken.getsockname()[1]}")
        with pytest.raises(ExportError, match="--health-server-address 127.0.0.1:.*in use"):
            endpoint.start(SimpleNamespace(commands=CommandQueue(), stop=threading.Event()))  # type: ignore[arg-type]
