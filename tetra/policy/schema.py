"""The TracingPolicy schema: one table per object, in the shape of Tetragon's CRD.

Each table maps a YAML key to a ``Field`` (model attribute, kind, required,
default, validator). Object checks here are the ones that need the YAML nodes
for exact locations (a bad port is reported at the port, not at its filter);
checks that relate objects to each other (a filter to the argument it reads)
run on the built model, in ``checks``.

Defaults are Tetragon's: ``syscall: true``, arg ``type: auto``, ``returnCopy``
and ``maxData`` false, capability ``type: Effective``; an unset
``rateLimitScope`` means ``thread``.
"""

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from tetra.policy import vocab
from tetra.policy.errors import listed, quoted
from tetra.policy.limits import (MAX_ARGS, MAX_BINARY_PATH, MAX_BINARY_VALUES, MAX_DATA, MAX_ENFORCERS, MAX_HOOKS,
                                 MAX_MATCH_VALUES, MAX_MESSAGE, MAX_NAMESPACE_VALUES, MAX_PID_VALUES,
                                 MAX_POSTFIX_VALUE, MAX_SELECTORS, MAX_STRING_VALUE, MAX_TAGS)
from tetra.policy.model import (Action, ArgSpec, Enforcer, KProbe, ListSpec, Location, LsmHook, MatchArg, MatchBinaries,
                                MatchCapabilities, MatchCapabilityChanges, MatchNamespaceChanges, MatchNamespaces,
                                MatchPIDs, Option, Selector, Spec, Tracepoint, TracingPolicy, UProbe, Usdt)
from tetra.policy.values import (VALUE_CHECKS, check_call, check_capability, check_dns_label, check_dns_subdomain,
                                 check_fqdn, check_go_bool, check_identifier, check_label_value, check_namespace_name,
                                 check_namespace_value, check_rate_limit, check_url, max_bytes, suggest,
                                 suggest_or_list)
from tetra.policy.walk import (Bool, Enum, Field, Int, ListOf, MapOf, Obj, Opaque, Read, Scalar, Schema, Str, Walk,
                               construct)
from tetra.policy.yamltree import find
from tetra.regex import regex_problem

INDEX = Int(0, 2 ** 31 - 1)
INT32 = Int(-(2 ** 31), 2 ** 31 - 1)
ADDRESS = Int(0, 2 ** 64 - 1)
NO_MAPPING: Mapping[str, Any] = MappingProxyType({})


def _at_least_one(values: tuple[object, ...]) -> str | None:
    return None if values else "needs at least one value"


# ── arguments ────────────────────────────────────────────────────────────────────────────────────

def _build_arg(walk: Walk, values: dict[str, Any], loc: Location) -> ArgSpec:
    values["size_arg_index"] = values["size_arg_index"] or None  # 0 means "no size argument"
    return ArgSpec(**values, loc=loc)


def _check_arg(walk: Walk, read: Read) -> None:
    values = read.values
    if values["return_copy"] and values["max_data"]:
        walk.report(*read.at("max_data"), "maxData cannot be combined with returnCopy")
    if values["type"] in vocab.BUFFER_TYPES or values["type"] == "auto":
        return
    for attr in ("size_arg_index", "return_copy", "max_data"):
        if values[attr]:
            walk.warn(*read.at(attr), f"{read.keys[attr]} only applies to char_buf and char_iovec arguments, "
                                      f"not {values['type']}: it is ignored")


def _arg_fields(index_required: bool) -> dict[str, Field]:
    return {
        "index": Field("index", INDEX, required=index_required, default=0),
        "type": Field("type", Enum(vocab.ARG_TYPES, "type", listing="known"), default="auto"),
        "label": Field("label", Str()),
        "sizeArgIndex": Field("size_arg_index", INDEX),
        "returnCopy": Field("return_copy", Bool(), default=False),
        "maxData": Field("max_data", Bool(), default=False),
        "resolve": Field("resolve", Str()),
        "source": Field("source", Str()),
        "btfType": Field("btf_type", Str()),
    }


ARG = Schema("an argument", _arg_fields(index_required=True), _build_arg, _check_arg)
# The data entries of Tetragon's examples leave index out; it then defaults to 0, as in Go.
DATA_ARG = Schema("a data entry", _arg_fields(index_required=False), _build_arg, _check_arg)

