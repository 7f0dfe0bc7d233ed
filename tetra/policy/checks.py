"""Checks across objects of a built policy: what no single YAML object shows by itself.

A filter must read an argument the hook declares, with an operator that fits
that argument's type; an action must make sense on its kind of hook; a
``list:NAME`` must name a list; a selector must stay within what one BPF
selector holds once its macros are expanded; a selector that enforces should
not act on every call by accident. These run on the model (every object
carries its location), after the schema walk found the document's shape valid.
"""

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tetra.policy import vocab
from tetra.policy.errors import PolicyIssue, Severity, listed, quoted
from tetra.policy.limits import (MAX_ACTIONS, MAX_HOOKS, MAX_MATCH_ARGS, MAX_MATCH_BINARIES, MAX_MATCH_NAMESPACES,
                                 MAX_NAMESPACE_CHANGES)
from tetra.policy.model import (LIST_PREFIX, Action, ArgSpec, Location, MatchArg, MatchBinaries, MatchPIDs,
                                Selector, Spec, TracingPolicy)
from tetra.policy.syscalls import check_syscall
from tetra.policy.values import check_capability_mask, check_typed_value, decimal


@dataclass(frozen=True)
class HookKind:
    """What differs between the kinds of hooks, for the checks below."""

    attr: str          # the Spec attribute holding them
    noun: str
    index_mode: str    # how matchArgs index finds its argument: see _targets
    override: str      # Override's argError: "errno" (negative), "any" (uprobes), "" (no Override here)
    name: Callable[[Any], str]  # what a user calls one hook of this kind, for messages


HOOK_KINDS = (
    HookKind("kprobes", "kprobe", "index", "errno", lambda hook: hook.call),
    HookKind("fentries", "fentry", "index", "errno", lambda hook: hook.call),
    HookKind("tracepoints", "tracepoint", "either", "", lambda hook: f"{hook.subsystem}/{hook.event}"),
    HookKind("uprobes", "uprobe", "index", "any", lambda hook: f"{hook.path} {','.join(hook.symbols)}".rstrip()),
    HookKind("lsmhooks", "LSM hook", "index", "errno", lambda hook: hook.hook),
    HookKind("usdts", "USDT probe", "index", "", lambda hook: f"{hook.provider}:{hook.name}"),
)

MAX_ERRNO = 4095

# Per selector, after macros: (attributes counted together, how the user wrote them, limit).
SELECTOR_LIMITS = (
    (("match_args", "match_data"), "matchArgs and matchData filters", MAX_MATCH_ARGS),
    (("match_binaries",), "matchBinaries entries", MAX_MATCH_BINARIES),
    (("match_parent_binaries",), "matchParentBinaries entries", MAX_MATCH_BINARIES),
    (("match_namespaces",), "matchNamespaces entries", MAX_MATCH_NAMESPACES),
    (("match_namespace_changes",), "matchNamespaceChanges entries", MAX_NAMESPACE_CHANGES),
    (("match_actions",), "matchActions", MAX_ACTIONS),
    (("match_return_actions",), "matchReturnActions", MAX_ACTIONS),
)


class _Issues:
    def __init__(self) -> None:
        self.found: list[PolicyIssue] = []

    def add(self, loc: Location, message: str, key: str = "", severity: Severity = "error") -> None:
        if key:
            loc = Location(loc.file, loc.line, loc.column, f"{loc.path}.{key}")
        self.found.append(PolicyIssue(loc, message, severity))

    def warn(self, loc: Location, message: str, key: str = "") -> None:
        self.add(loc, message, key, "warning")


def check_policy(policy: TracingPolicy) -> list[PolicyIssue]:
    """Every cross-object problem of a policy whose shape is valid."""
    issues = _Issues()
    spec = policy.spec
    _check_spec(spec, issues)
    for kind in HOOK_KINDS:
        for hook in getattr(spec, kind.attr):
            _check_hook(spec, kind, hook, issues)
    return issues.found


