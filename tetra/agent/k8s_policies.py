"""TracingPolicy and TracingPolicyNamespaced objects of the Kubernetes API, loaded live.

::

    PolicyWatcher thread, one per kind                     agent thread (its loop drains the CommandQueue)
    (tetra.k8s.listwatch: list, watch, 410, backoff)
      list: each object changed? ──────── load ──┐
      ADDED/MODIFIED: changed? ────────── load ──┼─ HandOff ──> load_object / unload_object ──> PolicyManager
      DELETED, or missing from a list ── unload ─┘ (CommandQueue)      │
            <────────────── LoadOutcome: loaded | error, and why ──────┘
      PATCH .../<name>/status  {status: {nodes: {<node>: {state, error, mode, observedGeneration}}}}

What it promises:

- **Changed** means another uid, or another policy text (kind, name,
  namespace, spec): status and metadata updates, our own status writes
  among them, never reload a policy. A list (the first one, or after a 410
  Gone or a reconnect) reconciles: objects that vanished are unloaded,
  changed ones reloaded, the others left alone.
- **Replacing** is delete, then add, as Tetragon does: when the new version
  does not load, the old one is gone too and the status says why. The kernel
  never runs a spec that the object no longer has.
- **A name taken** by a policy from a file or the API is a conflict: that
  policy stays, this object's status says so, and deleting the object leaves
  the other alone.
- **Status** is this node's entry of ``status.nodes``, written with a JSON
  merge patch on the status subresource, so that every agent of a DaemonSet
  writes its own entry without reading or racing the others. A failed write
  is logged, counted, and tried again when the object is next seen (a list
  or an event); it never stops the watch.
- **The API away**: loaded policies keep running; the list after the
  reconnect reconciles.

The watcher threads never touch the PolicyManager (bcc objects live on the
agent thread): every load and unload is a function handed to the agent
thread through a CommandQueue (the agent's one, shared with the API), and
the thread waits for its outcome.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Any

import yaml

from tetra.agent.policies import PolicyManager, PolicyNotFound
from tetra.agent.commands import CommandQueue
from tetra.errors import TetraError
from tetra.k8s.listwatch import CONNECT_TIMEOUT, LIST_TIMEOUT, NO_CONFIGURATION, ListWatcher, WatchState, config_source
from tetra.status.model import PolicyLoadState

log = logging.getLogger(__name__)

GROUP, VERSION = "cilium.io", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "tetra-agent"
COMMAND_TIMEOUT = 60.0  # seconds for the agent thread to take a load (it may be compiling other policies)
MAX_STATUS_ERROR = 2000  # characters of a load error kept in the status


@dataclass(frozen=True, slots=True)
class Kind:
    """One of the two custom resources."""

    name: str  # TracingPolicy | TracingPolicyNamespaced
    plural: str
    namespaced: bool


TRACING_POLICY = Kind("TracingPolicy", "tracingpolicies", namespaced=False)
TRACING_POLICY_NAMESPACED = Kind("TracingPolicyNamespaced", "tracingpoliciesnamespaced", namespaced=True)
KINDS = (TRACING_POLICY, TRACING_POLICY_NAMESPACED)


@dataclass(frozen=True, slots=True)
class PolicyObject:
    """One object as the agent loads it: ``text`` is the YAML of its apiVersion, kind, name, namespace and spec."""

    kind: str
    name: str
    namespace: str  # "" for a cluster-wide TracingPolicy
    uid: str
    generation: int
    text: str

    @classmethod
    def from_object(cls, kind: Kind, obj: dict[str, Any]) -> "PolicyObject":
        """Only what defines the policy goes into the text: labels, annotations (kubectl's
        last-applied copy among them) and status never make it differ."""
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        namespace = str(meta.get("namespace") or "") if kind.namespaced else ""
        document = {"apiVersion": API_VERSION, "kind": kind.name,
                    "metadata": {"name": name, "namespace": namespace} if namespace else {"name": name},
                    "spec": obj.get("spec")}
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1 << 16)
        return cls(kind.name, name, namespace, str(meta.get("uid") or ""), int(meta.get("generation") or 0), text)

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @property
    def source(self) -> str:
        """Where the policy came from, in `tetra tracingpolicy list` and in its error locations."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"k8s:{self.kind}/{where}"


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    state: PolicyLoadState  # ENABLED or LOAD_ERROR
    error: str = ""
    mode: str = ""  # enforce | monitor, when loaded


def load_object(manager: PolicyManager, obj: PolicyObject) -> LoadOutcome:
    """On the agent thread: load the object's policy, replacing its previous version; never another's."""
    try:
        current = manager.get(obj.name, obj.namespace)
    except PolicyNotFound:
        current = None
    if current is not None:
        if current.source != obj.source:
            return LoadOutcome(PolicyLoadState.LOAD_ERROR, f"a policy named {obj.name!r} is loaded already, from {current.source}: "
                                        "this one is not loaded (rename one of them)")
        manager.delete(obj.name, obj.namespace)
    try:
        (state,) = manager.add_text(obj.text, obj.source)
    except TetraError as err:  # PolicyErrors (file:line:col), PolicyLoadFailed (compile, verifier, attach)
        return LoadOutcome(PolicyLoadState.LOAD_ERROR, str(err))
    return LoadOutcome(PolicyLoadState.ENABLED, mode=state.mode)