# ── filters ──────────────────────────────────────────────────────────────────────────────────────


def _check_match_arg(walk: Walk, read: Read) -> None:
    operator, values = read.values["operator"], read.values["values"]
    if operator in vocab.VALUELESS_OPERATORS:
        if values:
            walk.warn(*read.at("values"), f"operator {operator} takes no values: they are ignored")
    elif not values:
        walk.report(*read.at("values"), f"operator {operator} needs at least one value")
    check = VALUE_CHECKS.get(operator)
    for i, value in enumerate(values if check else ()):
        problem = check(value)  # type: ignore[misc]
        if problem:
            walk.report(*read.at("values", i), problem)
    if operator == "CapabilitiesGained" and len(read.values["args"]) != 2:
        walk.report(*read.at("args"), "operator CapabilitiesGained needs args with two positions: "
                                      "the new and the old capabilities")


MATCH_ARG = Schema("an argument filter", {
    "index": Field("index", INDEX),
    "args": Field("args", ListOf(INDEX), default=()),
    "operator": Field("operator", Enum(vocab.ARG_OPERATORS, "operator", vocab.OPERATOR_ALIASES), required=True),
    "values": Field("values", ListOf(Scalar(), MAX_MATCH_VALUES, "values"), default=()),
}, construct(MatchArg), _check_match_arg)

SET_OPERATOR = Enum(vocab.SET_OPERATORS, "operator")

MATCH_PIDS = Schema("a PID filter", {
    "operator": Field("operator", SET_OPERATOR, required=True),
    "values": Field("values", ListOf(Int(0, 2 ** 32 - 1), MAX_PID_VALUES, "values"), required=True,
                    check=_at_least_one),
    "followForks": Field("follow_forks", Bool(), default=False),
    "isNamespacePID": Field("is_namespace_pid", Bool(), default=False),
}, construct(MatchPIDs))

_BINARY_VALUE_CHECKS = {
    "Prefix": max_bytes(MAX_STRING_VALUE, "a Prefix"), "NotPrefix": max_bytes(MAX_STRING_VALUE, "a NotPrefix"),
    "Postfix": max_bytes(MAX_POSTFIX_VALUE, "a Postfix"), "NotPostfix": max_bytes(MAX_POSTFIX_VALUE, "a NotPostfix"),
}


def _check_binary_path(text: str) -> str | None:
    if not text.startswith("/"):
        return f"{quoted(text)} is not an absolute path (In and NotIn compare the full path of the executable)"
    return max_bytes(MAX_BINARY_PATH, "a binary path")(text)


def _check_match_binaries(walk: Walk, read: Read) -> None:
    operator = read.values["operator"]
    check = _BINARY_VALUE_CHECKS.get(operator, _check_binary_path)
    for i, value in enumerate(read.values["values"]):
        problem = check(value)
        if problem:
            walk.report(*read.at("values", i), problem)
    if read.values["follow_children"] and operator not in vocab.SET_OPERATORS:
        walk.report(*read.at("follow_children"), f"followChildren works only with In and NotIn, not {operator}")


MATCH_BINARIES = Schema("a binaries filter", {
    "operator": Field("operator", Enum(vocab.BINARY_OPERATORS, "operator", vocab.OPERATOR_ALIASES), required=True),
    "values": Field("values", ListOf(Str(), MAX_BINARY_VALUES, "values"), required=True, check=_at_least_one),
    "followChildren": Field("follow_children", Bool(), default=False),
}, construct(MatchBinaries), _check_match_binaries)

MATCH_NAMESPACES = Schema("a namespaces filter", {
    "namespace": Field("namespace", Enum(vocab.NAMESPACES, "namespace", fold_case=True), required=True),
    "operator": Field("operator", SET_OPERATOR, required=True),
    "values": Field("values", ListOf(Scalar(check_namespace_value), MAX_NAMESPACE_VALUES, "values"), required=True,
                    check=_at_least_one),
}, construct(MatchNamespaces))

