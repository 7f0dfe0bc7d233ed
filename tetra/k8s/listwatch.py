"""One Kubernetes resource listed, then watched, in a daemon thread that never gives up.

::

    start() ── no kubeconfig, not in a pod ──> state "disabled" (and one log line saying why)
       └─> thread: connect ──> list ──> _replace(items) ──> watch from its resourceVersion ──> _apply(type, obj)
                     ^              ^   state "synced"              │ stream ends: watch again from
                     │              └── 410 Gone (version too old) ─┤ the last version seen
                     └── any error: state "reconnecting", capped ───┘
                         exponential backoff, then connect/list again (a stream that ends at once
                         without events counts as an error, so a proxy that cuts streams cannot
                         make the thread spin)

A subclass names the resource (``_bind``: the client's list function with its
fixed arguments) and says what a list (``_replace``, the whole current set)
and an event (``_apply``) change. Everything they raise is a failure like a
refused connection: counted, shown in ``state`` and ``last_error``, retried
after a backoff with a fresh list, so a list is also how a subclass recovers.

The official ``kubernetes`` client does the HTTP, authentication and
kubeconfig parsing; it is imported in the thread (it takes over half a second)
so that starting the agent never waits for it. Nothing the API does (refusing
connections, closing streams, answering 410 or garbage) reaches the caller.

Lists ask for resourceVersion "0" (served from the API server's watch cache,
as informers do, so that a DaemonSet's relists after an API server restart do
not each read etcd), except after a 410, when the cache's version may be the
one that just expired and only a consistent read helps.
"""

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
CONNECT_TIMEOUT = 10.0  # seconds to open a connection to the API server
LIST_TIMEOUT = 60.0  # seconds to wait for a list's response
READ_SLACK = 30  # the client gives up on a silent watch this long after the server should have ended it
SHORT_WATCH = 1.0  # a stream that ends sooner without an event is a failure (backoff), not a timeout
NO_CONFIGURATION = ("no --k8s-kubeconfig-path and not running in a pod "
                    "(KUBERNETES_SERVICE_HOST unset or no service account token)")


class WatchState(StrEnum):
    DISABLED = "disabled"  # no configuration: the feature is off (see last_error for why)
    SYNCING = "syncing"  # started, the first list has not completed yet
    SYNCED = "synced"  # listed, and watching
    RECONNECTING = "reconnecting"  # the last attempt failed; retrying after a backoff
    STOPPED = "stopped"


class ShortWatchError(Exception):
    """A watch stream ended at once without events: something between us and the API cuts it."""


def config_source(kubeconfig: str | None) -> str:
    """Where the API's address and credentials come from: "kubeconfig <path>", "in-cluster", or "" (nowhere)."""
    if kubeconfig:
        return f"kubeconfig {kubeconfig}"
    if os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_TOKEN.exists():
        return "in-cluster"
    return ""


@dataclass(frozen=True, slots=True)
class _Connection:
    """What the thread uses of the kubernetes package, imported there."""

    lister: Callable[..., Any]  # the resource's list call, its fixed arguments bound
    watch: Callable[[], Any]  # returns a kubernetes.watch.Watch yielding raw JSON objects
    api_exception: type[Exception]