def _check_spec(spec: Spec, issues: _Issues) -> None:
    hooks = sum(len(getattr(spec, kind.attr)) for kind in HOOK_KINDS)
    if hooks > MAX_HOOKS:
        issues.add(spec.loc, f"{hooks} hooks, at most {MAX_HOOKS} are supported in one policy "
                             "(split it into several policies)")
    for objects, what in ((spec.lists, "list"), (spec.options, "option")):
        first: dict[str, Location] = {}
        for item in objects:
            if item.name in first:
                issues.add(item.loc, f"{what} {quoted(item.name)} is defined twice (first at line {first[item.name].line})")
            first.setdefault(item.name, item.loc)
    for enforcer in spec.enforcers:
        for call in enforcer.calls:
            _check_list_ref(spec, call, enforcer.loc, "calls", issues)


def _check_list_ref(spec: Spec, value: str, loc: Location, key: str, issues: _Issues) -> None:
    if not value.startswith(LIST_PREFIX):
        return
    name = value[len(LIST_PREFIX):]
    if all(spec_list.name != name for spec_list in spec.lists):
        defined = listed(dict.fromkeys(spec_list.name for spec_list in spec.lists)) or "none"
        issues.add(loc, f"{quoted(value)} names a list that spec.lists does not define (defined: {defined})", key)


def _check_hook(spec: Spec, kind: HookKind, hook: Any, issues: _Issues) -> None:
    args: tuple[ArgSpec, ...] = hook.args
    _check_args(args, issues)
    if kind.attr in ("kprobes", "fentries"):
        _check_list_ref(spec, hook.call, hook.loc, "call", issues)
    if kind.attr == "kprobes" and hook.syscall and not hook.call.startswith(LIST_PREFIX):
        unknown = check_syscall(hook.call)
        if unknown:
            issues.add(hook.loc, unknown, "call")
    returns = getattr(hook, "return_", False)
    return_arg: ArgSpec | None = getattr(hook, "return_arg", None)
    if return_arg is not None and not returns:
        issues.warn(return_arg.loc, "returnArg is ignored without 'return: true' on its hook")
    if getattr(hook, "return_arg_action", None) is not None and not returns:
        issues.add(hook.loc, "returnArgAction needs 'return: true'", "returnArgAction")
    catch_all: int | None = None
    for i, selector in enumerate(hook.selectors):
        if catch_all is not None:
            issues.warn(selector.loc, f"unreachable: selectors[{catch_all}] has no filters, so it matches "
                                      "every call first")
        elif not selector.has_filters:
            catch_all = i
        _check_selector(spec, kind, hook, selector, issues)


def _check_args(args: Sequence[ArgSpec], issues: _Issues) -> None:
    first: dict[int, ArgSpec] = {}
    for arg in args:
        if arg.index in first:
            issues.add(arg.loc, f"argument index {arg.index} is declared twice (first at line "
                                f"{first[arg.index].loc.line})", "index")
        first.setdefault(arg.index, arg)
    for arg in args:
        if arg.size_arg_index is None:
            continue
        target = arg.size_arg_index - 1
        # Tetragon reads the size from the function's argument register whether or
        # not it is declared, so these load there: warnings, not errors.
        if target == arg.index:
            issues.warn(arg.loc, "sizeArgIndex points at the argument itself (it is 1-based: "
                                 f"{arg.index + 1} means index {arg.index})", "sizeArgIndex")
        elif target not in first:
            declared = ", ".join(str(index) for index in first)
            issues.warn(arg.loc, f"sizeArgIndex {arg.size_arg_index} refers to argument index {target}, which is "
                                 f"not declared (sizeArgIndex is 1-based; declared indexes: {declared})",
                        "sizeArgIndex")