MATCH_NAMESPACE_CHANGES = Schema("a namespace changes filter", {
    "operator": Field("operator", SET_OPERATOR, required=True),
    "values": Field("values", ListOf(Str(check=check_namespace_name)), required=True, check=_at_least_one),
}, construct(MatchNamespaceChanges))


def _build_capabilities(cls: type) -> Any:
    """Capability names as ``CAP_*`` in upper case (Tetragon trims them and ignores case)."""
    def build(walk: Walk, values: dict[str, Any], loc: Location) -> Any:
        values["values"] = tuple(value.strip().upper() for value in values["values"])
        return cls(**values, loc=loc)
    return build


def _capabilities_fields() -> dict[str, Field]:
    return {
        "type": Field("type", Enum(vocab.CAPABILITY_SETS, "capability set", fold_case=True), default="Effective"),
        "operator": Field("operator", SET_OPERATOR, required=True),
        "isNamespaceCapability": Field("is_namespace_capability", Bool(), default=False),
        "values": Field("values", ListOf(Str(check=check_capability)), required=True, check=_at_least_one),
    }


MATCH_CAPABILITIES = Schema("a capabilities filter", _capabilities_fields(),
                            _build_capabilities(MatchCapabilities))
MATCH_CAPABILITY_CHANGES = Schema("a capability changes filter", _capabilities_fields(),
                                  _build_capabilities(MatchCapabilityChanges))

# ── actions ──────────────────────────────────────────────────────────────────────────────────────

# action -> (keys it needs, keys it may also use); any other key set on it is ignored by Tetragon.
_POST_KEYS = ("rateLimit", "rateLimitScope", "kernelStackTrace", "userStackTrace", "imaHash")
ACTION_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Post": ((), _POST_KEYS),
    "NoPost": ((), ()),
    "Sigkill": ((), ()),
    "Signal": (("argSig",), ()),
    "Override": ((), ("argError", "argRegs")),
    "FollowFD": (("argFd", "argName"), ()),
    "CopyFD": (("argFd", "argName"), ()),
    "UnfollowFD": (("argFd",), ("argName",)),
    "GetUrl": (("argUrl",), ()),
    "DnsLookup": (("argFqdn",), ()),
    "TrackSock": ((), ("argSock",)),  # argSock is optional in Tetragon's CRD (0 when unset)
    "UntrackSock": ((), ("argSock",)),
    "NotifyEnforcer": ((), ("argError", "argSig")),
    "CleanupEnforcerNotification": ((), ()),
    "Set": (("argIndex", "argValue"), ()),
}


def _check_action(walk: Walk, read: Read) -> None:
    action = read.values["action"]
    needed, optional = ACTION_KEYS[action]
    given = {read.keys[attr]: attr for attr in read.nodes if attr != "action"}
    for key in needed:
        if key not in given:
            walk.report(*read.at("action"), f"action {action} needs {key}")
    if action == "Override" and not {"argError", "argRegs"} & set(given):
        walk.report(*read.at("action"), "action Override needs argError (the error to return)")
    for key, attr in given.items():
        if key in needed or key in optional:
            continue
        if key == "rateLimit":
            walk.report(*read.at(attr), f"rateLimit only works with the Post action, not {action}")
        else:
            walk.warn(*read.at(attr), f"{key} is ignored by action {action}")
    if "rateLimitScope" in given and "rateLimit" not in given and action == "Post":
        walk.warn(*read.at("rate_limit_scope"), "rateLimitScope has no effect without rateLimit")
    if action in vocab.DEPRECATED_ACTIONS:
        walk.warn(*read.at("action"), f"action {action} is deprecated by Tetragon (removed in 1.5) and does nothing "
                                      "in tetra: an fd argument is read as its file's path from the process's file "
                                      "table, so matchArgs on it compare file names without following the fd")


