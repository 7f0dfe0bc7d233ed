"""The validated TracingPolicy, as immutable values the compiler can trust.

Everything here was checked by the loader: enum values are canonical (``LT``,
never ``lt``), lists are tuples, defaults are Tetragon's, selector macros are
already expanded. Every object keeps the ``Location`` of the YAML mapping it was
read from, so a later stage (the compiler, the agent) can still point a user at
``file:line:col`` and the dotted path of the offending object.

::

    TracingPolicy ── spec: Spec ─┬─ kprobes / fentries: KProbe ─┐
                                 ├─ tracepoints: Tracepoint ────┤
                                 ├─ uprobes: UProbe ────────────┼─ args / data: ArgSpec
                                 ├─ lsmhooks: LsmHook ──────────┤   selectors: Selector ─┬─ match_args: MatchArg
                                 ├─ usdts: Usdt ────────────────┘                        ├─ match_pids, ...
                                 ├─ lists: ListSpec                                      └─ match_actions: Action
                                 ├─ options: Option
                                 └─ enforcers: Enforcer
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Location:
    """Where an object starts in its file (1-based) and its dotted path in the document."""

    file: str
    line: int
    column: int
    path: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One entry of ``args``, ``data`` or ``returnArg``.

    ``index`` is the function argument position for kprobes, LSM hooks, uprobes
    and USDTs, the format-field position for tracepoints, and the position in
    ``data`` for data entries. ``size_arg_index`` is 1-based like Tetragon's.
    """

    index: int
    type: str
    label: str | None
    size_arg_index: int | None
    return_copy: bool
    max_data: bool
    resolve: str | None
    source: str | None
    btf_type: str | None
    loc: Location


@dataclass(frozen=True, slots=True)
class MatchArg:
    """A ``matchArgs`` / ``matchReturnArgs`` / ``matchData`` filter; values stay strings.

    ``index`` is None when not written (Tetragon then reads argument 0, unless
    ``args`` names positions in the hook's ``args`` list, which takes precedence).
    """

    index: int | None
    args: tuple[int, ...]
    operator: str
    values: tuple[str, ...]
    loc: Location


@dataclass(frozen=True, slots=True)
class MatchPIDs:
    operator: str
    values: tuple[int, ...]
    follow_forks: bool
    is_namespace_pid: bool
    loc: Location


@dataclass(frozen=True, slots=True)
class MatchBinaries:
    """Also used for ``matchParentBinaries``."""

    operator: str
    values: tuple[str, ...]
    follow_children: bool
    loc: Location


@dataclass(frozen=True, slots=True)
class MatchNamespaces:
    namespace: str
    operator: str
    values: tuple[str, ...]
    loc: Location


@dataclass(frozen=True, slots=True)
class MatchNamespaceChanges:
    operator: str
    values: tuple[str, ...]
    loc: Location


@dataclass(frozen=True, slots=True)
class MatchCapabilities:
    type: str
    operator: str
    is_namespace_capability: bool
    values: tuple[str, ...]
    loc: Location


@dataclass(frozen=True, slots=True)
class MatchCapabilityChanges:
    type: str
    operator: str
    is_namespace_capability: bool
    values: tuple[str, ...]
    loc: Location


@dataclass(frozen=True, slots=True)
class Action:
    """One ``matchActions`` / ``matchReturnActions`` entry; unset arguments are None."""

    action: str
    arg_sig: int | None
    arg_error: int | None
    rate_limit: str | None
    rate_limit_scope: str | None
    kernel_stack_trace: bool
    user_stack_trace: bool
    ima_hash: bool
    arg_url: str | None
    arg_fqdn: str | None
    arg_fd: int | None
    arg_name: int | None
    arg_sock: int | None
    arg_index: int | None
    loc: Location
    arg_value: int | None = None
    arg_regs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Selector:
    """Filters that all must match (AND), and the actions taken when they do."""

    match_args: tuple[MatchArg, ...]
    match_return_args: tuple[MatchArg, ...]
    match_pids: tuple[MatchPIDs, ...]
    match_binaries: tuple[MatchBinaries, ...]
    match_parent_binaries: tuple[MatchBinaries, ...]
    match_namespaces: tuple[MatchNamespaces, ...]
    match_namespace_changes: tuple[MatchNamespaceChanges, ...]
    match_capabilities: tuple[MatchCapabilities, ...]
    match_capability_changes: tuple[MatchCapabilityChanges, ...]
    match_actions: tuple[Action, ...]
    match_return_actions: tuple[Action, ...]
    match_data: tuple[MatchArg, ...]
    loc: Location

    @property
    def has_filters(self) -> bool:
        """False when the selector matches every call (it has no filter at all)."""
        return any((self.match_args, self.match_return_args, self.match_pids, self.match_binaries,
                    self.match_parent_binaries, self.match_namespaces, self.match_namespace_changes,
                    self.match_capabilities, self.match_capability_changes, self.match_data))


