"""The pods of this node, found by container id or pod uid, and the recently gone ones.

::

    watcher thread ── replace() after a list ──┐
                   ── upsert() / remove()  ────┤
    API thread ────── add_container() ─────────┤──> live:  container id[:31] -> (full id, PodInfo)
                                               │           pod uid          -> PodInfo
                                               └──> gone:  the same, each until now + ttl
    pipeline thread ── lookup(container id, pod uid) ──> live, else gone and not yet expired

Events lag behind the kernel: a process's exit (or a kprobe it hit just
before) is read after its pod was deleted, or after its container restarted
under a new id. Whatever leaves the live index therefore stays findable for
``ttl`` seconds. Containers are keyed by the first 31 characters of their id,
so the ``docker`` field of a process (Tetragon's 31-character prefix) finds its
pod as well as the full id does.

All methods take one lock: writes come from the watcher thread (and the API's
RuntimeHook), lookups from the pipeline.
"""

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from tetra.enrich.pods import PodInfo
from tetra.enrich.runtime_hook import HookedContainer
from tetra.process.container import DOCKER_FIELD_LEN


@dataclass(frozen=True, slots=True)
class IndexSizes:
    pods: int
    containers: int
    gone_pods: int
    gone_containers: int


class PodIndex:
    """Thread-safe pod lookup with a time-limited memory of pods and containers that went away."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._pods: dict[str, PodInfo] = {}
        self._containers: dict[str, tuple[str, PodInfo]] = {}
        self._gone_pods: dict[str, tuple[float, PodInfo]] = {}
        self._gone_containers: dict[str, tuple[float, str, PodInfo]] = {}
        self._expiry: deque[tuple[float, str, str]] = deque()  # (deadline, "pod"|"container", key), in order
        self._version = 0  # counts changes of the live pods, so readers can tell "nothing new"

    def lookup(self, container_id: str, pod_uid: str = "") -> PodInfo | None:
        """The pod of a container (full id or its first 31 characters), else of the pod uid."""
        key = container_id[:DOCKER_FIELD_LEN]
        now = self._clock()
        with self._lock:
            if key:
                live = self._containers.get(key)
                if live is not None and live[0].startswith(container_id):
                    return live[1]
                gone = self._gone_containers.get(key)
                if gone is not None and gone[0] > now and gone[1].startswith(container_id):
                    return gone[2]
            if pod_uid:
                pod = self._pods.get(pod_uid)
                if pod is not None:
                    return pod
                gone_pod = self._gone_pods.get(pod_uid)
                if gone_pod is not None and gone_pod[0] > now:
                    return gone_pod[1]
        return None

    def snapshot(self) -> tuple[int, list[PodInfo]]:
        """(version, the live pods): the version changes whenever the pods do."""
        with self._lock:
            return self._version, list(self._pods.values())

    def replace(self, pods: Iterable[PodInfo]) -> None:
        """The complete set of pods (a fresh list): pods and containers not in it are gone."""
        fresh = {pod.uid: pod for pod in pods}
        with self._lock:
            self._version += 1
            for uid in [uid for uid in self._pods if uid not in fresh]:
                self._remove(uid)
            for pod in fresh.values():
                self._upsert(pod)
            self._purge()

    def upsert(self, pod: PodInfo) -> None:
        """A pod was added or changed; containers it no longer lists are gone."""
        with self._lock:
            self._version += 1
            self._upsert(pod)
            self._purge()

    def add_container(self, hooked: HookedContainer) -> bool:
        """A container its runtime is creating (tetra/enrich/runtime_hook.py): added to its pod, or
        to a pod known from the hook alone until the watcher lists it. False: the pod lists it already."""
        with self._lock:
            pod = self._pods.get(hooked.pod_uid)
            if pod is not None and hooked.container_id in pod.containers:
                return False
            if pod is None:
                pod = PodInfo(namespace=hooked.pod_namespace, name=hooked.pod_name, uid=hooked.pod_uid, labels={},
                              annotations=None, workload="", workload_kind="", containers={})
            self._version += 1
            self._upsert(replace(pod, containers={**pod.containers, hooked.container_id: hooked.container}))
            self._purge()
            return True

    def remove(self, uid: str) -> None:
        """A pod was deleted."""
        with self._lock:
            self._version += 1
            self._remove(uid)
            self._purge()

    def sizes(self) -> IndexSizes:
        with self._lock:
            self._purge()
            return IndexSizes(len(self._pods), len(self._containers), len(self._gone_pods),
                              len(self._gone_containers))

    def _upsert(self, pod: PodInfo) -> None:
        old = self._pods.get(pod.uid)
        self._pods[pod.uid] = pod
        self._gone_pods.pop(pod.uid, None)
        if old is not None:
            for cid in old.containers.keys() - pod.containers.keys():
                self._forget_container(cid, old)
        for cid in pod.containers:
            key = cid[:DOCKER_FIELD_LEN]
            self._containers[key] = (cid, pod)
            self._gone_containers.pop(key, None)

    def _remove(self, uid: str) -> None:
        pod = self._pods.pop(uid, None)
        if pod is None:
            return
        deadline = self._clock() + self.ttl
        self._gone_pods[uid] = (deadline, pod)
        self._expiry.append((deadline, "pod", uid))
        for cid in pod.containers:
            self._forget_container(cid, pod)

    def _forget_container(self, cid: str, pod: PodInfo) -> None:
        key = cid[:DOCKER_FIELD_LEN]
        if self._containers.get(key, ("", None))[0] != cid:
            return  # another pod has it now (cannot happen with real ids; keep the live one)
        del self._containers[key]
        deadline = self._clock() + self.ttl
        self._gone_containers[key] = (deadline, cid, pod)
        self._expiry.append((deadline, "container", key))

    def _purge(self) -> None:
        """Drop what expired; entries revived or re-deleted since keep their newer deadline."""
        now = self._clock()
        while self._expiry and self._expiry[0][0] <= now:
            deadline, kind, key = self._expiry.popleft()
            if kind == "pod":
                if self._gone_pods.get(key, (None,))[0] == deadline:
                    del self._gone_pods[key]
            elif self._gone_containers.get(key, (None,))[0] == deadline:
                del self._gone_containers[key]