ACTION = Schema("an action", {
    "action": Field("action", Enum(vocab.ACTIONS, "action", fold_case=True), required=True),
    "argSig": Field("arg_sig", Int(1, 64)),
    "argError": Field("arg_error", INT32),
    "rateLimit": Field("rate_limit", Scalar(check_rate_limit)),
    "rateLimitScope": Field("rate_limit_scope", Enum(vocab.RATE_LIMIT_SCOPES, "rateLimitScope")),
    "kernelStackTrace": Field("kernel_stack_trace", Bool(), default=False),
    "userStackTrace": Field("user_stack_trace", Bool(), default=False),
    "imaHash": Field("ima_hash", Bool(), default=False),
    "argUrl": Field("arg_url", Str(check=check_url)),
    "argFqdn": Field("arg_fqdn", Str(check=check_fqdn)),
    "argFd": Field("arg_fd", INDEX),
    "argName": Field("arg_name", INDEX),
    "argSock": Field("arg_sock", INDEX),
    "argIndex": Field("arg_index", INDEX),
    "argValue": Field("arg_value", INT32),
    "argRegs": Field("arg_regs", ListOf(Str()), default=()),
}, construct(Action), _check_action)

# ── selectors ────────────────────────────────────────────────────────────────────────────────────

SELECTOR_FIELDS: dict[str, Field] = {
    "matchArgs": Field("match_args", ListOf(Obj(MATCH_ARG)), default=()),
    "matchReturnArgs": Field("match_return_args", ListOf(Obj(MATCH_ARG)), default=()),
    "matchPIDs": Field("match_pids", ListOf(Obj(MATCH_PIDS)), default=()),
    "matchBinaries": Field("match_binaries", ListOf(Obj(MATCH_BINARIES)), default=()),
    "matchParentBinaries": Field("match_parent_binaries", ListOf(Obj(MATCH_BINARIES)), default=()),
    "matchNamespaces": Field("match_namespaces", ListOf(Obj(MATCH_NAMESPACES)), default=()),
    "matchNamespaceChanges": Field("match_namespace_changes", ListOf(Obj(MATCH_NAMESPACE_CHANGES)), default=()),
    "matchCapabilities": Field("match_capabilities", ListOf(Obj(MATCH_CAPABILITIES)), default=()),
    "matchCapabilityChanges": Field("match_capability_changes", ListOf(Obj(MATCH_CAPABILITY_CHANGES)), default=()),
    "matchActions": Field("match_actions", ListOf(Obj(ACTION)), default=()),
    "matchReturnActions": Field("match_return_actions", ListOf(Obj(ACTION)), default=()),
    "matchData": Field("match_data", ListOf(Obj(MATCH_ARG)), default=()),
}
MACROS = "selectors_macros"


def _macros(walk: Walk) -> Mapping[str, Selector]:
    return walk.state.get(MACROS, NO_MAPPING)


def _check_selector(walk: Walk, read: Read) -> None:
    defined = _macros(walk)
    for i, name in enumerate(read.values["macros"]):
        if name not in defined:
            known = f"; defined: {listed(defined)}" if defined else "; spec.selectorsMacros defines none"
            walk.report(*read.at("macros", i), f"unknown selector macro {quoted(name)}{suggest(name, defined)}{known}")


def _build_selector(walk: Walk, values: dict[str, Any], loc: Location) -> Selector:
    """A selector with the filters and actions of its macros appended to its own.

    Built in one pass per field: appending macro by macro copies the tuples again each time, which
    ``macros: [m, m, m, ...]`` (a few bytes per use) turns into minutes of quadratic work.
    """
    defined = _macros(walk)
    macros = [defined[name] for name in values.pop("macros") if name in defined]
    for spec in SELECTOR_FIELDS.values():
        values[spec.attr] = (*values[spec.attr], *(item for macro in macros for item in getattr(macro, spec.attr)))
    return Selector(**values, loc=loc)


SELECTOR = Schema("a selector", {**SELECTOR_FIELDS, "macros": Field("macros", ListOf(Str()), default=())},
                  _build_selector, _check_selector)
MACRO = Schema("a selector macro", SELECTOR_FIELDS, construct(Selector))

# ── hooks ────────────────────────────────────────────────────────────────────────────────────────