def _check_selector(spec: Spec, kind: HookKind, hook: Any, selector: Selector, issues: _Issues) -> None:
    for attrs, what, limit in SELECTOR_LIMITS:
        count = sum(len(getattr(selector, attr)) for attr in attrs)
        if count > limit:
            issues.add(selector.loc, f"{count} {what}, at most {limit} are supported in one selector "
                                     "(counting those from macros)")
    _check_enforcement_scope(kind, hook, selector, issues)
    for match in selector.match_args:
        _check_filter(spec, hook.args, kind.index_mode, match, issues)
    for match in selector.match_data:
        _check_filter(spec, getattr(hook, "data", ()), "position", match, issues)
    returns = getattr(hook, "return_", False)
    return_arg: ArgSpec | None = getattr(hook, "return_arg", None)
    if selector.match_return_args:
        if return_arg is None:
            issues.add(selector.loc, "matchReturnArgs needs a returnArg on the hook to compare with",
                       "matchReturnArgs")
        else:
            for match in selector.match_return_args:
                _check_filter(spec, (return_arg,), "index", match, issues)
    if (selector.match_return_args or selector.match_return_actions) and not returns:
        issues.warn(selector.loc, "matchReturnArgs and matchReturnActions only run with 'return: true' on the hook")
    for action in selector.match_actions + selector.match_return_actions:
        _check_action(spec, kind, action, issues)


# ── enforcement on every call ────────────────────────────────────────────────────────────────────

# Arguments the kernel resolves to a path, walking from the file up to the root: always absolute.
RESOLVED_PATH_TYPES = frozenset({"fd", "file", "path", "dentry", "linux_binprm"})
# Filters this check does not judge: each is taken to restrict what its selector matches.
_RESTRICTING_FILTERS = ("match_return_args", "match_namespaces", "match_namespace_changes", "match_capabilities",
                        "match_capability_changes", "match_data")

# A filter that lets every call through: where it is (location, key) and why.
PassesAll = tuple[Location, str, str]


def _check_enforcement_scope(kind: HookKind, hook: Any, selector: Selector, issues: _Issues) -> None:
    """Warn when a selector that enforces acts on every call of its hook.

    Tetragon loads such a selector, and one is sometimes meant (Override on
    every call of an LSM hook), so this is a warning. More often a filter lost
    its meaning to a typo ('' or '/' for '/etc/', 0.0.0.0/0 for 10.0.0.0/8), and
    a Sigkill meant for one program kills everything that makes the call. Only
    a selector whose every filter lets everything through is reported, at its
    first such filter with every reason: one restricting filter is enough.
    """
    action = next((a.action for a in selector.match_actions if a.action in vocab.ENFORCING_ACTIONS), None)
    if action is None:
        return
    what = f"{action} on every call of {kind.name(hook)}"
    if not selector.has_filters:
        issues.warn(selector.loc, f"{what}: this selector has no filters")
        return
    found = [_arg_passes_all(hook.args, kind.index_mode, match) for match in selector.match_args]
    found += [_pids_pass_all(match) for match in selector.match_pids]
    found += [_binaries_pass_all("matchBinaries", match) for match in selector.match_binaries]
    found += [_binaries_pass_all("matchParentBinaries", match) for match in selector.match_parent_binaries]
    found += [None for attr in _RESTRICTING_FILTERS for _ in getattr(selector, attr)]
    passes = sorted((item for item in found if item is not None), key=lambda item: (item[0].line, item[0].column))
    if len(passes) == len(found):
        loc, key, _ = passes[0]
        issues.warn(loc, f"{what}: " + "; ".join(reason for _, _, reason in passes), key)


def _arg_passes_all(args: Sequence[ArgSpec], index_mode: str, match: MatchArg) -> PassesAll | None:
    """A matchArgs filter that no call fails: values ORed, one matching all is enough; NotX values AND."""
    for i, value in enumerate(match.values):
        reason = _socket_value_passes_all(match.operator, value)
        if reason:
            return match.loc, f"values[{i}]", reason
    targets = _targets(args, index_mode, match, _Issues())  # a bad index was reported by _check_filter
    if len(targets) != 1 or targets[0].type not in vocab.STRING_TYPES:
        return None
    arg_type, operator = targets[0].type, match.operator
    path = arg_type in RESOLVED_PATH_TYPES
    for i, value in enumerate(match.values):
        if operator in ("Prefix", "Postfix") and value == "":
            return match.loc, f"values[{i}]", f"{operator} '' matches every value"
        if operator == "Prefix" and value == "/" and path:
            return match.loc, f"values[{i}]", (f"Prefix '/' matches every path ({arg_type} arguments are resolved "
                                               "to absolute paths)")
    if operator in ("NotEqual", "NotPrefix") and path and not any(value.startswith("/") for value in match.values):
        values = listed(match.values, quoted)
        return match.loc, "values", (f"{operator} {values} excludes nothing ({arg_type} arguments are resolved to "
                                     "absolute paths, and no value starts with '/')")
    return None


