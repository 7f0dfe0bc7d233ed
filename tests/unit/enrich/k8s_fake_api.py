"""A Kubernetes API server for pods and TracingPolicies, as far as the agent uses it, on 127.0.0.1.

The real ``kubernetes`` client talks to it over HTTP with a kubeconfig this
module writes (bearer token checked). It serves

- ``GET /api/v1/pods`` with ``fieldSelector=spec.nodeName=...``;
- ``GET /apis/cilium.io/v1alpha1/tracingpolicies`` (cluster-scoped),
  ``.../tracingpoliciesnamespaced`` (every namespace) and
  ``.../namespaces/{ns}/tracingpoliciesnamespaced`` (one);
- ``PATCH`` (JSON merge patch) and ``PUT`` of a policy's ``/status``, which
  change only its status, bump its resourceVersion and not its generation
  (as a CRD's status subresource does), and are kept in ``status_writes``.

A list answers with the current resourceVersion; ``watch=true`` streams JSON
lines (chunked) of every event after the requested resourceVersion, then waits
for more until ``timeoutSeconds``. A policy's generation moves when its spec
changes. Tests drive it: objects change with or without events, ``expire()``
makes open and future watches from older versions end in a 410 Gone ERROR
event, ``close_streams()`` ends watches cleanly, ``stop()`` drops everything
mid-stream and refuses connections until ``start()`` again on the same port,
``fail_status`` makes status writes fail with that HTTP code.
"""

import copy
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "tetra-test-token"
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}  # Go's strconv.ParseBool, as the API server parses flags
PODS = "pods"
TRACING_POLICIES = "tracingpolicies"
TRACING_POLICIES_NAMESPACED = "tracingpoliciesnamespaced"
_POLICY_API = "cilium.io/v1alpha1"
_LIST_KINDS = {PODS: "PodList", TRACING_POLICIES: "TracingPolicyList",
               TRACING_POLICIES_NAMESPACED: "TracingPolicyNamespacedList"}
_ROUTE = re.compile(r"/api/v1/(?P<pods>pods)"
                    r"|/apis/cilium\.io/v1alpha1(?:/namespaces/(?P<namespace>[^/]+))?"
                    r"/(?P<plural>tracingpolicies|tracingpoliciesnamespaced)(?:/(?P<name>[^/]+)/status)?")
MERGE_PATCH = "application/merge-patch+json"