MESSAGE = Field("message", Str(max_len=MAX_MESSAGE))
TAGS = Field("tags", ListOf(Str(), MAX_TAGS, "tags"), default=())
ARGS = Field("args", ListOf(Obj(ARG), MAX_ARGS, "args"), default=())
DATA = Field("data", ListOf(Obj(DATA_ARG), MAX_DATA, "data entries"), default=())
# Tetragon never reads returnArg.index (its Go struct defaults it to 0): optional here too.
RETURN_ARG = Field("return_arg", Obj(DATA_ARG))
SELECTORS = Field("selectors", ListOf(Obj(SELECTOR), MAX_SELECTORS, "selectors"), default=())
RETURN = Field("return_", Bool(), default=False)

IGNORE = Schema("ignore conditions", {
    "callNotFound": Field("call_not_found", Bool(), default=False),
}, lambda walk, values, loc: values["call_not_found"])


def _kprobe_schema(what: str) -> Schema:
    return Schema(what, {
        "call": Field("call", Str(check=check_call), required=True),
        "syscall": Field("syscall", Bool(), default=True),
        "return": RETURN,
        "message": MESSAGE,
        "args": ARGS,
        "data": DATA,
        "returnArg": RETURN_ARG,
        "returnArgAction": Field("return_arg_action", Enum(vocab.RETURN_ARG_ACTIONS, "returnArgAction",
                                                           fold_case=True)),
        "selectors": SELECTORS,
        "tags": TAGS,
        "ignore": Field("ignore_call_not_found", Obj(IGNORE), default=False),
    }, construct(KProbe))


KPROBE = _kprobe_schema("a kprobe")
FENTRY = _kprobe_schema("an fentry")

TRACEPOINT = Schema("a tracepoint", {
    "subsystem": Field("subsystem", Str(check=check_identifier), required=True),
    "event": Field("event", Str(check=check_identifier), required=True),
    "raw": Field("raw", Bool(), default=False),
    "message": MESSAGE,
    "args": ARGS,
    "selectors": SELECTORS,
    "tags": TAGS,
}, construct(Tracepoint))

_UPROBE_TARGETS = ("symbols", "offsets", "addrs")


def _check_uprobe(walk: Walk, read: Read) -> None:
    given = [key for key in _UPROBE_TARGETS if read.values[key]]
    if len(given) != 1:
        how = "none is" if not given else f"{' and '.join(given)} are"
        walk.report(read.node, read.path, f"a uprobe needs exactly one of symbols, offsets or addrs ({how} set)")


UPROBE = Schema("a uprobe", {
    "path": Field("path", Str(), required=True),
    "btfPath": Field("btf_path", Str()),
    "symbols": Field("symbols", ListOf(Str()), default=()),
    "offsets": Field("offsets", ListOf(ADDRESS), default=()),
    "addrs": Field("addrs", ListOf(ADDRESS), default=()),
    "refCtrOffsets": Field("ref_ctr_offsets", ListOf(ADDRESS), default=()),
    "message": MESSAGE,
    "args": ARGS,
    "data": DATA,
    "selectors": SELECTORS,
    "tags": TAGS,
    "return": RETURN,
    "returnArg": RETURN_ARG,
}, construct(UProbe), _check_uprobe)

LSM_HOOK = Schema("an LSM hook", {
    "hook": Field("hook", Str(check=check_identifier), required=True),
    "message": MESSAGE,
    "args": ARGS,
    "selectors": SELECTORS,
    "tags": TAGS,
}, construct(LsmHook))

USDT = Schema("a USDT probe", {
    "path": Field("path", Str(), required=True),
    "provider": Field("provider", Str(check=check_identifier), required=True),
    "name": Field("name", Str(check=check_identifier), required=True),
    "btfPath": Field("btf_path", Str()),
    "message": MESSAGE,
    "args": ARGS,
    "selectors": SELECTORS,
    "tags": TAGS,
}, construct(Usdt))

# ── lists, options, enforcers ────────────────────────────────────────────────────────────────────


def _check_list(walk: Walk, read: Read) -> None:
    list_type, values, pattern = read.values["type"], read.values["values"], read.values["pattern"]
    if list_type in vocab.GENERATED_LIST_TYPES and values:
        walk.report(*read.at("values"), f"a {list_type} list is generated: it cannot have values")
    if list_type == "generated_ftrace" and pattern is None:
        walk.report(read.node, read.path, "a generated_ftrace list needs a pattern (a regular expression)")
    if pattern is not None and list_type != "generated_ftrace":
        walk.report(*read.at("pattern"), "pattern is only used by generated_ftrace lists")
    if list_type not in vocab.GENERATED_LIST_TYPES and not values:
        walk.warn(read.node, read.path, "this list has no values")