class ListWatcher:
    """Lists then watches one resource; subclasses fill in ``_bind``, ``_replace`` and ``_apply``.

    ``feature`` names what the watch is for in the start line ("Kubernetes pod
    enrichment"), ``label`` starts the other log lines ("Kubernetes pod watch"),
    ``what`` names the objects in ``last_error`` ("pods"); ``log`` is the
    subclass's logger, so that its lines carry its module's name.
    """

    feature = "Kubernetes"
    label = "Kubernetes watch"
    what = "objects"

    def __init__(self, kubeconfig: str | None, log: logging.Logger, *, watch_timeout: int = 300,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0) -> None:
        """``kubeconfig``: a kubeconfig file (``--k8s-kubeconfig-path``); else the
        in-cluster service account is used when running in a pod. The API
        server ends each watch after ``watch_timeout`` seconds and it is
        reopened; failures are retried after ``backoff_initial`` seconds,
        doubling up to ``backoff_max``."""
        self.kubeconfig = kubeconfig
        self.watch_timeout = watch_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.state = WatchState.STOPPED
        self.last_error = ""
        self.source = ""
        self._log = log
        self._counts = {"events": 0, "lists": 0, "relists": 0, "watch_restarts": 0, "errors": 0}
        self._stopping = threading.Event()
        self._listed = threading.Event()  # the first list is in
        self._thread: threading.Thread | None = None
        self._stream: Any = None  # the open watch's urllib3 response, so that halt() can cut its read
        self._doing = ""  # what the thread is at, for last_error
        self._failures = 0  # attempts since the last sign of a healthy API (an event, a stream run to its end)

    @property
    def watching(self) -> str:
        """What is watched, for the start line ("pods with spec.nodeName=node-a")."""
        return self.what

    def start(self) -> None:
        """Start watching in a daemon thread, or set state "disabled" when there is no configuration."""
        self.source = config_source(self.kubeconfig)
        if not self.source:
            self.state = WatchState.DISABLED
            self.last_error = NO_CONFIGURATION
            self._log.warning("%s is off: %s", self.feature, self.last_error)
            return
        self.state = WatchState.SYNCING
        self._log.info("%s: watching %s (%s)", self.feature, self.watching, self.source)
        self._thread = threading.Thread(target=self._run, name=f"tetra-{self.what}-watcher", daemon=True)
        self._thread.start()

    def wait_synced(self, timeout: float) -> bool:
        """Wait until the first list is in (True), at most ``timeout`` seconds (False: not yet)."""
        return self._listed.wait(timeout)

    def halt(self) -> None:
        """Ask the thread to end, without waiting: a blocked watch read is cut at once."""
        self._stopping.set()
        self._cut_stream()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; returns within ``timeout`` even if a request is still blocked (it is a daemon)."""
        self.halt()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.state is not WatchState.DISABLED:
            self.state = WatchState.STOPPED

    def counts(self) -> dict[str, int]:
        """events (applied), lists (the first included), relists, watch_restarts, errors."""
        return dict(self._counts)

    # ── what a subclass says ────────────────────────────────────────────────────────────────

    def _bind(self, client: ModuleType, api_client: Any) -> Callable[..., Any]:
        """The list call of the resource (``kubernetes.client`` is ``client``), called with
        ``watch=True`` for watches; once per connection."""
        raise NotImplementedError

    def _replace(self, items: list[dict[str, Any]]) -> str:
        """A list's items are now the whole set; returns what the "synced" log line says of them."""
        raise NotImplementedError

    def _apply(self, kind: str, obj: dict[str, Any]) -> bool:
        """One ADDED/MODIFIED/DELETED/BOOKMARK event; True when it counts as an applied event."""
        raise NotImplementedError

    @contextmanager
    def _doing_now(self, doing: str) -> Iterator[None]:
        """Name a step of the thread for ``last_error``; a step that fails stays named."""
        before, self._doing = self._doing, doing
        yield
        self._doing = before

    # ── the thread ──────────────────────────────────────────────────────────────────────────

    def _run(self) -> None:
        connection: _Connection | None = None
        consistent = False  # list with a consistent read (after a 410) instead of the watch cache
        while not self._stopping.is_set():
            try:
                if connection is None:
                    self._doing = f"loading the {self.source}"
                    connection = self._connect()
                version = self._list(connection, consistent)
                consistent = False
                while not self._stopping.is_set():
                    version = self._watch_once(connection, version)
            except Exception as err:  # noqa: BLE001  every failure becomes state and a retry, never a crash
                if self._stopping.is_set():
                    break
                gone = (connection is not None and isinstance(err, connection.api_exception)
                        and getattr(err, "status", 0) == 410)
                if gone:  # routine: list again at once, unless it keeps happening without progress
                    self._log.debug("%s: resource version expired (410 Gone); listing again", self.label)
                    consistent = True
                else:
                    self._failed(err)
                delay = self._backoff(self._failures) if self._failures or not gone else 0.0
                self._failures += 1
                self._stopping.wait(delay)

    def _connect(self) -> _Connection:
        from kubernetes import client, config, watch  # noqa: PLC0415  (slow import, kept off the agent's start)

        configuration = client.Configuration()
        if self.kubeconfig:
            config.load_kube_config(config_file=self.kubeconfig, client_configuration=configuration,
                                    persist_config=False)
        else:
            config.load_incluster_config(client_configuration=configuration)
        configuration.retries = False  # this thread retries, with backoff; urllib3 would retry at once
        return _Connection(lister=self._bind(client, client.ApiClient(configuration)),
                           watch=lambda: watch.Watch(return_type="object"), api_exception=client.ApiException)

    def _list(self, connection: _Connection, consistent: bool) -> str:
        """List into ``_replace``; returns the list's resourceVersion."""
        self._doing = f"listing {self.what}"
        response = connection.lister(resource_version=None if consistent else "0", _preload_content=False,
                                     _request_timeout=(CONNECT_TIMEOUT, LIST_TIMEOUT))
        try:
            body = json.loads(response.data)
        finally:
            response.release_conn()
        said = self._replace(list(body.get("items") or ()))
        if self._counts["lists"]:
            self._counts["relists"] += 1
        self._counts["lists"] += 1
        if self.state is not WatchState.SYNCED and not self._stopping.is_set():
            self._log.info("%s synced: %s", self.label, said)
            self.state = WatchState.SYNCED
        self._listed.set()
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    def _watch_once(self, connection: _Connection, version: str) -> str:
        """Apply one watch stream's events; returns the last resourceVersion seen when it ends."""
        self._doing = f"watching {self.what}"

        def request(**kwargs: Any) -> Any:
            """The watch request, keeping its response so that halt() can cut the blocked read."""
            self._stream = connection.lister(**kwargs)
            if self._stopping.is_set():
                self._cut_stream()
            return self._stream

        watch = connection.watch()
        opened, events = time.monotonic(), 0
        try:
            stream = watch.stream(request, resource_version=version, allow_watch_bookmarks=True,
                                  timeout_seconds=self.watch_timeout,
                                  _request_timeout=(CONNECT_TIMEOUT, self.watch_timeout + READ_SLACK))
            for event in stream:
                if self._apply(event["type"], event["raw_object"]):
                    self._counts["events"] += 1
                events += 1
                self._failures = 0
                if self._stopping.is_set():
                    break
        finally:
            self._stream = None
        lasted = time.monotonic() - opened
        if not events and lasted < SHORT_WATCH and not self._stopping.is_set():
            raise ShortWatchError(f"the watch stream ended after {lasted:.3f}s without an event")
        self._failures = 0
        self._counts["watch_restarts"] += 1
        return str(watch.resource_version or version)

    def _cut_stream(self) -> None:
        """Unblock a read on the open watch from another thread (urllib3's HTTPResponse.shutdown)."""
        stream = self._stream
        if stream is not None:
            try:
                stream.shutdown()
            except Exception:  # noqa: BLE001  already released or closed: nothing is blocked on it
                pass

    def _failed(self, err: Exception) -> None:
        self._counts["errors"] += 1
        self.last_error = f"{self._doing}: {type(err).__name__}: {err}".strip()[:500]
        if self.state is not WatchState.RECONNECTING:
            self._log.warning("%s failed, retrying with backoff: %s", self.label, self.last_error)
        else:
            self._log.debug("%s still failing: %s", self.label, self.last_error)
        self.state = WatchState.RECONNECTING

    def _backoff(self, failures: int) -> float:
        """Capped exponential, with jitter so that a DaemonSet's agents do not retry in step."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** min(failures, 32))
        return random.uniform(ceiling / 2, ceiling)

