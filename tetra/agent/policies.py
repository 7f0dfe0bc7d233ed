"""The agent's tracing policies: loaded from files, compiled, attached, tracked.

Each policy is its own sensor, so one that fails (a YAML error, a hook this
kernel cannot place, a verifier refusal) is reported with its reason and never
disturbs the others. The same manager serves start-up flags
(--tracing-policy, --tracing-policy-dir) and, later, the API's add/delete.
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
from tetra.errors import TetraError
from tetra.kernel.btf import Btf
from tetra.policy.errors import PolicyErrors
from tetra.policy.loader import load_policies
from tetra.policy.model import TracingPolicy
from tetra.sensors.policy import PolicySensor

log = logging.getLogger(__name__)
POLICY_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class PolicyState:
    """What `tetra status` and the summary say about one policy."""

    name: str
    source: str
    state: str  # loaded | error
    mode: str = "enforce"
    error: str = ""
    hooks: list[dict[str, Any]] = field(default_factory=list)
    sensor: PolicySensor | None = None


class PolicyManager:
    def __init__(self, events: PolicyEvents, btf: Btf, defines: Mapping[str, int | str | None]) -> None:
        self.events = events
        self.btf = btf
        self.defines = dict(defines)
        self.support = KernelSupport.detect()
        self.symbols = kernel_symbols() if self.support.kprobe else None
        self.states: dict[int, PolicyState] = {}
        self._next_id = 1

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
            policies = load_policies(path)
        except PolicyErrors as err:
            log.error("policy file %s rejected:\n%s", path, err)
            return [self._failed(str(path), str(path), str(err))]
        return [self.add(policy, str(path)) for policy in policies]

    def add(self, policy: TracingPolicy, source: str) -> PolicyState:
        policy_id = self._next_id
        self._next_id += 1
        try:
            compiled = compile_policy(policy, policy_id, self.support, self.btf, self.symbols)
            sensor = PolicySensor(compiled, self.defines)
            sensor.load(monitoring=policy.policy_mode == "monitor")
        except TetraError as err:  # PolicyErrors, SensorError, BtfError: all reported the same way
            log.error("policy %s (%s) not loaded:\n%s", policy.name, source, err)
            return self._failed(policy.name, source, str(err), policy_id)
        except Exception as err:  # a bug of ours must not take the other policies down
            log.exception("policy %s (%s) not loaded: internal error", policy.name, source)
            return self._failed(policy.name, source, f"internal error: {err!r}", policy_id)
        self.events.add(policy_id, LoadedPolicy(compiled, sensor.stack_symbols))
        hooks = [{"hook": h.function_name, "mechanism": h.mechanism.value, "attach": h.attach,
                  "return": h.return_attach is not None} for h in compiled.hooks]
        state = PolicyState(policy.name, source, "loaded", policy.policy_mode, hooks=hooks, sensor=sensor)
        self.states[policy_id] = state
        log.info("policy %s loaded: %s", policy.name,
                 ", ".join(f"{h['hook']} ({h['mechanism']})" for h in hooks) or "no hooks")
        return state

    def _failed(self, name: str, source: str, error: str, policy_id: int | None = None) -> PolicyState:
        if policy_id is None:
            policy_id = self._next_id
            self._next_id += 1
        state = PolicyState(name, source, "error", error=error)
        self.states[policy_id] = state
        return state

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for state in self.states.values():
            entry: dict[str, Any] = {"name": state.name, "source": state.source, "state": state.state,
                                     "mode": state.mode}
            if state.error:
                entry["error"] = state.error
            if state.sensor is not None:
                counts = state.sensor.hook_counts()
                entry["hooks"] = [dict(h, seen=counts[i].seen, posted=counts[i].posted)
                                  for i, h in enumerate(state.hooks)]
            out.append(entry)
        return out

    def close(self) -> None:
        for policy_id, state in self.states.items():
            if state.sensor is not None:
                state.sensor.close()
                state.sensor = None
            self.events.remove(policy_id)