def _build_list(walk: Walk, values: dict[str, Any], loc: Location) -> ListSpec:
    del values["validated"]  # Tetragon's own bookkeeping
    return ListSpec(**values, loc=loc)


LIST = Schema("a list", {
    "name": Field("name", Str(check=check_identifier), required=True),
    "type": Field("type", Enum(vocab.LIST_TYPES, "list type"), default=""),
    "values": Field("values", ListOf(Str()), default=()),
    "pattern": Field("pattern", Str(check=regex_problem)),  # matched by Tetragon with Go's regexp: RE2
    "validated": Field("validated", Bool(), default=False),
}, _build_list, _check_list)


def _check_policy_mode(text: str) -> str | None:
    if text in vocab.POLICY_MODES:
        return None
    return f"unknown policy-mode {quoted(text)}{suggest_or_list(text, vocab.POLICY_MODES)}"


def _check_cgroup_path(text: str) -> str | None:
    """tetra's own option: where network deny programs attach (see tetra/compiler/network.py)."""
    if not text or "\0" in text or ".." in text.split("/"):
        return "cgroup-path must name a cgroup v2 directory (absolute, or relative to the cgroup2 mount; no '..')"
    return None


OPTION_VALUES = {
    "disable-kprobe-multi": check_go_bool,
    "disable-uprobe-multi": check_go_bool,
    "policy-mode": _check_policy_mode,
    "cgroup-path": _check_cgroup_path,
    "enforce-protected-processes": check_go_bool,
    "observe-agent": check_go_bool,
}


def _check_option(walk: Walk, read: Read) -> None:
    name, value = read.values["name"], read.values["value"]
    check = OPTION_VALUES.get(name)
    if check is None:
        walk.warn(*read.at("name"), f"unknown option {quoted(name)}{suggest(name, OPTION_VALUES)}: it is ignored; "
                                    f"known: {', '.join(OPTION_VALUES)}")
        return
    problem = check(value)
    if problem:
        walk.report(*read.at("value"), problem)


OPTION = Schema("an option", {
    "name": Field("name", Str(), required=True),
    "value": Field("value", Str(), default=""),
}, construct(Option), _check_option)

ENFORCER = Schema("an enforcer", {
    "calls": Field("calls", ListOf(Str(check=check_call)), required=True, check=_at_least_one),
}, construct(Enforcer))

# ── label selectors (pods, containers, hosts) ────────────────────────────────────────────────────


def _check_requirement(walk: Walk, read: Read) -> None:
    operator, values = read.values["operator"], read.values["values"]
    if operator in vocab.SET_OPERATORS and not values:
        walk.report(*read.at("values"), f"operator {operator} needs at least one value")
    if operator not in vocab.SET_OPERATORS and values:
        walk.report(*read.at("values"), f"operator {operator} takes no values")


REQUIREMENT = Schema("a label requirement", {
    "key": Field("key", Str(), required=True),
    "operator": Field("operator", Enum(vocab.LABEL_OPERATORS, "operator"), required=True),
    "values": Field("values", ListOf(Str()), default=()),
}, lambda walk, values, loc: MappingProxyType(values))

LABEL_SELECTOR = Schema("a label selector", {
    "matchLabels": Field("matchLabels", MapOf(Str(check=check_label_value)), default=NO_MAPPING),
    "matchExpressions": Field("matchExpressions", ListOf(Obj(REQUIREMENT)), default=()),
}, lambda walk, values, loc: MappingProxyType(values))

# ── spec and document ────────────────────────────────────────────────────────────────────────────


def _check_spec(walk: Walk, read: Read) -> None:
    host = read.values["host_selector"]
    if host is not None and (host["matchLabels"] or host["matchExpressions"]):
        walk.report(*read.at("host_selector"), "hostSelector can only be {} (all hosts) for now")