def unload_object(manager: PolicyManager, obj: PolicyObject) -> None:
    """On the agent thread: unload the object's policy, if it is loaded and is this object's."""
    try:
        current = manager.get(obj.name, obj.namespace)
    except PolicyNotFound:
        return
    if current.source == obj.source:
        manager.delete(obj.name, obj.namespace)


class HandOff:
    """The watcher threads' way to the agent thread: each call waits until the agent loop has run it.

    ``load`` and ``unload`` run on the agent thread only, inside ``run_pending``.
    A call the agent does not take within ``timeout`` never runs and raises
    CommandTimeout (the watcher lists again later); after ``close`` every call
    raises AgentUnavailable.
    """

    def __init__(self, load: Callable[[PolicyObject], LoadOutcome], unload: Callable[[PolicyObject], None],
                 timeout: float = COMMAND_TIMEOUT, commands: CommandQueue | None = None) -> None:
        """``commands``: the agent's one queue, which its loop drains (None: a queue of our own,
        drained by ``run_pending``)."""
        self._load = load
        self._unload = unload
        self.timeout = timeout
        self._commands = commands or CommandQueue()

    def load(self, obj: PolicyObject) -> LoadOutcome:
        return self._commands.call(partial(self._load, obj), self.timeout)

    def unload(self, obj: PolicyObject) -> None:
        self._commands.call(partial(self._unload, obj), self.timeout)

    def run_pending(self) -> None:
        """The agent thread, on every loop turn."""
        self._commands.run_pending()

    def close(self) -> None:
        self._commands.close()


@dataclass
class _Record:
    """What the watcher last did for one object."""

    obj: PolicyObject
    outcome: LoadOutcome
    status_written: bool = False


@dataclass(frozen=True, slots=True)
class PolicyWatchStatus:
    """A snapshot of one kind's watch."""

    kind: str
    state: WatchState
    last_error: str
    objects: int  # seen and not deleted, loaded or not
    loaded: int
    loads: int  # load attempts, failed ones included
    unloads: int
    status_writes: int
    status_errors: int  # failed status writes (each retried when its object is seen again)
    watch: dict[str, int]  # ListWatcher's counts: events, lists, relists, watch_restarts, errors


