"""The agent's tracing policies: loaded from files or the API, compiled, attached, tracked.

Each policy is its own sensor, so one that fails (a YAML error, a hook this
kernel cannot place, a verifier refusal) is reported with its reason and never
disturbs the others. The same manager serves start-up flags
(--tracing-policy, --tracing-policy-dir) and the API's add, delete, enable,
disable and set-mode.

A policy's states::

    add ──> [loading] ──> loaded ──disable──> disabled ──enable──> loaded
                      └─> error (kept with its reason; enable retries)      delete: from any state

Policies of the start-up flags and the API's add are ``loading`` until the
agent loop has them in (``progress``): from the object cache in milliseconds
each, or once their object is built beside the agent
(tetra/agent/policy_objects.py); the loop keeps draining events and answering
calls meanwhile. Kubernetes objects and ``enable`` load at once.

Disabling closes the sensor (its programs leave the kernel) but keeps the
policy, its id and its mode; enabling compiles and loads it again. The mode
(monitor or enforce) lives in a BPF map, so it changes without reloading.

A policy with ``spec.loader: true`` also holds the loader sensor
(tetra/sensors/loader.py: process_loader events) while it is loaded; the
sensor is attached for the first such policy and detached after the last.

Not thread-safe: bcc objects must only be touched from the agent thread (the
API and the Kubernetes watchers hand their calls over through tetra.agent.commands).
"""

import logging
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tetra.agent.policy_events import LoadedPolicy, PolicyEvents
from tetra.agent.policy_objects import ObjectJob, PolicyObjects
from tetra.compiler.kernel import KernelSupport
from tetra.compiler.plan import kernel_symbols
from tetra.compiler.program import compile_policy
from tetra.enrich.scope import PolicyScope
from tetra.errors import TetraError
from tetra.kernel.btf import Btf
from tetra.policy.errors import PolicyErrors, PolicyIssue, shortened
from tetra.policy.limits import MAX_POLICIES
from tetra.policy.loader import load_policies_report, load_policies_text_report
from tetra.policy.model import TracingPolicy
from tetra.sensors.bpfobj import ObjectSpec
from tetra.sensors.loader import MECHANISMS as LOADER_HOOKS, LoaderSensor
from tetra.sensors.policy import HookCounts, PolicySensor
from tetra.sensors.process import SHARED_TABLES
from tetra.status.model import HookStatus, PolicyLoadState, PolicyStatus

log = logging.getLogger(__name__)
POLICY_SUFFIXES = (".yaml", ".yml", ".json")
MODES = ("enforce", "monitor")


class PolicyNotFound(TetraError):
    """No policy of that name (and namespace) is registered."""


class PolicyConflict(TetraError):
    """The request contradicts the policy's state: a name taken, already enabled, ..."""


class PolicyExists(PolicyConflict):
    """A policy of that name (and namespace) is registered already."""


class PolicyLoadFailed(TetraError):
    """A valid policy that the kernel would not take (compile, verifier, attach)."""


class TooManyPolicies(TetraError):
    """Adding would register more than ``MAX_POLICIES`` policies."""


@dataclass
class PolicyState:
    """What `tetra status` and the summary say about one policy."""

    name: str
    source: str
    state: PolicyLoadState
    mode: str = "enforce"
    error: str = ""
    hooks: list[dict[str, Any]] = field(default_factory=list)
    sensor: PolicySensor | None = None
    id: int = 0
    namespace: str = ""
    policy: TracingPolicy | None = None  # None when the file itself did not load
    scope_cgroups: int | None = None  # pod-scoped policies: how many cgroups they apply to now
    load_seconds: float | None = None  # from the request to attached (building included)
    origin: str = ""  # cache | built | compiled (by bcc in the agent)


@dataclass(eq=False)
class _Loading:
    """A policy on its way in: compiled to C, its object (``job``) found, built or to build."""

    state: PolicyState
    sensor: PolicySensor
    started: float
    job: ObjectJob