@dataclass(frozen=True, slots=True)
class KProbe:
    """A kprobe (``spec.kprobes``) or an fentry (``spec.fentries``, same shape)."""

    call: str
    syscall: bool
    return_: bool
    message: str | None
    args: tuple[ArgSpec, ...]
    return_arg: ArgSpec | None
    return_arg_action: str | None
    selectors: tuple[Selector, ...]
    tags: tuple[str, ...]
    ignore_call_not_found: bool
    data: tuple[ArgSpec, ...]
    loc: Location


@dataclass(frozen=True, slots=True)
class Tracepoint:
    subsystem: str
    event: str
    raw: bool
    message: str | None
    args: tuple[ArgSpec, ...]
    selectors: tuple[Selector, ...]
    tags: tuple[str, ...]
    loc: Location


@dataclass(frozen=True, slots=True)
class UProbe:
    """Exactly one of ``symbols``, ``offsets`` and ``addrs`` is non-empty."""

    path: str
    btf_path: str | None
    symbols: tuple[str, ...]
    offsets: tuple[int, ...]
    addrs: tuple[int, ...]
    ref_ctr_offsets: tuple[int, ...]
    message: str | None
    args: tuple[ArgSpec, ...]
    data: tuple[ArgSpec, ...]
    selectors: tuple[Selector, ...]
    tags: tuple[str, ...]
    return_: bool
    return_arg: ArgSpec | None
    loc: Location


@dataclass(frozen=True, slots=True)
class LsmHook:
    hook: str
    message: str | None
    args: tuple[ArgSpec, ...]
    selectors: tuple[Selector, ...]
    tags: tuple[str, ...]
    loc: Location


@dataclass(frozen=True, slots=True)
class Usdt:
    path: str
    provider: str
    name: str
    message: str | None
    args: tuple[ArgSpec, ...]
    selectors: tuple[Selector, ...]
    tags: tuple[str, ...]
    loc: Location
    btf_path: str | None = None


@dataclass(frozen=True, slots=True)
class ListSpec:
    """A named list, used as ``list:NAME`` in calls, enforcers and InMap values."""

    name: str
    type: str  # "" when unset, as in Tetragon
    values: tuple[str, ...]
    pattern: str | None
    loc: Location


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    value: str
    loc: Location


@dataclass(frozen=True, slots=True)
class Enforcer:
    calls: tuple[str, ...]
    loc: Location


LIST_PREFIX = "list:"


@dataclass(frozen=True, slots=True)
class Spec:
    """``spec`` of a policy. Label selectors are read-only mappings of the YAML as written."""

    kprobes: tuple[KProbe, ...]
    tracepoints: tuple[Tracepoint, ...]
    uprobes: tuple[UProbe, ...]
    lsmhooks: tuple[LsmHook, ...]
    usdts: tuple[Usdt, ...]
    lists: tuple[ListSpec, ...]
    options: tuple[Option, ...]
    enforcers: tuple[Enforcer, ...]
    pod_selector: Mapping[str, Any] | None
    container_selector: Mapping[str, Any] | None
    host_selector: Mapping[str, Any] | None
    loc: Location
    fentries: tuple[KProbe, ...] = ()
    loader: bool = False

    def option(self, name: str) -> str | None:
        """The value of option ``name`` (the last one wins, as names are unique once validated)."""
        for option in reversed(self.options):
            if option.name == name:
                return option.value
        return None


@dataclass(frozen=True, slots=True)
class TracingPolicy:
    """One ``TracingPolicy`` or ``TracingPolicyNamespaced`` document."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    spec: Spec
    loc: Location
    text: str = field(default="", compare=False)  # the YAML document it was read from, for `tetra bugtool`

    @property
    def scoped(self) -> bool:
        """Applies only to pods: a namespaced policy, or one with a pod or container selector."""
        return self.namespace is not None or self.spec.pod_selector is not None \
            or self.spec.container_selector is not None

    @property
    def policy_mode(self) -> str:
        """``monitor`` or ``enforce`` (the default), from option ``policy-mode``.

        Tetragon's parser takes ``monitor``/``enforce``; ``monitoring``/``enforcement``
        are accepted as the same modes.
        """
        mode = self.spec.option("policy-mode") or "enforce"
        return {"monitoring": "monitor", "enforcement": "enforce"}.get(mode, mode)