def _socket_value_passes_all(operator: str, value: str) -> str | None:
    if operator in ("SAddr", "DAddr"):
        network = ipaddress.ip_network(value, strict=False)
        if network.prefixlen == 0:
            return f"{operator} {value} matches every IPv{network.version} address"
    if operator in ("SPort", "DPort"):
        low, _, high = value.partition(":")
        if decimal(low) == 0 and decimal(high or low) == 65535:
            return f"{operator} {value} matches every port"
    return None


def _pids_pass_all(match: MatchPIDs) -> PassesAll | None:
    # followForks looks at ancestors too, and the idle task may be one of them: not judged here.
    if match.operator == "NotIn" and not match.follow_forks and set(match.values) == {0}:
        return match.loc, "values", "matchPIDs NotIn 0 leaves out only pid 0, the idle task"
    return None


def _binaries_pass_all(what: str, match: MatchBinaries) -> PassesAll | None:
    if match.operator in ("Prefix", "Postfix") and "" in match.values:
        return match.loc, f"values[{match.values.index('')}]", f"{what} {match.operator} '' matches every binary"
    return None


def _check_action(spec: Spec, kind: HookKind, action: Action, issues: _Issues) -> None:
    name = action.action
    if name == "Override":
        if not kind.override:
            issues.add(action.loc, f"Override cannot change what a {kind.noun} returns", "action")
        elif kind.override == "errno":
            if action.arg_regs:
                issues.add(action.loc, "argRegs is only for uprobes", "argRegs")
            if action.arg_error is None:
                issues.add(action.loc, "Override needs argError (a negative errno such as -1 for EPERM)", "action")
            elif not -MAX_ERRNO <= action.arg_error <= -1:  # Tetragon takes any int32: a warning
                issues.warn(action.loc, f"argError {action.arg_error} is not a negative errno "
                                        f"(-{MAX_ERRNO}..-1, such as -1 for EPERM)", "argError")
    if name == "Set" and kind.attr != "usdts":
        issues.add(action.loc, f"action Set only works on USDT probes, not on a {kind.noun}", "action")
    if name == "NotifyEnforcer" and not spec.enforcers:
        issues.add(action.loc, "action NotifyEnforcer needs an enforcer in spec.enforcers", "action")


# What each operator needs from the argument it reads: (allowed types, what to call them).
_TYPE_RULES: list[tuple[frozenset[str], frozenset[str], str]] = [
    (vocab.SOCKET_OPERATORS, vocab.SOCKET_TYPES, "a sock, skb, sockaddr or socket argument"),
    (vocab.FILE_TYPE_OPERATORS, frozenset({"file", "path"}), "a file or path argument"),
    (vocab.STRING_OPERATORS, vocab.STRING_TYPES, "a string-like argument (string, char_buf, file, path, ...)"),
    (vocab.SUBSTRING_OPERATORS, frozenset({"string", "char_buf"}), "a string or char_buf argument"),
    (vocab.NUMERIC_OPERATORS - {"Mask"}, frozenset(vocab.INT_TYPE_RANGES), "an integer argument"),
    (frozenset({"Mask"}), frozenset(vocab.INT_TYPE_RANGES) | vocab.CAPABILITY_TYPES,
     "an integer or capability argument"),
    (frozenset({"CapabilitiesGained"}), vocab.CAPABILITY_TYPES, "capability arguments"),
    (frozenset({"Equal", "NotEqual"}), frozenset(vocab.ARG_TYPES) - vocab.SOCKET_TYPES,
     "an argument that is not a socket (use SAddr, DAddr, SPort, DPort, ...)"),
]


