"""The agent's tracing policies: loaded from files or the API, compiled, attached, tracked.

Each policy is its own sensor, so one that fails (a YAML error, a hook this
kernel cannot place, a verifier refusal) is reported with its reason and never
disturbs the others. The same manager serves start-up flags
(--tracing-policy, --tracing-policy-dir) and the API's add, delete, enable,
disable and set-mode.

A policy's states::

    add ──> loaded ──disable──> disabled ──enable──> loaded
        └─> error (kept with its reason; enable retries)      delete: from any state

Disabling closes the sensor (its programs leave the kernel) but keeps the
policy, its id and its mode; enabling compiles and loads it again. The mode
(monitor or enforce) lives in a BPF map, so it changes without reloading.

Not thread-safe: bcc objects must only be touched from the agent thread (the
API and the Kubernetes watchers hand their calls over through tetra.agent.commands).
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tetra.agent.policy_events import LoadedPolicy, PolicyEvents
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
from tetra.sensors.policy import HookCounts, PolicySensor

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
    state: str  # loaded | disabled | error
    mode: str = "enforce"
    error: str = ""
    hooks: list[dict[str, Any]] = field(default_factory=list)
    sensor: PolicySensor | None = None
    id: int = 0
    namespace: str = ""
    policy: TracingPolicy | None = None  # None when the file itself did not load
    scope_cgroups: int | None = None  # pod-scoped policies: how many cgroups they apply to now


class PolicyManager:
    def __init__(self, events: PolicyEvents, btf: Btf, defines: Mapping[str, int | str | None],
                 scope: PolicyScope | None = None) -> None:
        """``scope``: the pods' cgroups for namespaced and pod-selected policies (None: no Kubernetes API,
        so such policies apply to nothing)."""
        self.events = events
        self.scope = scope
        self.btf = btf
        self.defines = dict(defines)
        self.support = KernelSupport.detect()
        self.symbols = kernel_symbols() if self.support.kprobe else None
        self.states: dict[int, PolicyState] = {}
        self._next_id = 1
        self.compiles = 0  # policies compiled so far: the agent gives the compiler's memory back after


    def load_paths(self, files: tuple[str, ...], directory: str | None) -> None:
        paths = [Path(f) for f in files]
        if directory:
            root = Path(directory)
            if not root.is_dir():
                log.error("--tracing-policy-dir %s is not a directory", directory)
            else:
                paths += sorted(p for p in root.iterdir() if p.suffix in POLICY_SUFFIXES)
        for path in paths:
            self.load_file(path)

    def load_file(self, path: Path) -> list[PolicyState]:
        try:
            policies, warnings = load_policies_report(path)
        except PolicyErrors as err:
            log.error("policy file %s rejected:\n%s", path, err)
            return [self._failed(str(path), str(path), str(err))]
        _log_warnings(warnings)
        return [self.add(policy, str(path)) for policy in policies]

    def add(self, policy: TracingPolicy, source: str) -> PolicyState:
        """Register and load ``policy``; a failure is kept as an ``error`` state with its reason."""
        state = PolicyState(policy.name, source, "error", policy.policy_mode, id=self._new_id(),
                            namespace=policy.namespace or "", policy=policy)
        self.states[state.id] = state
        self._load(state)
        return state

    def add_text(self, text: str, source: str = "api") -> list[PolicyState]:
        """``add_policies`` of the policies of ``text``, validated on this thread (raises PolicyErrors)."""
        policies, warnings = load_policies_text_report(text, source)
        return self.add_policies(policies, warnings, source)

    def add_policies(self, policies: list[TracingPolicy], warnings: list[PolicyIssue],
                     source: str) -> list[PolicyState]:
        """The API's add, of policies validated already: every one loads, or none stays.

        The API validates a request on its own thread, so that a costly document never holds up
        the agent loop; only compiling and loading happen here. Raises PolicyExists (a name
        already registered), TooManyPolicies (``MAX_POLICIES``) or PolicyLoadFailed (the kernel
        refused one).
        """
        _log_warnings(warnings)
        for policy in policies:
            if self._find(policy.name, policy.namespace or "") is not None:
                raise PolicyExists(f"policy {_label(policy.name, policy.namespace or '')} already exists: "
                                   "delete it first")
        if len(self.states) + len(policies) > MAX_POLICIES:
            adding = "one more" if len(policies) == 1 else f"{len(policies)} more"
            raise TooManyPolicies(f"{len(self.states)} policies are registered and at most {MAX_POLICIES} may be "
                                  f"at once: delete some before adding {adding}")
        states = [self.add(policy, source) for policy in policies]
        failed = [s for s in states if s.state == "error"]
        if failed:
            self.withdraw(states)
            raise PolicyLoadFailed("; ".join(f"policy {s.name} not loaded: {s.error}" for s in failed))
        return states

    def withdraw(self, states: list[PolicyState]) -> None:
        """Unload and forget ``states`` (an add that cannot stand as a whole)."""
        for state in states:
            self._remove(state)

    def delete(self, name: str, namespace: str = "") -> None:
        state = self.get(name, namespace)
        self._remove(state)
        log.info("policy %s deleted", state.name)

    def disable(self, name: str, namespace: str = "") -> PolicyState:
        state = self.get(name, namespace)
        if state.state != "loaded":
            raise PolicyConflict(f"policy {_label(name, namespace)} is not enabled (it is {state.state})")
        self._unload(state)
        state.state = "disabled"
        log.info("policy %s disabled", state.name)
        return state

    def enable(self, name: str, namespace: str = "") -> PolicyState:
        """Load a disabled policy (or retry one in error) again, in its current mode."""
        state = self.get(name, namespace)
        if state.state == "loaded":
            raise PolicyConflict(f"policy {_label(name, namespace)} is enabled already")
        if state.policy is None:
            raise PolicyConflict(f"policy {_label(name, namespace)} never loaded: {state.error}")
        self._load(state)
        if state.state == "error":
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

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for state in self.states.values():
            entry: dict[str, Any] = {"id": state.id, "name": state.name, "source": state.source,
                                     "state": state.state, "mode": state.mode}
            if state.namespace:
                entry["namespace"] = state.namespace
            if state.error:
                entry["error"] = state.error
            if state.scope_cgroups is not None:
                entry["scope_cgroups"] = state.scope_cgroups
            counts = self._hook_counts(state)
            if counts is not None:
                entry["hooks"] = [dict(h, seen=counts[i].seen, posted=counts[i].posted)
                                  for i, h in enumerate(state.hooks)]
            else:
                entry["hooks"] = [dict(h) for h in state.hooks]
            out.append(entry)
        return out

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

    # -- internals --------------------------------------------------------------------

    def _new_id(self) -> int:
        policy_id = self._next_id
        self._next_id += 1
        return policy_id

    def _find(self, name: str, namespace: str) -> PolicyState | None:
        return next((s for s in self.states.values() if s.name == name and s.namespace == namespace), None)

    def _load(self, state: PolicyState) -> None:
        """Compile, load and attach ``state.policy`` under its id and mode; errors are kept in the state."""
        policy = state.policy
        assert policy is not None
        try:
            compiled = compile_policy(policy, state.id, self.support, self.btf, self.symbols)
            sensor = PolicySensor(compiled, self.defines)
            self.compiles += 1
            sensor.load(monitoring=state.mode == "monitor")
        except TetraError as err:  # PolicyErrors, SensorError, BtfError: all reported the same way
            log.error("policy %s (%s) not loaded:\n%s", policy.name, state.source, err)
            state.state, state.error = "error", str(err)
            return
        except Exception as err:  # a bug of ours must not take the other policies down
            log.exception("policy %s (%s) not loaded: internal error", policy.name, state.source)
            state.state, state.error = "error", f"internal error: {err!r}"
            return
        state.sensor, state.state, state.error = sensor, "loaded", ""
        if policy.scoped:  # attached with an empty scope: nothing is seen until the cgroups are in
            state.scope_cgroups = 0
            if self.scope is None:
                log.warning("policy %s applies to pods, and the Kubernetes API is off (--enable-k8s-api): "
                            "it applies to no process", policy.name)
            self.refresh_scopes(loaded=state)
        self.events.add(state.id, LoadedPolicy(compiled, sensor.stack_symbols))
        state.hooks = [{"hook": h.function_name, "mechanism": h.mechanism.value, "attach": h.attach,
                        "return": h.return_attach is not None} for h in compiled.hooks]
        log.info("policy %s loaded: %s", policy.name,
                 ", ".join(f"{h['hook']} ({h['mechanism']})" for h in state.hooks) or "no hooks")

    def _unload(self, state: PolicyState) -> None:
        """Detach the sensor; events of the policy still in the ring buffer are counted as policy_unknown."""
        if state.sensor is not None:
            state.sensor.close()
            state.sensor = None
        state.scope_cgroups = None
        self.events.remove(state.id)

    def _remove(self, state: PolicyState) -> None:
        self._unload(state)
        self.states.pop(state.id, None)

    def _failed(self, name: str, source: str, error: str) -> PolicyState:
        state = PolicyState(name, source, "error", error=error, id=self._new_id())
        self.states[state.id] = state
        return state


def _log_warnings(warnings: list[PolicyIssue]) -> None:
    """What validation accepted with a warning (a selector that matches every call, ...) goes to the log."""
    for warning in warnings:
        log.warning("%s", warning)


def _label(name: str, namespace: str) -> str:
    """A policy's name for a message: names come from API requests too, so they are shortened."""
    return shortened(f"{namespace}/{name}" if namespace else name)