class PolicyWatcher(ListWatcher):
    """The objects of one kind, every namespace, loaded on the agent thread through ``hand_off``."""

    def __init__(self, kind: Kind, node: str, kubeconfig: str | None, hand_off: HandOff, **options: Any) -> None:
        """``node`` names this agent's entry in the objects' status; ``options`` are ListWatcher's."""
        super().__init__(kubeconfig, log, **options)
        self.kind = kind
        self.node = node
        self.feature = f"{kind.name} objects"
        self.label = f"Kubernetes {kind.name} watch"
        self.what = kind.plural
        self._hand_off = hand_off
        self._records: dict[tuple[str, str], _Record] = {}
        self._api: Any = None  # kubernetes.client.CustomObjectsApi of the current connection
        self._tally = {"loads": 0, "unloads": 0, "status_writes": 0, "status_errors": 0}
        self._status_failing = False  # the last status write failed: say so once, not for every retry

    @property
    def watching(self) -> str:
        resource = f"{self.kind.plural}.{GROUP}"
        return f"{resource} in every namespace" if self.kind.namespaced else resource

    def status(self) -> PolicyWatchStatus:
        return PolicyWatchStatus(kind=self.kind.name, state=self.state, last_error=self.last_error,
                                 objects=len(self._records), loaded=self._loaded(), **self._tally,
                                 watch=self.counts())

    def _loaded(self) -> int:
        return sum(record.outcome.state is PolicyLoadState.ENABLED for record in list(self._records.values()))

    # ── ListWatcher's hooks, on this watcher's thread ───────────────────────────────────────

    def _bind(self, client: ModuleType, api_client: Any) -> Callable[..., Any]:
        self._api = client.CustomObjectsApi(api_client)
        if self.kind.namespaced:
            return partial(self._api.list_custom_object_for_all_namespaces, GROUP, VERSION, self.kind.plural)
        return partial(self._api.list_cluster_custom_object, GROUP, VERSION, self.kind.plural)

    def _replace(self, items: list[dict[str, Any]]) -> str:
        listed = {obj.key: obj for obj in (PolicyObject.from_object(self.kind, item) for item in items)}
        for key in [key for key in self._records if key not in listed]:
            self._unload(key)  # first: what vanished frees its place before anything loads
        for obj in listed.values():
            self._sync(obj)
        return f"{len(listed)} objects, {self._loaded()} loaded"

    def _apply(self, kind: str, obj: dict[str, Any]) -> bool:
        if kind in ("ADDED", "MODIFIED"):
            self._sync(PolicyObject.from_object(self.kind, obj))
        elif kind == "DELETED":
            self._unload(PolicyObject.from_object(self.kind, obj).key)
        else:  # BOOKMARK
            return False
        return True

    # ── loading, unloading, status ──────────────────────────────────────────────────────────

    def _sync(self, obj: PolicyObject) -> None:
        """Load ``obj`` if it is new or changed; else only retry a status write that failed."""
        record = self._records.get(obj.key)
        if record is not None and (record.obj.uid, record.obj.text) == (obj.uid, obj.text):
            if not record.status_written:
                self._write_status(record)
            return
        with self._doing_now(f"loading {obj.source}"):
            outcome = self._hand_off.load(obj)
        self._tally["loads"] += 1
        if outcome.state is PolicyLoadState.ENABLED:
            log.info("%s: loaded (generation %d)", obj.source, obj.generation)
        else:
            log.warning("%s: not loaded: %s", obj.source, outcome.error)
        record = self._records[obj.key] = _Record(obj, outcome)
        self._write_status(record)

    def _unload(self, key: tuple[str, str]) -> None:
        record = self._records.get(key)
        if record is None:
            return
        with self._doing_now(f"unloading {record.obj.source}"):
            self._hand_off.unload(record.obj)
        self._tally["unloads"] += 1
        del self._records[key]
        unloaded = ", policy unloaded" if record.outcome.state is PolicyLoadState.ENABLED else ""
        log.info("%s: object gone%s", record.obj.source, unloaded)

    def _write_status(self, record: _Record) -> None:
        obj, outcome = record.obj, record.outcome
        entry = {"state": outcome.state.value, "error": outcome.error[:MAX_STATUS_ERROR] or None,
                 "mode": outcome.mode or None, "observedGeneration": obj.generation}
        body = {"status": {"nodes": {self.node: entry}}}  # null removes a key in a merge patch
        options: dict[str, Any] = {"field_manager": FIELD_MANAGER, "_request_timeout": (CONNECT_TIMEOUT, LIST_TIMEOUT)}
        try:
            if obj.namespace:
                self._api.patch_namespaced_custom_object_status(GROUP, VERSION, obj.namespace, self.kind.plural,
                                                                obj.name, body, **options)
            else:
                self._api.patch_cluster_custom_object_status(GROUP, VERSION, self.kind.plural, obj.name, body,
                                                             **options)
        except Exception as err:  # noqa: BLE001  a status is a report: failing to write it stops nothing
            self._tally["status_errors"] += 1
            record.status_written = False
            say = log.debug if self._status_failing else log.warning
            say("%s: status not written (tried again when the object is next seen): %s: %s",
                obj.source, type(err).__name__, str(err).strip()[:300])
            self._status_failing = True
            return
        self._tally["status_writes"] += 1
        record.status_written = True
        self._status_failing = False


class K8sPolicies:
    """Both kinds watched, and the hand-off that the agent loop drains."""

    def __init__(self, node: str, kubeconfig: str | None, load: Callable[[PolicyObject], LoadOutcome],
                 unload: Callable[[PolicyObject], None], *, command_timeout: float = COMMAND_TIMEOUT,
                 commands: CommandQueue | None = None, **options: Any) -> None:
        """``load`` and ``unload`` run on the agent thread (see ``for_manager``), handed over through
        ``commands``, which has ``command_timeout`` seconds to take each; ``options`` are
        ListWatcher's (timeouts, backoff)."""
        self.kubeconfig = kubeconfig
        self.hand_off = HandOff(load, unload, command_timeout, commands)
        self.watchers = [PolicyWatcher(kind, node, kubeconfig, self.hand_off, **options) for kind in KINDS]

    @classmethod
    def for_manager(cls, manager: PolicyManager, node: str, kubeconfig: str | None,
                    commands: CommandQueue | None = None) -> "K8sPolicies":
        return cls(node, kubeconfig, partial(load_object, manager), partial(unload_object, manager),
                   commands=commands)

    def start(self) -> None:
        """Start both watches, or say once why there are none (no kubeconfig, not in a pod)."""
        if not config_source(self.kubeconfig):
            log.warning("TracingPolicy objects are not watched: %s", NO_CONFIGURATION)
            return
        for watcher in self.watchers:
            watcher.start()

    def run_pending(self) -> None:
        """The agent thread, on every loop turn: run the loads and unloads the watchers handed over."""
        self.hand_off.run_pending()

    def stop(self) -> None:
        """Stop both watches; a watcher waiting for the agent thread is released at once."""
        for watcher in self.watchers:
            watcher.halt()
        self.hand_off.close()
        for watcher in self.watchers:
            watcher.stop()

    def status(self) -> list[PolicyWatchStatus]:
        return [watcher.status() for watcher in self.watchers]
