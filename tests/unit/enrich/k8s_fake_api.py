"""A Kubernetes API server for pods, as far as list and watch go, on 127.0.0.1.

The real ``kubernetes`` client talks to it over HTTP with a kubeconfig this
module writes (bearer token checked). It serves ``GET /api/v1/pods`` with
``fieldSelector=spec.nodeName=...``: a list answers with the current
resourceVersion; ``watch=true`` streams JSON lines (chunked) of every event
after the requested resourceVersion, then waits for more until
``timeoutSeconds``. Tests drive it: pods change with or without events,
``expire()`` makes open and future watches from older versions end in a 410
Gone ERROR event, ``close_streams()`` ends watches cleanly, ``stop()`` drops
everything mid-stream and refuses connections until ``start()`` again on the
same port.
"""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "tetra-test-token"
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}  # Go's strconv.ParseBool, as the API server parses flags


def make_pod(name: str, uid: str, node: str, containers: dict[str, str], *, namespace: str = "default",
             labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
             owner: tuple[str, str] | None = None) -> dict[str, Any]:
    """A running pod as the API server sends it; ``containers`` maps names to bare containerd ids."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid, "labels": labels or {}}
    if annotations:
        meta["annotations"] = annotations
    if owner:
        meta["generateName"] = owner[1] + "-"
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1],
                                    "uid": "00000000-0000-0000-0000-000000000001", "controller": True}]
    return {
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": n, "image": f"docker.io/library/{n}:1"} for n in containers]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": n, "containerID": f"containerd://{cid}", "image": f"docker.io/library/{n}:1",
             "imageID": f"docker.io/library/{n}@sha256:{'0' * 64}", "ready": True, "restartCount": 0,
             "state": {"running": {"startedAt": "2026-11-26T10:00:00Z"}}}
            for n, cid in containers.items()]},
    }


class FakeApiServer:
    """Pods, their event log and the HTTP server that serves them."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pods: dict[str, dict[str, Any]] = {}  # uid -> pod
        self.version = 1000
        self.events: list[tuple[int, str, dict[str, Any]]] = []  # (resourceVersion, type, pod)
        self.oldest = 0  # a watch from a version below this one gets 410 Gone
        self.requests: list[dict[str, str]] = []  # the query of every authorized request, in order
        self.port = 0
        self.open_streams = 0
        self.cut_watches = False  # end every watch at once, as a misbehaving proxy would
        self._epoch = 0  # bumped by close_streams()
        self._down = False
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    # ── lifecycle ────────────────────────────────────────────────────────────────────────────

    def start(self) -> None:
        """Listen (again, on the same port after the first start)."""
        server = _QuietServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        server.block_on_close = False
        self.port = server.server_address[1]
        with self.cond:
            self._down = False
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        """Go away: open streams are cut mid-way, new connections refused."""
        with self.cond:
            self._down = True
            self.cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.cond:
            for conn in self._connections:  # idle keep-alive connections too
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        deadline = time.monotonic() + 5
        while self.open_streams and time.monotonic() < deadline:
            time.sleep(0.01)

    def kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "tetra", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tetra"}}],
        }
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    # ── what tests do to the cluster ─────────────────────────────────────────────────────────

    def put(self, pod: dict[str, Any], *, event: bool = True) -> None:
        """Create or update a pod; without ``event`` only a later list shows it."""
        with self.cond:
            uid = pod["metadata"]["uid"]
            kind = "MODIFIED" if uid in self.pods else "ADDED"
            self.version += 1
            pod = json.loads(json.dumps(pod))
            pod["metadata"]["resourceVersion"] = str(self.version)
            self.pods[uid] = pod
            if event:
                self.events.append((self.version, kind, pod))
            self.cond.notify_all()

    def delete(self, uid: str, *, event: bool = True) -> None:
        with self.cond:
            pod = self.pods.pop(uid)
            self.version += 1
            pod["metadata"]["resourceVersion"] = str(self.version)
            if event:
                self.events.append((self.version, "DELETED", pod))
            self.cond.notify_all()

    def expire(self) -> None:
        """Compact history: watches from any version seen so far end in 410 Gone."""
        with self.cond:
            self.version += 1
            self.oldest = self.version
            self.cond.notify_all()

    def close_streams(self) -> None:
        """End every open watch cleanly, as an API server does at timeoutSeconds."""
        with self.cond:
            self._epoch += 1
            self.cond.notify_all()

    def lists(self) -> list[dict[str, str]]:
        return [q for q in self.requests if q.get("watch", "") not in _TRUE]

    def watches(self) -> list[dict[str, str]]:
        return [q for q in self.requests if q.get("watch", "") in _TRUE]

    # ── serving ──────────────────────────────────────────────────────────────────────────────

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            _reply(handler, 401, _status(401, "Unauthorized", "no or wrong bearer token"))
            return
        if url.path != "/api/v1/pods":
            _reply(handler, 404, _status(404, "NotFound", url.path))
            return
        node = query.get("fieldSelector", "").removeprefix("spec.nodeName=")
        watch = query.get("watch", "") in _TRUE
        with self.cond:
            self.requests.append(query)
            if not watch:
                items = [p for p in self.pods.values() if p["spec"]["nodeName"] == node]
                body = {"kind": "PodList", "apiVersion": "v1",
                        "metadata": {"resourceVersion": str(self.version)}, "items": items}
        if watch:
            self._stream(handler, node, int(query.get("resourceVersion") or 0),
                         float(query.get("timeoutSeconds") or 300))
        else:
            _reply(handler, 200, body)

    def _stream(self, handler: BaseHTTPRequestHandler, node: str, since: int, timeout: float) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        if self.cut_watches:
            _chunk(handler, b"")
            return
        deadline = time.monotonic() + timeout
        with self.cond:
            epoch = self._epoch
            self.open_streams += 1
        try:
            while True:
                with self.cond:
                    if self._down:
                        handler.close_connection = True
                        handler.connection.shutdown(socket.SHUT_RDWR)  # gone mid-stream: no final chunk
                        return
                    if since < self.oldest:
                        gone = _status(410, "Expired", f"too old resource version: {since} ({self.oldest})")
                        lines = [{"type": "ERROR", "object": gone}]
                        ending = True
                    else:
                        lines = [{"type": kind, "object": pod} for rv, kind, pod in self.events
                                 if rv > since and pod["spec"]["nodeName"] == node]
                        since = self.version
                        ending = self._epoch != epoch or time.monotonic() >= deadline
                for line in lines:
                    _chunk(handler, json.dumps(line).encode() + b"\n")
                if ending:
                    _chunk(handler, b"")
                    return
                with self.cond:
                    if self.version == since and self._epoch == epoch and not self._down:
                        self.cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
        except OSError:
            return  # the client went away
        finally:
            with self.cond:
                self.open_streams -= 1


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # connections cut by stop() are the point, not news


def _handler(api: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with api.cond:
                api._connections.add(self.connection)

        def finish(self) -> None:
            with api.cond:
                api._connections.discard(self.connection)
            super().finish()

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            api.serve(self)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _reply(handler: BaseHTTPRequestHandler, code: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    handler.wfile.flush()