def _check_filter(spec: Spec, args: Sequence[ArgSpec], index_mode: str, match: MatchArg,
                  issues: _Issues) -> None:
    """One matchArgs/matchData/matchReturnArgs filter against the arguments it reads."""
    for i, value in enumerate(match.values if match.operator in ("InMap", "NotInMap") else ()):
        _check_list_ref(spec, value, match.loc, f"values[{i}]", issues)
    targets = _targets(args, index_mode, match, issues)
    operator = match.operator
    for arg in targets:
        if arg.type == "auto":
            continue  # known only from BTF, when the policy is compiled
        for operators, types, what in _TYPE_RULES:
            if operator in operators and arg.type not in types:
                issues.add(match.loc, f"operator {operator} needs {what}; argument {arg.index} is {arg.type}",
                           "operator")
                return
        if arg.type == "sockaddr" and operator in vocab.SOCKET_OPERATORS - vocab.SOCKADDR_OPERATORS:
            issues.add(match.loc, f"operator {operator} does not work on a sockaddr argument (it supports "
                                  f"{', '.join(sorted(vocab.SOCKADDR_OPERATORS))})", "operator")
    if targets and targets[0].type != "auto":
        _check_typed_values(targets[0].type, match, issues)


def _targets(args: Sequence[ArgSpec], index_mode: str, match: MatchArg, issues: _Issues) -> list[ArgSpec]:
    """The declared arguments a filter reads (empty when it names one that is not declared).

    ``args`` positions always count entries of the hook's list. ``index`` is an
    argument's own ``index`` ("index": kprobes, LSM hooks, uprobes, USDTs), a
    position in the list ("position": matchData), or either ("either":
    tracepoints, where Tetragon maps a format-field index to its position).
    """
    if match.args:
        targets = []
        for position in match.args:
            if position >= len(args):
                issues.add(match.loc, f"args position {position} is past the {len(args)} declared arguments "
                                      "(args counts the entries of the hook's args, from 0)", "args")
            else:
                targets.append(args[position])
        return targets
    index = match.index or 0
    if index_mode != "position":
        for arg in args:
            if arg.index == index:
                return [arg]
    if index_mode != "index" and index < len(args):
        return [args[index]]
    if index_mode == "position":
        has = f"only {len(args)} data entries" if args else "no data entries"
        issues.add(match.loc, f"matchData index {index} is past the hook's data: it has {has}", "index")
        return []
    declared = ", ".join(str(index) for index in dict.fromkeys(arg.index for arg in args)) or "none"
    also = f", or a position 0..{len(args) - 1} in args" if index_mode == "either" and args else ""
    issues.add(match.loc, f"index {index} is not a declared argument (declared indexes: {declared}{also})", "index")
    return []


def _integer_check(arg_type: str) -> Callable[[str], str | None]:
    low, high = vocab.INT_TYPE_RANGES[arg_type]
    return lambda value: check_typed_value(value, low, high, arg_type)


def _range_check(arg_type: str) -> Callable[[str], str | None]:
    single = _integer_check(arg_type)

    def check(value: str) -> str | None:
        for bound in value.split(":"):
            problem = single(bound)
            if problem:
                return problem
        return None
    return check


def _map_check(arg_type: str) -> Callable[[str], str | None]:
    low, high = vocab.INT_TYPE_RANGES[arg_type]

    def check(value: str) -> str | None:
        if value.startswith(LIST_PREFIX):
            return None
        for bound in value.split(":"):
            number = decimal(bound)
            if number is not None and not low <= number <= high:
                return f"{arg_type} value {number} is out of range ({low}..{high})"
        return None
    return check


def _check_typed_values(arg_type: str, match: MatchArg, issues: _Issues) -> None:
    """Values that must be numbers of the argument's type (or capability masks)."""
    operator = match.operator
    check: Callable[[str], str | None] | None = None
    if arg_type in vocab.INT_TYPE_RANGES:
        if operator in ("Equal", "NotEqual", "GT", "LT", "GreaterThan", "LessThan", "Mask"):
            check = _integer_check(arg_type)
        elif operator in ("InRange", "NotInRange"):
            check = _range_check(arg_type)
        elif operator in ("InMap", "NotInMap"):
            check = _map_check(arg_type)
    elif arg_type in vocab.CAPABILITY_TYPES and operator in ("Equal", "NotEqual", "Mask"):
        check = check_capability_mask
    for i, value in enumerate(match.values if check else ()):
        problem = check(value)  # type: ignore[misc]
        if problem:
            issues.add(match.loc, problem, f"values[{i}]")

