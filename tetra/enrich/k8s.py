"""Pods of this node from the Kubernetes API, kept current in a background thread.

::

    tetra.k8s.listwatch.ListWatcher thread: list (fieldSelector spec.nodeName=<node>) then watch
        every list ──> PodIndex.replace      every ADDED/MODIFIED/DELETED ──> PodIndex.upsert/remove
    RuntimeHook (API thread): a container being created ──> PodIndex.add_container
                                                  └──> lookup() from the pipeline thread, from memory

The list/watch loop (410 Gone, backoff, reconnects, states) is shared with the
TracingPolicy watcher and described in tetra.k8s.listwatch; this module says
which pods, and what their events change.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Any

from tetra.enrich.podindex import IndexSizes, PodIndex
from tetra.enrich.pods import PodInfo, pod_info
from tetra.enrich.runtime_hook import HookedContainer
from tetra.k8s.listwatch import ListWatcher, WatchState

log = logging.getLogger(__name__)

__all__ = ["PodWatcher", "WatchState", "WatcherStatus"]


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


class PodWatcher(ListWatcher):
    """Lists then watches this node's pods; ``lookup`` answers from memory, never from the network."""

    feature = "Kubernetes pod enrichment"
    label = "Kubernetes pod watch"
    what = "pods"

    def __init__(self, node_name: str, kubeconfig: str | None = None, *, deleted_ttl: float = 120.0,
                 annotations: bool = False, watch_timeout: int = 300, backoff_initial: float = 0.5,
                 backoff_max: float = 30.0) -> None:
        """Deleted pods and replaced containers still resolve for ``deleted_ttl``
        seconds. ``annotations`` keeps pod annotations for ``pod_annotations``.
        The rest is ListWatcher's."""
        super().__init__(kubeconfig, log, watch_timeout=watch_timeout, backoff_initial=backoff_initial,
                         backoff_max=backoff_max)
        self.node_name = node_name
        self.annotations = annotations
        self._index = PodIndex(deleted_ttl)
        self._lookups = 0
        self._misses = 0

    @property
    def selector(self) -> str:
        return f"spec.nodeName={self.node_name}"

    @property
    def watching(self) -> str:
        return f"pods with {self.selector}"

    def pods(self) -> tuple[int, list[PodInfo]]:
        """(version, the live pods of this node), for pod-scoped policies (tetra/enrich/scope.py)."""
        return self._index.snapshot()

    def lookup(self, container_id: str, pod_uid: str = "") -> PodInfo | None:
        """The pod of a container (bare id, full or the 31-character ``docker`` prefix), else of a pod uid.

        Thread-safe and answered from memory. Deleted pods resolve for the TTL.
        """
        pod = self._index.lookup(container_id, pod_uid)
        self._lookups += 1
        if pod is None:
            self._misses += 1
        return pod

    def add_container(self, hooked: HookedContainer) -> bool:
        """A container the runtime is creating (RuntimeHook): its first events find their pod.
        Thread-safe; False when the pod lists the container already."""
        return self._index.add_container(hooked)

    def status(self) -> WatcherStatus:
        return WatcherStatus(state=self.state, last_error=self.last_error, source=self.source,
                             lookups=self._lookups, misses=self._misses, sizes=self._index.sizes(),
                             **self.counts())

    def _bind(self, client: ModuleType, api_client: Any) -> Callable[..., Any]:
        return partial(client.CoreV1Api(api_client).list_pod_for_all_namespaces, field_selector=self.selector)

    def _replace(self, items: list[dict[str, Any]]) -> str:
        self._index.replace(pod_info(item, annotations=self.annotations) for item in items)
        return f"{len(items)} pods on node {self.node_name}"

    def _apply(self, kind: str, obj: dict[str, Any]) -> bool:
        if kind in ("ADDED", "MODIFIED"):
            self._index.upsert(pod_info(obj, annotations=self.annotations))
        elif kind == "DELETED":
            self._index.remove((obj.get("metadata") or {}).get("uid", ""))
        else:  # BOOKMARK: only moves the resource version, which the Watch tracks
            return False
        return True
