"""The agent's GetUrl / DnsLookup worker against a real HTTP server on 127.0.0.1 and the real resolver:
requests made, failed, rate limited and dropped at a full queue, each counted; redirects not followed;
a server that does not answer fails after the timeout without holding the caller."""

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tetra.agent.user_actions import UserActions
from tetra.policy.model import Action, Location
from tetra.status.model import user_action_table


class Server:
    """An HTTP server whose paths say how it answers: /slow waits for ``release``, /redirect sends
    to /target, /missing is a 404; it records every path it was asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.paths.append(self.path)
                if self.path == "/slow":
                    server.release.wait(10)
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/target")
                elif self.path == "/missing":
                    self.send_response(404)
                else:
                    self.send_response(200)
                body = b"x" * 100_000  # more than the worker reads
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the worker read its bound and closed

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def action(word: str, url: str | None = None, fqdn: str | None = None) -> Action:
    return Action(word, None, None, None, None, False, False, False, url, fqdn, None, None, None, None,
                  Location("p.yaml", 1, 1, ""))


def wait_for(workers: UserActions, total: int, timeout: float = 10.0) -> dict[tuple[str, str], int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = workers.counts()
        if sum(counts.values()) >= total:
            return dict(counts)
        time.sleep(0.02)
    return dict(workers.counts())


def test_a_get_is_made_by_the_worker_and_counted_done(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # not honoured: the GET goes where the policy says
    workers = UserActions()
    workers.start()
    try:
        workers.submit(1, 0, 0, [action("GetUrl", url=server.url + "/canary?from=tetra")])
        assert wait_for(workers, 1) == {("GetUrl", "done"): 1}
    finally:
        workers.close()
    assert server.paths == ["/canary?from=tetra"]


def test_a_redirect_is_not_followed_and_an_error_status_fails(server: Server) -> None:
    workers = UserActions()
    workers.start()
    try:
        workers.submit(1, 0, 0, [action("GetUrl", url=server.url + "/redirect"),
                                 action("GetUrl", url=server.url + "/missing")])
        assert wait_for(workers, 2) == {("GetUrl", "done"): 1, ("GetUrl", "failed"): 1}
    finally:
        workers.close()
    assert sorted(server.paths) == ["/missing", "/redirect"]  # never /target


def test_a_server_that_does_not_answer_fails_after_the_timeout(server: Server) -> None:
    workers = UserActions(timeout=0.3)
    workers.start()
    try:
        started = time.monotonic()
        workers.submit(1, 0, 0, [action("GetUrl", url=server.url + "/slow")])
        assert time.monotonic() - started < 0.1  # the reader never waits on the network
        assert wait_for(workers, 1) == {("GetUrl", "failed"): 1}
        assert time.monotonic() - started < 3
    finally:
        workers.close()


def test_a_full_queue_drops_and_counts_and_close_counts_what_is_left(server: Server) -> None:
    workers = UserActions(queue_size=2, burst=100)
    workers.start()
    try:
        slow = action("GetUrl", url=server.url + "/slow")
        workers.submit(1, 0, 0, [slow])
        deadline = time.monotonic() + 5
        while not server.paths and time.monotonic() < deadline:  # the worker is busy with it
            time.sleep(0.01)
        for _ in range(5):
            workers.submit(1, 0, 0, [action("GetUrl", url=server.url + "/queued")])
        assert workers.counts() == {("GetUrl", "dropped_queue_full"): 3}
    finally:
        workers.close()  # two still queued behind the slow one
    server.release.set()
    assert wait_for(workers, 6) == {("GetUrl", "dropped_queue_full"): 3, ("GetUrl", "dropped_at_close"): 2,
                                    ("GetUrl", "done"): 1}


def test_each_action_has_its_own_token_bucket(server: Server) -> None:
    now = [100.0]
    workers = UserActions(per_second=1.0, burst=2, clock=lambda: now[0])
    workers.start()
    try:
        canary = action("GetUrl", url=server.url + "/canary")
        for _ in range(4):
            workers.submit(1, 0, 0, [canary])
        workers.submit(1, 0, 1, [canary])  # another selector: another action, its own bucket
        now[0] += 1.0  # one token back
        workers.submit(1, 0, 0, [canary])
        counts = wait_for(workers, 6)
        assert counts == {("GetUrl", "done"): 4, ("GetUrl", "rate_limited"): 2}
        workers.policy_removed(1)  # its buckets go: a policy loaded again starts full
        assert not workers._buckets
    finally:
        workers.close()


def test_a_dns_lookup_of_a_name_the_node_resolves_is_done_and_of_an_unknown_one_failed() -> None:
    workers = UserActions()
    workers.start()
    try:
        workers.submit(1, 0, 0, [action("DnsLookup", fqdn="localhost"),
                                 action("DnsLookup", fqdn="no-such-host.invalid")])
        assert wait_for(workers, 2, timeout=30) == {("DnsLookup", "done"): 1, ("DnsLookup", "failed"): 1}
    finally:
        workers.close()
    assert user_action_table(workers.counts()) == {
        "DnsLookup": {"done": 1, "failed": 1, "rate_limited": 0, "dropped_queue_full": 0, "dropped_at_close": 0}}