class PolicyManager:
    def __init__(self, events: PolicyEvents, btf: Btf, defines: Mapping[str, int | str | None],
                 scope: PolicyScope | None = None, objects: PolicyObjects | None = None) -> None:
        """``scope``: the pods' cgroups for namespaced and pod-selected policies (None: no Kubernetes API,
        so such policies apply to nothing); ``objects``: compiled objects (None: bcc compiles each load)."""
        self.events = events
        self.scope = scope
        self.btf = btf
        self.defines = dict(defines)
        self.support = KernelSupport.detect()
        self.symbols = kernel_symbols() if self.support.kprobe else None
        self.states: dict[int, PolicyState] = {}
        self._next_id = 1
        self.compiles = 0  # policies compiled so far: the agent gives the compiler's memory back after
        self.objects = objects or PolicyObjects(None)
        self._loading: dict[int, _Loading] = {}  # by policy id, in the order they came
        self._batches: list[tuple[list[PolicyState], Future[list[PolicyState]]]] = []  # add_text_later's
        self.loader = LoaderSensor(self.defines)  # attached while a policy with spec.loader is loaded

    def load_paths(self, files: tuple[str, ...], directory: str | None) -> list[PolicyState]:
        """The start-up policies (--tracing-policy, --tracing-policy-dir), loading in the background;
        a directory that is not one is a failed entry of its own, so it is counted and refused like a file."""
        paths = [Path(f) for f in files]
        states: list[PolicyState] = []
        if directory:
            root = Path(directory)
            if not root.is_dir():
                log.error("--tracing-policy-dir %s is not a directory", directory)
                states.append(self._failed(directory, directory, f"--tracing-policy-dir {directory}: not a directory"))
            else:
                paths += sorted(p for p in root.iterdir() if p.suffix in POLICY_SUFFIXES)
        for path in paths:
            states += self.load_file(path, background=True)
        return states

    def load_file(self, path: Path, background: bool = False) -> list[PolicyState]:
        """``background``: the policies stay ``loading`` until ``progress`` has them in."""
        try:
            policies, warnings = load_policies_report(path)
        except PolicyErrors as err:
            log.error("policy file %s rejected:\n%s", path, err)
            return [self._failed(str(path), str(path), str(err))]
        _log_warnings(warnings)
        return [self.add(policy, str(path), background) for policy in policies]

    def add(self, policy: TracingPolicy, source: str, background: bool = False) -> PolicyState:
        """Register and load ``policy``; a failure is kept as an ``error`` state with its reason."""
        state = PolicyState(policy.name, source, PolicyLoadState.LOAD_ERROR, policy.policy_mode, id=self._new_id(),
                            namespace=policy.namespace or "", policy=policy)
        self.states[state.id] = state
        self._load(state, background)
        return state

    @property
    def loading(self) -> int:
        """Policies not in yet (``progress`` brings them)."""
        return len(self._loading)

    def progress(self) -> bool:
        """One step of the background loading, for the agent loop: builds started as cores are
        free and checked without waiting, then at most one policy loaded. True when another
        one could be loaded at once (the loop should not wait for events before calling again)."""
        self.objects.start([loading.job for loading in self._loading.values()])
        self.objects.poll()
        loading = next((one for one in self._loading.values() if one.job.done), None)
        if loading is None:
            return False
        del self._loading[loading.state.id]
        self._load_sensor(loading.state, loading.sensor, loading.started, loading.job.spec, loading.job.origin)
        self._settle_batches()
        return any(one.job.done for one in self._loading.values())

    def counts(self) -> dict[str, int]:
        """How many policies are in each state, and how many of those loaded came from the cache."""
        out: dict[str, int] = {**dict.fromkeys(PolicyLoadState, 0), "cache": 0}
        for state in self.states.values():
            out[state.state] += 1
            out["cache"] += state.state is PolicyLoadState.ENABLED and state.origin == "cache"
        return out

    def add_text(self, text: str, source: str = "api") -> list[PolicyState]:
        """``add_policies`` of the policies of ``text``, validated on this thread (raises PolicyErrors)."""
        policies, warnings = load_policies_text_report(text, source)
        return self.add_policies(policies, warnings, source)

    def add_policies(self, policies: list[TracingPolicy], warnings: list[PolicyIssue],
                     source: str) -> list[PolicyState]:
        """An add of policies validated already: every one loads, or none stays.

        Raises PolicyExists (a name already registered), TooManyPolicies (``MAX_POLICIES``)
        or PolicyLoadFailed (the kernel refused one).
        """
        states = [self.add(policy, source) for policy in self._admit(policies, warnings)]
        self._all_or_none(states)
        return states

    def add_policies_later(self, policies: list[TracingPolicy], warnings: list[PolicyIssue],
                           source: str) -> "Future[list[PolicyState]]":
        """The API's add: ``add_policies`` without waiting for them to load. The API validates a
        request on its own thread, so that a costly document never holds up the agent loop; what
        stops the add at once (a name taken, too many policies) is raised here; the loading goes on
        in the agent loop (``progress``), which keeps serving events and calls meanwhile, and
        completes the future with the states (or PolicyLoadFailed)."""
        states = [self.add(policy, source, background=True) for policy in self._admit(policies, warnings)]
        batch: Future[list[PolicyState]] = Future()
        batch.set_running_or_notify_cancel()
        self._batches.append((states, batch))
        self._settle_batches()
        return batch

    def withdraw(self, batch: "Future[list[PolicyState]]") -> None:
        """An ``add_policies_later`` whose caller stopped waiting: its policies go, loaded or not."""
        for states, future in list(self._batches):
            if future is batch:
                self._batches.remove((states, future))
                self._remove_all(states)
                future.set_exception(PolicyLoadFailed("withdrawn: not loaded in time"))
        if batch.done() and not batch.exception():
            self._remove_all(batch.result())

    def _admit(self, policies: list[TracingPolicy], warnings: list[PolicyIssue]) -> list[TracingPolicy]:
        """``policies`` if none of their names is taken and there is room for them all
        (PolicyExists, TooManyPolicies)."""
        _log_warnings(warnings)
        for policy in policies:
            if self._find(policy.name, policy.namespace or "") is not None:
                raise PolicyExists(f"policy {_label(policy.name, policy.namespace or '')} already exists: "
                                   "delete it first")
        if len(self.states) + len(policies) > MAX_POLICIES:
            adding = "one more" if len(policies) == 1 else f"{len(policies)} more"
            raise TooManyPolicies(f"{len(self.states)} policies are registered and at most {MAX_POLICIES} may be "
                                  f"at once: delete some before adding {adding}")
        return policies

    def _all_or_none(self, states: list[PolicyState]) -> None:
        """One failed: all of them are removed, and PolicyLoadFailed says why."""
        failed = [s for s in states if s.state is PolicyLoadState.LOAD_ERROR]
        if failed:
            self._remove_all(states)
            raise PolicyLoadFailed("; ".join(f"policy {s.name} not loaded: {s.error}" for s in failed))

    def _settle_batches(self) -> None:
        """Complete the futures of ``add_policies_later`` whose policies are all in (or failed, or gone)."""
        for batch in list(self._batches):
            states, future = batch
            if any(s.state is PolicyLoadState.LOADING and s.id in self.states for s in states):
                continue
            self._batches.remove(batch)
            try:
                self._all_or_none([s for s in states if s.id in self.states])
            except PolicyLoadFailed as err:
                future.set_exception(err)
            else:
                future.set_result(states)

    def _remove_all(self, states: list[PolicyState]) -> None:
        """Unload and forget ``states`` still registered (an add that cannot stand as a whole)."""
        for state in states:
            if state.id in self.states:
                self._remove(state)

    def delete(self, name: str, namespace: str = "") -> None:
        state = self.get(name, namespace)
        self._remove(state)
        log.info("policy %s deleted", state.name)

    def disable(self, name: str, namespace: str = "") -> PolicyState:
        state = self.get(name, namespace)
        if state.state is not PolicyLoadState.ENABLED:
            raise PolicyConflict(f"policy {_label(name, namespace)} is not enabled (it is {state.state})")
        self._unload(state)
        state.state = PolicyLoadState.DISABLED
        log.info("policy %s disabled", state.name)
        return state

    def enable(self, name: str, namespace: str = "") -> PolicyState:
        """Load a disabled policy (or retry one in error) again, in its current mode."""
        state = self.get(name, namespace)
        if state.state in (PolicyLoadState.ENABLED, PolicyLoadState.LOADING):
            already = "enabled already" if state.state is PolicyLoadState.ENABLED else "loading"
            raise PolicyConflict(f"policy {_label(name, namespace)} is {already}")
        if state.policy is None:
            raise PolicyConflict(f"policy {_label(name, namespace)} never loaded: {state.error}")
        self._load(state)
        if state.state is PolicyLoadState.LOAD_ERROR:
            raise PolicyLoadFailed(f"policy {state.name} not loaded: {state.error}")
        return state

    def set_mode(self, name: str, mode: str, namespace: str = "") -> PolicyState:
        """monitor: Sigkill, Signal and Override are reported, not done; enforce: done. Applies at once."""
        if mode not in MODES:
            raise PolicyConflict(f"unknown mode {mode!r}: use monitor or enforce")
        state = self.get(name, namespace)
        if state.sensor is not None:
            state.sensor.set_mode(monitoring=mode == "monitor")
        state.mode = mode
        log.info("policy %s in %s mode", state.name, mode)
        return state

    def refresh_scopes(self, loaded: PolicyState | None = None) -> None:
        """Follow pods and containers: re-apply every scoped policy's cgroups when they changed, and
        give a just ``loaded`` scoped policy its cgroups in any case."""
        scoped = [s for s in self.states.values() if s.sensor is not None and s.scope_cgroups is not None]
        if scoped and self.scope is not None and self.scope.refresh():
            targets = scoped  # a change seen here is seen once: every scoped policy takes it
        else:
            targets = [loaded] if loaded is not None else []
        for state in targets:
            self._apply_scope(state)

    def _apply_scope(self, state: PolicyState) -> None:
        assert state.sensor is not None and state.policy is not None
        cgroups = self.scope.cgroups(state.policy) if self.scope is not None else set()
        state.sensor.set_scope(cgroups)
        state.scope_cgroups = len(cgroups)

    def get(self, name: str, namespace: str = "") -> PolicyState:
        state = self._find(name, namespace)
        if state is None:
            raise PolicyNotFound(f"no policy {_label(name, namespace)}")
        return state

    def summary(self) -> list[PolicyStatus]:
        """Every policy's state, with its hooks' kernel counters once loaded; on the agent thread."""
        return [self._status(state) for state in self.states.values()]

    def _status(self, state: PolicyState) -> PolicyStatus:
        counts = self._hook_counts(state)
        hooks = tuple(HookStatus(h["hook"], h["mechanism"], h["attach"], h["return"],
                                 *((counts[i].seen, counts[i].posted) if counts is not None and i in counts else ()))
                      for i, h in enumerate(state.hooks))
        return PolicyStatus(state.id, state.name, state.source, state.state, state.mode, hooks, state.namespace,
                            state.error, state.scope_cgroups, state.load_seconds, state.origin)

    @staticmethod
    def _hook_counts(state: PolicyState) -> "dict[int, HookCounts] | None":
        """The kernel's per-hook counters; None when not loaded, or when the map could not be read
        (said in the log: a status or the exit summary must not fail for it)."""
        if state.sensor is None:
            return None
        try:
            return state.sensor.hook_counts()
        except KeyError:  # bcc's answer to any failed map lookup
            log.warning("policy %s: its hook counters could not be read from the kernel", state.name)
            return None

    def close(self) -> None:
        for state in self.states.values():
            self._unload(state)
        for _, future in self._batches:
            future.set_exception(PolicyLoadFailed("the agent stopped before the policy was loaded"))
        self._batches.clear()

    # -- internals --------------------------------------------------------------------

    def _new_id(self) -> int:
        policy_id = self._next_id
        self._next_id += 1
        return policy_id

    def _find(self, name: str, namespace: str) -> PolicyState | None:
        return next((s for s in self.states.values() if s.name == name and s.namespace == namespace), None)

    def _load(self, state: PolicyState, background: bool = False) -> None:
        """Compile, load and attach ``state.policy`` under its id and mode; errors are kept in the state.
        ``background``: what is not in the cache is built by ``progress``, the state ``loading`` until then."""
        policy = state.policy
        assert policy is not None
        started = time.monotonic()
        try:
            compiled = compile_policy(policy, state.id, self.support, self.btf, self.symbols)
            sensor = PolicySensor(compiled, self.defines)
            request = sensor.build_request(SHARED_TABLES) if self.objects.usable else None
            if request is None:
                self._load_sensor(state, sensor, started, None, "compiled")
                return
            job = self.objects.job(policy.name, request)
        except TetraError as err:
            self._error(state, err)
            return
        except Exception as err:
            self._internal_error(state, err)
            return
        if background:
            state.state, state.error = PolicyLoadState.LOADING, ""
            self._loading[state.id] = _Loading(state, sensor, started, job)
            return
        if not job.done:
            self.objects.build_now(job)
        self._load_sensor(state, sensor, started, job.spec, job.origin)

    def _load_sensor(self, state: PolicyState, sensor: PolicySensor, started: float, spec: ObjectSpec | None,
                     origin: str) -> None:
        policy = state.policy
        assert policy is not None
        try:
            if spec is None:
                self.compiles += 1
            if policy.spec.loader:
                self.loader.acquire(state.id)
            sensor.load(monitoring=state.mode == "monitor", obj=spec, shared=self.objects.shared)
        except TetraError as err:  # PolicyErrors, SensorError, BtfError: all reported the same way
            self.loader.release(state.id)
            self._error(state, err)
            return
        except Exception as err:
            self.loader.release(state.id)
            self._internal_error(state, err)
            return
        compiled = sensor.compiled
        state.sensor, state.state, state.error = sensor, PolicyLoadState.ENABLED, ""
        state.load_seconds, state.origin = time.monotonic() - started, origin
        if policy.scoped:  # attached with an empty scope: nothing is seen until the cgroups are in
            state.scope_cgroups = 0
            if self.scope is None:
                log.warning("policy %s applies to pods, and the Kubernetes API is off (--enable-k8s-api): "
                            "it applies to no process", policy.name)
            self.refresh_scopes(loaded=state)
        self.events.add(state.id, LoadedPolicy(compiled, sensor.stack_symbols))
        state.hooks = [{"hook": h.function_name, "mechanism": h.mechanism.value, "attach": h.attach,
                        "return": h.return_attach is not None} for h in compiled.hooks]
        if policy.spec.loader:  # the loader sensor's, after the policy's own (whose counters are by index)
            state.hooks += [{"hook": "loader", "mechanism": mechanism, "attach": attach, "return": False}
                            for attach, mechanism in LOADER_HOOKS.items()]
        log.info("policy %s loaded in %.2fs (%s): %s", policy.name, state.load_seconds,
                 _ORIGINS[origin], ", ".join(f"{h['hook']} ({h['mechanism']})" for h in state.hooks) or "no hooks")

    def _error(self, state: PolicyState, err: TetraError) -> None:
        """PolicyErrors, SensorError, BtfError: all reported the same way."""
        log.error("policy %s (%s) not loaded:\n%s", state.name, state.source, err)
        state.state, state.error = PolicyLoadState.LOAD_ERROR, str(err)

    def _internal_error(self, state: PolicyState, err: Exception) -> None:
        """A bug of ours must not take the other policies down."""
        log.exception("policy %s (%s) not loaded: internal error", state.name, state.source)
        state.state, state.error = PolicyLoadState.LOAD_ERROR, f"internal error: {err!r}"

    def _unload(self, state: PolicyState) -> None:
        """Detach the sensor (or stop its loading); events of the policy still in the ring buffer are
        counted as policy_unknown."""
        if self._loading.pop(state.id, None) is not None:  # its build goes on only if another policy waits for it
            self.objects.cancel({id(loading.job) for loading in self._loading.values()})
        if state.sensor is not None:
            state.sensor.close()
            state.sensor = None
        self.loader.release(state.id)
        state.scope_cgroups = None
        self.events.remove(state.id)

    def _remove(self, state: PolicyState) -> None:
        self._unload(state)
        self.states.pop(state.id, None)
        self._settle_batches()  # an add waiting for this one (deleted while loading) is answered

    def _failed(self, name: str, source: str, error: str) -> PolicyState:
        state = PolicyState(name, source, PolicyLoadState.LOAD_ERROR, error=error, id=self._new_id())
        self.states[state.id] = state
        return state


_ORIGINS = {"cache": "from the cache", "built": "built, now cached", "compiled": "compiled in the agent"}


def _log_warnings(warnings: list[PolicyIssue]) -> None:
    """What validation accepted with a warning (a selector that matches every call, ...) goes to the log."""
    for warning in warnings:
        log.warning("%s", warning)


def _label(name: str, namespace: str) -> str:
    """A policy's name for a message: names come from API requests too, so they are shortened."""
    return shortened(f"{namespace}/{name}" if namespace else name)
