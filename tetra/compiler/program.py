"""Compiling one policy: plan, selectors, C text; every problem raised together."""

from dataclasses import dataclass

from tetra.compiler.codegen import generate
from tetra.compiler.kernel import KernelSupport
from tetra.compiler.lists import KernelLists
from tetra.compiler.plan import HookPlan, Planner
from tetra.compiler.selectors import MapEntry, SelectorCode, SelectorCompiler
from tetra.kernel.btf import Btf
from tetra.policy.errors import PolicyErrors
from tetra.policy.model import TracingPolicy
from tetra.policy.values import go_bool

PROTECTED_OPTION = "enforce-protected-processes"
OBSERVE_AGENT_OPTION = "observe-agent"


@dataclass(frozen=True)
class CompiledPolicy:
    """What the policy sensor loads and what the decoder needs to read its events."""

    policy: TracingPolicy
    policy_id: int
    hooks: tuple[HookPlan, ...]
    selectors: dict[int, tuple[SelectorCode, ...]]
    c_text: str
    map_entries: tuple[MapEntry, ...]
    enforcers: tuple[str, ...] = ()  # syscall functions with NotifyEnforcer's fmod_ret program


def compile_policy(policy: TracingPolicy, policy_id: int, support: KernelSupport, btf: Btf | None,
                   symbols: frozenset[str] | None = None, lists: KernelLists | None = None) -> CompiledPolicy:
    """Raises PolicyErrors (located) when a hook cannot be placed or a filter evaluated here.
    ``lists``: where generated lists come from (default: the running kernel's tracefs)."""
    planner = Planner(support, symbols, lists, btf)
    hooks = planner.plan(policy)
    selectors = SelectorCompiler(btf, policy.spec, support, planner.lists)
    codes = {hook.hook_id: selectors.compile(hook) for hook in hooks}
    if selectors.issues:
        raise PolicyErrors(selectors.issues)
    text = generate(policy_id, policy.name, hooks, codes, btf, enforcers=planner.enforcers, scoped=policy.scoped,
                    enforce_protected=_option(policy, PROTECTED_OPTION),
                    observe_agent=_option(policy, OBSERVE_AGENT_OPTION))
    return CompiledPolicy(policy, policy_id, tuple(hooks), codes, text, tuple(selectors.entries),
                          tuple(planner.enforcers))


def _option(policy: TracingPolicy, name: str) -> bool:
    """A boolean option of the policy (validated by the loader); absent is false."""
    return go_bool(policy.spec.option(name) or "false")