def eventually(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait until ``check()`` is true, failing with its docstring (or itself) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {check.__doc__ or check}")
        time.sleep(0.02)


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


def make_policy(name: str, spec: dict[str, Any], *, namespace: str = "") -> dict[str, Any]:
    """A TracingPolicy, or with ``namespace`` a TracingPolicyNamespaced, as kubectl would create it."""
    meta = {"name": name, "namespace": namespace} if namespace else {"name": name}
    kind = "TracingPolicyNamespaced" if namespace else "TracingPolicy"
    return {"apiVersion": _POLICY_API, "kind": kind, "metadata": meta, "spec": spec}


@dataclass(frozen=True, slots=True)
class StatusWrite:
    """One PATCH or PUT of a policy's /status, answered with ``code``."""

    method: str
    resource: str
    namespace: str
    name: str
    content_type: str
    body: dict[str, Any]
    code: int


@dataclass(frozen=True, slots=True)
class _Selection:
    """What one list or watch asks for: a resource, in one namespace or all, pods of one node."""

    resource: str
    namespace: str | None
    node: str

    def __contains__(self, item: tuple[str, dict[str, Any]]) -> bool:
        resource, obj = item
        if resource != self.resource:
            return False
        if resource == PODS:
            return bool(obj["spec"]["nodeName"] == self.node)
        return self.namespace is None or obj["metadata"].get("namespace") == self.namespace


class FakeApiServer:
    """Pods and policies, their event log and the HTTP server that serves them."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {  # resource -> key -> object
            PODS: {}, TRACING_POLICIES: {}, TRACING_POLICIES_NAMESPACED: {}}  # pods by uid, policies by [ns/]name
        self.version = 1000
        self.events: list[tuple[int, str, str, dict[str, Any]]] = []  # (resourceVersion, type, resource, object)
        self.oldest = 0  # a watch from a version below this one gets 410 Gone
        self.calls: list[tuple[str, str, dict[str, str]]] = []  # (method, path, query) of every authorized request
        self.status_writes: list[StatusWrite] = []
        self.fail_status = 0  # an HTTP code: every status write fails with it (0: they succeed)
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
            self._store(PODS, pod["metadata"]["uid"], copy.deepcopy(pod), event)

    def delete(self, uid: str, *, event: bool = True) -> None:
        with self.cond:
            self._remove(PODS, uid, event)

    def put_policy(self, policy: dict[str, Any], *, event: bool = True) -> dict[str, Any]:
        """Create or update a policy from ``make_policy``; returns it as stored.

        A new one gets a uid and generation 1; an update keeps both and the
        status, and moves the generation when the spec changed.
        """
        resource, key = _policy_key(policy["metadata"]["name"], policy["metadata"].get("namespace", ""))
        policy = copy.deepcopy(policy)
        meta = policy["metadata"]
        with self.cond:
            old = self.objects[resource].get(key)
            if old is None:
                meta["uid"], meta["generation"] = str(uuid.uuid4()), 1
            else:
                meta["uid"] = old["metadata"]["uid"]
                meta["generation"] = old["metadata"]["generation"] + (policy["spec"] != old["spec"])
                if "status" in old:
                    policy["status"] = old["status"]
            self._store(resource, key, policy, event)
            return copy.deepcopy(policy)

    def delete_policy(self, name: str, namespace: str = "", *, event: bool = True) -> None:
        """Delete the TracingPolicy ``name``, or with ``namespace`` the TracingPolicyNamespaced."""
        with self.cond:
            self._remove(*_policy_key(name, namespace), event)

    def policy(self, name: str, namespace: str = "") -> dict[str, Any] | None:
        """A policy as stored now (status included), or None."""
        resource, key = _policy_key(name, namespace)
        with self.cond:
            return copy.deepcopy(self.objects[resource].get(key))

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

    @property
    def requests(self) -> list[dict[str, str]]:
        """The query of every authorized request, in order."""
        return [query for _method, _path, query in self.calls]

    def lists(self, path: str | None = None) -> list[dict[str, str]]:
        """The queries of lists (of ``path`` only, when given)."""
        return [q for _m, p, q in self.calls if q.get("watch", "") not in _TRUE and path in (None, p)]

    def watches(self, path: str | None = None) -> list[dict[str, str]]:
        return [q for _m, p, q in self.calls if q.get("watch", "") in _TRUE and path in (None, p)]

    def _store(self, resource: str, key: str, obj: dict[str, Any], event: bool) -> None:
        """Under the lock: keep ``obj`` at a new resourceVersion, with its ADDED or MODIFIED event."""
        kind = "MODIFIED" if key in self.objects[resource] else "ADDED"
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[resource][key] = obj
        if event:
            self.events.append((self.version, kind, resource, obj))
        self.cond.notify_all()

    def _remove(self, resource: str, key: str, event: bool) -> None:
        obj = self.objects[resource].pop(key)
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        if event:
            self.events.append((self.version, "DELETED", resource, obj))
        self.cond.notify_all()

    # ── serving ──────────────────────────────────────────────────────────────────────────────

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            _reply(handler, 401, _status(401, "Unauthorized", "no or wrong bearer token"))
            return
        route = _ROUTE.fullmatch(url.path)
        namespaced = route is not None and route["plural"] == TRACING_POLICIES_NAMESPACED
        if route is None or (route["namespace"] is not None and not namespaced) \
                or (handler.command == "GET") == (route["name"] is not None):
            _reply(handler, 404, _status(404, "NotFound", f"{handler.command} {url.path}"))
            return
        with self.cond:
            self.calls.append((handler.command, url.path, query))
        if route["name"] is not None:
            self._write_status(handler, route["namespace"] or "", route["name"])
            return
        selection = _Selection(route["pods"] or route["plural"], route["namespace"],
                               query.get("fieldSelector", "").removeprefix("spec.nodeName="))
        if query.get("watch", "") in _TRUE:
            self._stream(handler, selection, int(query.get("resourceVersion") or 0),
                         float(query.get("timeoutSeconds") or 300))
            return
        with self.cond:
            items = [obj for obj in self.objects[selection.resource].values() if (selection.resource, obj) in selection]
            body = {"kind": _LIST_KINDS[selection.resource], "apiVersion": "v1" if selection.resource == PODS
                    else _POLICY_API, "metadata": {"resourceVersion": str(self.version)}, "items": items}
            _reply(handler, 200, body)

    def _write_status(self, handler: BaseHTTPRequestHandler, namespace: str, name: str) -> None:
        """PATCH (JSON merge patch) or PUT of /status: only the status changes, the generation stays."""
        content_type = handler.headers.get("Content-Type", "").split(";")[0].strip()
        body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length") or 0)) or b"{}")
        resource, key = _policy_key(name, namespace)
        with self.cond:
            obj = self.objects[resource].get(key)
            if self.fail_status:
                code, answer = self.fail_status, _status(self.fail_status, "InternalError", "status writes fail")
            elif obj is None:
                code, answer = 404, _status(404, "NotFound", f"{resource} {key} not found")
            elif handler.command == "PATCH" and content_type != MERGE_PATCH:
                code, answer = 415, _status(415, "UnsupportedMediaType", f"only {MERGE_PATCH} here")
            elif handler.command == "PUT" and body.get("metadata", {}).get("resourceVersion") not in (
                    None, obj["metadata"]["resourceVersion"]):
                code, answer = 409, _status(409, "Conflict", "the object has been modified")
            else:
                updated = copy.deepcopy(obj)
                status = _merge_patch(obj, body).get("status") if handler.command == "PATCH" else body.get("status")
                if status is None:
                    updated.pop("status", None)
                else:
                    updated["status"] = status
                self._store(resource, key, updated, True)
                code, answer = 200, copy.deepcopy(updated)
            self.status_writes.append(StatusWrite(handler.command, resource, namespace, name, content_type, body, code))
        _reply(handler, code, answer)

    def _stream(self, handler: BaseHTTPRequestHandler, selection: _Selection, since: int, timeout: float) -> None:
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
                        lines = [{"type": kind, "object": obj} for rv, kind, resource, obj in self.events
                                 if rv > since and (resource, obj) in selection]
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


def _policy_key(name: str, namespace: str) -> tuple[str, str]:
    """(resource, key in ``objects``) of a policy: with a namespace, a TracingPolicyNamespaced."""
    if namespace:
        return TRACING_POLICIES_NAMESPACED, f"{namespace}/{name}"
    return TRACING_POLICIES, name


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge_patch(merged.get(key), value)
    return merged


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

        def do_GET(self) -> None:  # noqa: N802 (http.server's names)
            api.serve(self)

        do_PATCH = do_PUT = do_GET  # noqa: N815

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
