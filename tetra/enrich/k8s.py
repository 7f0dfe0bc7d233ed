"""Pods of this node from the Kubernetes API, kept current in a background thread.

::

    start() ── no kubeconfig, not in a pod ──> state "disabled" (and one log line saying why)
       └─> thread: connect ──> list (fieldSelector spec.nodeName=<node>) ──> watch from its resourceVersion
                     ^              ^   state "synced"                        │ stream ends: watch again from
                     │              └── 410 Gone (version too old) ───────────┤ the last version seen
                     └── any error: state "reconnecting", capped exponential ─┘
                         backoff, then connect/list again (a stream that ends at
                         once without events counts as an error, so a proxy that
                         cuts streams cannot make the thread spin)
    every ADDED/MODIFIED/DELETED ──> PodIndex ──> lookup() from the pipeline thread

The official ``kubernetes`` client does the HTTP, authentication and
kubeconfig parsing; it is imported in the thread (it takes over half a second)
so that starting the agent never waits for it. Nothing the API does (refusing
connections, closing streams, answering 410 or garbage) reaches the caller: it
shows in ``state``, ``last_error`` and the counters, and the thread retries.

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
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from tetra.enrich.podindex import IndexSizes, PodIndex
from tetra.enrich.pods import PodInfo, pod_info

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
CONNECT_TIMEOUT = 10.0  # seconds to open a connection to the API server
LIST_TIMEOUT = 60.0  # seconds to wait for a list's response
READ_SLACK = 30  # the client gives up on a silent watch this long after the server should have ended it
SHORT_WATCH = 1.0  # a stream that ends sooner without an event is a failure (backoff), not a timeout


class WatchState(StrEnum):
    DISABLED = "disabled"  # no configuration: enrichment is off (see last_error for why)
    SYNCING = "syncing"  # started, the first list has not completed yet
    SYNCED = "synced"  # listed, and watching
    RECONNECTING = "reconnecting"  # the last attempt failed; retrying after a backoff
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class WatcherStatus:
    """A snapshot for status output and metrics."""

    state: WatchState
    last_error: str
    source: str  # "kubeconfig <path>", "in-cluster" or ""
    events: int  # ADDED/MODIFIED/DELETED events applied
    lists: int  # successful lists, the first included
    relists: int  # lists after the first: after a 410 Gone or an error
    watch_restarts: int  # watch streams that ended normally and were reopened
    errors: int  # failed connects, lists and watches
    lookups: int
    misses: int
    sizes: IndexSizes


class ShortWatchError(Exception):
    """A watch stream ended at once without events: something between us and the API cuts it."""


@dataclass(frozen=True, slots=True)
class _Client:
    """What the thread uses of the kubernetes package, imported there."""

    core: Any  # kubernetes.client.CoreV1Api
    watch: Callable[[], Any]  # returns a kubernetes.watch.Watch yielding raw JSON objects
    api_exception: type[Exception]


class PodWatcher:
    """Lists then watches this node's pods; ``lookup`` answers from memory, never from the network."""

    def __init__(self, node_name: str, kubeconfig: str | None = None, *, deleted_ttl: float = 120.0,
                 annotations: bool = False, watch_timeout: int = 300, backoff_initial: float = 0.5,
                 backoff_max: float = 30.0) -> None:
        """``kubeconfig``: a kubeconfig file (``--k8s-kubeconfig-path``); else the
        in-cluster service account is used when running in a pod. Deleted pods
        and replaced containers still resolve for ``deleted_ttl`` seconds.
        ``annotations`` keeps pod annotations for ``pod_annotations``. The API
        server ends each watch after ``watch_timeout`` seconds and it is
        reopened; failures are retried after ``backoff_initial`` seconds,
        doubling up to ``backoff_max``."""
        self.node_name = node_name
        self.kubeconfig = kubeconfig
        self.annotations = annotations
        self.watch_timeout = watch_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.state = WatchState.STOPPED
        self.last_error = ""
        self.source = ""
        self._index = PodIndex(deleted_ttl)
        self._counts = {"events": 0, "lists": 0, "relists": 0, "watch_restarts": 0, "errors": 0,
                        "lookups": 0, "misses": 0}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None  # the open watch's urllib3 response, so that stop() can cut its read
        self._doing = ""  # what the thread is at, for last_error
        self._failures = 0  # attempts since the last sign of a healthy API (an event, a stream run to its end)

    @property
    def selector(self) -> str:
        return f"spec.nodeName={self.node_name}"

    def start(self) -> None:
        """Start watching in a daemon thread, or set state "disabled" when there is no configuration."""
        self.source = self._config_source()
        if not self.source:
            self.state = WatchState.DISABLED
            self.last_error = ("no --k8s-kubeconfig-path and not running in a pod "
                               "(KUBERNETES_SERVICE_HOST unset or no service account token)")
            log.warning("Kubernetes pod enrichment is off: %s", self.last_error)
            return
        self.state = WatchState.SYNCING
        log.info("Kubernetes pod enrichment: watching pods with %s (%s)", self.selector, self.source)
        self._thread = threading.Thread(target=self._run, name="tetra-pod-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; returns within ``timeout`` even if a request is still blocked (it is a daemon)."""
        self._stopping.set()
        self._cut_stream()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.state is not WatchState.DISABLED:
            self.state = WatchState.STOPPED

    def lookup(self, container_id: str, pod_uid: str = "") -> PodInfo | None:
        """The pod of a container (bare id, full or the 31-character ``docker`` prefix), else of a pod uid.

        Thread-safe and answered from memory. Deleted pods resolve for the TTL.
        """
        pod = self._index.lookup(container_id, pod_uid)
        self._counts["lookups"] += 1
        if pod is None:
            self._counts["misses"] += 1
        return pod

    def status(self) -> WatcherStatus:
        c = self._counts
        return WatcherStatus(state=self.state, last_error=self.last_error, source=self.source,
                             events=c["events"], lists=c["lists"], relists=c["relists"],
                             watch_restarts=c["watch_restarts"], errors=c["errors"], lookups=c["lookups"],
                             misses=c["misses"], sizes=self._index.sizes())

    def _config_source(self) -> str:
        if self.kubeconfig:
            return f"kubeconfig {self.kubeconfig}"
        if os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_TOKEN.exists():
            return "in-cluster"
        return ""

    # ── the thread ──────────────────────────────────────────────────────────────────────────

    def _run(self) -> None:
        client: _Client | None = None
        consistent = False  # list with a consistent read (after a 410) instead of the watch cache
        while not self._stopping.is_set():
            try:
                if client is None:
                    self._doing = f"loading the {self.source}"
                    client = self._connect()
                version = self._list(client, consistent)
                consistent = False
                while not self._stopping.is_set():
                    version = self._watch_once(client, version)
            except Exception as err:  # noqa: BLE001  every failure becomes state and a retry, never a crash
                if self._stopping.is_set():
                    break
                gone = client is not None and isinstance(err, client.api_exception) and getattr(err, "status", 0) == 410
                if gone:  # routine: list again at once, unless it keeps happening without progress
                    log.debug("pod watch: resource version expired (410 Gone); listing again")
                    consistent = True
                else:
                    self._failed(err)
                delay = self._backoff(self._failures) if self._failures or not gone else 0.0
                self._failures += 1
                self._stopping.wait(delay)

    def _connect(self) -> _Client:
        from kubernetes import client, config, watch  # noqa: PLC0415  (slow import, kept off the agent's start)

        configuration = client.Configuration()
        if self.kubeconfig:
            config.load_kube_config(config_file=self.kubeconfig, client_configuration=configuration,
                                    persist_config=False)
        else:
            config.load_incluster_config(client_configuration=configuration)
        configuration.retries = False  # this thread retries, with backoff; urllib3 would retry at once
        core = client.CoreV1Api(client.ApiClient(configuration))
        return _Client(core=core, watch=lambda: watch.Watch(return_type="object"),
                       api_exception=client.ApiException)

    def _list(self, client: _Client, consistent: bool) -> str:
        """List this node's pods into the index; returns the list's resourceVersion."""
        self._doing = "listing pods"
        response = client.core.list_pod_for_all_namespaces(
            field_selector=self.selector, resource_version=None if consistent else "0",
            _preload_content=False, _request_timeout=(CONNECT_TIMEOUT, LIST_TIMEOUT))
        try:
            body = json.loads(response.data)
        finally:
            response.release_conn()
        self._index.replace(pod_info(item, annotations=self.annotations) for item in body.get("items") or ())
        if self._counts["lists"]:
            self._counts["relists"] += 1
        self._counts["lists"] += 1
        if self.state is not WatchState.SYNCED and not self._stopping.is_set():
            log.info("Kubernetes pod watch synced: %d pods on node %s", len(body.get("items") or ()), self.node_name)
            self.state = WatchState.SYNCED
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    def _watch_once(self, client: _Client, version: str) -> str:
        """Apply one watch stream's events; returns the last resourceVersion seen when it ends."""
        self._doing = "watching pods"

        def request(**kwargs: Any) -> Any:
            """The watch request, keeping its response so that stop() can cut the blocked read."""
            self._stream = client.core.list_pod_for_all_namespaces(**kwargs)
            if self._stopping.is_set():
                self._cut_stream()
            return self._stream

        watch = client.watch()
        opened, events = time.monotonic(), 0
        try:
            stream = watch.stream(request, field_selector=self.selector, resource_version=version,
                                  allow_watch_bookmarks=True, timeout_seconds=self.watch_timeout,
                                  _request_timeout=(CONNECT_TIMEOUT, self.watch_timeout + READ_SLACK))
            for event in stream:
                self._apply(event["type"], event["raw_object"])
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

    def _apply(self, kind: str, obj: dict[str, Any]) -> None:
        if kind in ("ADDED", "MODIFIED"):
            self._index.upsert(pod_info(obj, annotations=self.annotations))
        elif kind == "DELETED":
            self._index.remove((obj.get("metadata") or {}).get("uid", ""))
        else:  # BOOKMARK: only moves the resource version, which the Watch tracks
            return
        self._counts["events"] += 1

    def _failed(self, err: Exception) -> None:
        self._counts["errors"] += 1
        self.last_error = f"{self._doing}: {type(err).__name__}: {err}".strip()[:500]
        if self.state is not WatchState.RECONNECTING:
            log.warning("Kubernetes pod watch failed, retrying with backoff: %s", self.last_error)
        else:
            log.debug("Kubernetes pod watch still failing: %s", self.last_error)
        self.state = WatchState.RECONNECTING

    def _backoff(self, failures: int) -> float:
        """Capped exponential, with jitter so that a DaemonSet's agents do not retry in step."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** min(failures, 32))
        return random.uniform(ceiling / 2, ceiling)