def _build_spec(walk: Walk, values: dict[str, Any], loc: Location) -> Spec:
    del values[MACROS]  # already expanded into the selectors that use them
    # spec.rawtracepoints: Tetragon's other spelling of tracepoints with raw: true
    raw = tuple(replace(tp, raw=True) for tp in values.pop("raw_tracepoints"))
    values["tracepoints"] = values["tracepoints"] + raw
    return Spec(**values, loc=loc)


SPEC = Schema("the policy spec", {
    # Read first and published, so that selectors read later can use the macros.
    "selectorsMacros": Field(MACROS, MapOf(Obj(MACRO)), default=NO_MAPPING),
    "kprobes": Field("kprobes", ListOf(Obj(KPROBE), MAX_HOOKS, "kprobes"), default=()),
    "fentries": Field("fentries", ListOf(Obj(FENTRY), MAX_HOOKS, "fentries"), default=()),
    "tracepoints": Field("tracepoints", ListOf(Obj(TRACEPOINT), MAX_HOOKS, "tracepoints"), default=()),
    "rawtracepoints": Field("raw_tracepoints", ListOf(Obj(TRACEPOINT), MAX_HOOKS, "rawtracepoints"), default=()),
    "uprobes": Field("uprobes", ListOf(Obj(UPROBE), MAX_HOOKS, "uprobes"), default=()),
    "lsmhooks": Field("lsmhooks", ListOf(Obj(LSM_HOOK), MAX_HOOKS, "lsmhooks"), default=()),
    "usdts": Field("usdts", ListOf(Obj(USDT), MAX_HOOKS, "usdts"), default=()),
    "lists": Field("lists", ListOf(Obj(LIST)), default=()),
    "options": Field("options", ListOf(Obj(OPTION)), default=()),
    "enforcers": Field("enforcers", ListOf(Obj(ENFORCER), MAX_ENFORCERS, "enforcers"), default=()),
    "podSelector": Field("pod_selector", Obj(LABEL_SELECTOR)),
    "containerSelector": Field("container_selector", Obj(LABEL_SELECTOR)),
    "hostSelector": Field("host_selector", Obj(LABEL_SELECTOR)),
    "loader": Field("loader", Bool(), default=False),
}, _build_spec, _check_spec, publish=frozenset({MACROS}))

METADATA = Schema("metadata", {
    "name": Field("name", Str(check=check_dns_subdomain), required=True),
    "namespace": Field("namespace", Str(check=check_dns_label)),
    "labels": Field("labels", MapOf(Str(check=check_label_value)), default=NO_MAPPING),
    "annotations": Field("annotations", MapOf(Str()), default=NO_MAPPING),
    **{key: Field(key, Opaque()) for key in vocab.OTHER_METADATA_KEYS},
}, lambda walk, values, loc: values)


def _check_api_version(text: str) -> str | None:
    return None if text == vocab.API_VERSION else f"apiVersion must be {vocab.API_VERSION}, not {quoted(text)}"


def _check_document(walk: Walk, read: Read) -> None:
    kind, metadata = read.values["kind"], read.values["metadata"]
    if kind == "TracingPolicyNamespaced":
        if metadata["namespace"] is None:
            walk.report(*read.at("metadata"), "a TracingPolicyNamespaced needs metadata.namespace")
        host = find(read.nodes["spec"], "hostSelector")
        if host is not None:
            walk.report(host[0], "spec", "a TracingPolicyNamespaced cannot have a hostSelector")
    elif metadata["namespace"] is not None:
        walk.warn(*read.at("metadata"), "metadata.namespace is ignored: a TracingPolicy is cluster-wide "
                                        "(use kind TracingPolicyNamespaced)")


def _build_document(walk: Walk, values: dict[str, Any], loc: Location) -> TracingPolicy:
    metadata = values["metadata"]
    return TracingPolicy(values["api_version"], values["kind"], metadata["name"], metadata["namespace"],
                         values["spec"], loc)


DOCUMENT = Schema("a TracingPolicy", {
    "apiVersion": Field("api_version", Str(check=_check_api_version), required=True),
    "kind": Field("kind", Enum(vocab.KINDS, "kind"), required=True),
    "metadata": Field("metadata", Obj(METADATA), required=True),
    "spec": Field("spec", Obj(SPEC), required=True),
}, _build_document, _check_document)
