"""The checks of a filter object, one builder per key, each reading its value with a Reader.

A builder returns a check, a function of the event body (``event["process_exec"]``
...) that holds or not, or None after reporting why the value is wrong. The
semantics are Tetragon's (pkg/filters/*.go): a process-based key never matches
an event without that process, a field left unset reads as "" (protobuf's
default), and pod-based keys never match host processes.
"""

from collections.abc import Callable
from typing import Any

from tetra.filters.labels import parse_selector
from tetra.filters.reader import Reader, describe
from tetra.policy.values import suggest
from tetra.policy.vocab import CAPABILITIES
from tetra.regex import Match, Regex
from tetra.wire.events import PROCESS_EXIT

Body = dict[str, Any]
Check = Callable[[Body], bool]


class PidSet:
    """``pid_set``: the listed pids and every descendant the filter has seen being born.

    Tetragon records a child when its parent is in the set while the filter
    evaluates it, so a child whose exec event another key (or an earlier
    filter) already decided is never recorded. Here every event is shown to
    ``observe`` first, whatever decides it, so descendants are tracked from the
    events themselves. A descendant is forgotten after its exit event, so the
    set does not grow with every process ever seen (Tetragon's grows forever).
    """

    def __init__(self, pids: frozenset[int]) -> None:
        self.roots = pids
        self.descendants: set[int] = set()
        self._exited: int | None = None

    def observe(self, key: str | None, body: Body) -> None:
        if self._exited is not None:
            self.descendants.discard(self._exited)
            self._exited = None
        process = body.get("process")
        if process is None:
            return
        pid = process.get("pid")
        if pid not in self.roots and pid not in self.descendants:
            parent = body.get("parent")
            ppid = parent.get("pid") if parent is not None else None
            if ppid in self.roots or ppid in self.descendants:
                self.descendants.add(pid)
        if key == PROCESS_EXIT.key and pid in self.descendants:
            self._exited = pid  # forgotten at the next event, once this one has been matched

    def __call__(self, body: Body) -> bool:
        process = body.get("process")
        if process is None:
            return False
        pid = process.get("pid")
        return pid in self.roots or pid in self.descendants


Builder = Callable[[Reader, str, Any], Check | None]
Search = Callable[[str], Match | None]


def _searcher(patterns: tuple[Regex, ...]) -> Search:
    """One callable returning the first match of any pattern, or None; a single pattern's own
    ``search`` when there is one (the usual case), saving a call per event."""
    if len(patterns) == 1:
        return patterns[0].search

    def search_any(text: str) -> Match | None:
        for pattern in patterns:
            match = pattern.search(text)
            if match is not None:
                return match
        return None

    return search_any


def _process_regex(role: str, name: str) -> Builder:
    """A regex on ``body[role][name]``: false without that process, "" when the field is unset
    (protobuf's default, as Tetragon sees it)."""

    def build(reader: Reader, key: str, value: Any) -> Check | None:
        patterns = reader.regexes(key, value)
        if patterns is None:
            return None
        search = _searcher(patterns)

        def check(body: Body) -> bool:
            process = body.get(role)
            return process is not None and search(process.get(name, "")) is not None

        return check

    return build


def _pod_regex(name: str) -> Builder:
    """A regex on ``body.process.pod[name]``; host processes (no pod) never match."""

    def build(reader: Reader, key: str, value: Any) -> Check | None:
        patterns = reader.regexes(key, value)
        if patterns is None:
            return None
        search = _searcher(patterns)

        def check(body: Body) -> bool:
            process = body.get("process")
            pod = process.get("pod") if process is not None else None
            return pod is not None and search(pod.get(name, "")) is not None

        return check

    return build


def _ancestor_binary(reader: Reader, key: str, value: Any) -> Check | None:
    """Any ancestor's binary; never matches without ancestors (Tetragon's ``--enable-ancestors``)."""
    patterns = reader.regexes(key, value)
    if patterns is None:
        return None
    search = _searcher(patterns)
    return lambda body: any(search(a.get("binary", "")) is not None for a in body.get("ancestors") or ())


def _namespace(reader: Reader, key: str, value: Any) -> Check | None:
    """Pod namespaces; "" stands for host processes (no pod), as in Tetragon's filterByNamespace."""
    namespaces = reader.strings(key, value)
    if namespaces is None:
        return None
    wanted = frozenset(namespaces)
    host = "" in wanted

    def check(body: Body) -> bool:
        process = body.get("process")
        if process is None:
            return False
        pod = process.get("pod")
        return host if pod is None else pod.get("namespace", "") in wanted

    return check


def _pid(reader: Reader, key: str, value: Any) -> Check | None:
    pids = reader.pids(key, value)
    if pids is None:
        return None

    def check(body: Body) -> bool:
        process = body.get("process")
        return process is not None and process.get("pid") in pids

    return check


def _policy_names(reader: Reader, key: str, value: Any) -> Check | None:
    """Events of the named TracingPolicies; events without a policy (exec, exit) never match."""
    names = reader.strings(key, value)
    if names is None:
        return None
    wanted = frozenset(names) - {""}
    return lambda body: body.get("policy_name", "") in wanted


def _labels(reader: Reader, key: str, value: Any) -> Check | None:
    """Pod labels against selectors (any may match); host processes never match, as in Tetragon."""
    texts = reader.strings(key, value)
    if texts is None:
        return None
    selectors = []
    for text in texts:
        try:
            selectors.append(parse_selector(text))
        except ValueError as err:
            reader.error(key, f"invalid selector {text!r}: {err}")
    if len(selectors) != len(texts):
        return None

    def check(body: Body) -> bool:
        process = body.get("process")
        pod = process.get("pod") if process is not None else None
        if pod is None:
            return False
        labels = pod.get("pod_labels") or {}
        return any(selector.matches(labels) for selector in selectors)

    return check


def _maybe_exec_probe(process: Body | None) -> bool:
    if process is None:
        return False
    container = (process.get("pod") or {}).get("container") or {}
    return bool(container.get("maybe_exec_probe", False))


def _health_check(reader: Reader, key: str, value: Any) -> Check | None:
    """Kubernetes exec probes, as Tetragon tells them: the process or its parent has
    ``pod.container.maybe_exec_probe`` (set by enrichment when the command line equals
    the container's liveness/readiness exec command). false selects everything else."""
    wanted = reader.boolean(key, value)
    if wanted is None:
        return None
    return lambda body: (_maybe_exec_probe(body.get("process")) or _maybe_exec_probe(body.get("parent"))) == wanted


def _in_init_tree(reader: Reader, key: str, value: Any) -> Check | None:
    """``process.in_init_tree``, taken as false when missing (Tetragon does the same)."""
    wanted = reader.boolean(key, value)
    if wanted is None:
        return None

    def check(body: Body) -> bool:
        process = body.get("process")
        return process is not None and bool(process.get("in_init_tree", False)) == wanted

    return check


_CAP_SETS = ("permitted", "effective", "inheritable")
_CAP_MATCHES = {
    "any": lambda have, listed: not have.isdisjoint(listed),
    "all": lambda have, listed: listed <= have,
    "exactly": lambda have, listed: have == listed,
    "none": lambda have, listed: have.isdisjoint(listed),
}


def _capabilities(reader: Reader, key: str, value: Any) -> Check | None:
    """``{"effective": {"any": ["CAP_SYS_ADMIN"]}, ...}``: each given set must match (AND), each
    with exactly one of any/all/exactly/none; needs ``process.cap`` (``--enable-process-cred``)."""
    if not isinstance(value, dict):
        reader.error(key, f"expected an object with {', '.join(_CAP_SETS)}, got {describe(value)}")
        return None
    tests = []
    for set_name, spec in reader.keys(value, _CAP_SETS, within=key).items():
        where = f"{key}.{set_name}"
        if not isinstance(spec, dict):
            reader.error(where, f"expected an object with one of {', '.join(_CAP_MATCHES)}, got {describe(spec)}")
            continue
        given = reader.keys(spec, _CAP_MATCHES, within=where)
        if len(given) != 1:
            reader.error(where, f"give exactly one of {', '.join(_CAP_MATCHES)}, got {len(given)}")
            continue
        (how, names), = given.items()
        listed = reader.strings(f"{where}.{how}", names)
        if listed is None:
            continue
        for name in listed:
            if name not in CAPABILITIES:
                reader.error(f"{where}.{how}", f"unknown capability '{name}'" + suggest(name, CAPABILITIES))
        tests.append((set_name, _CAP_MATCHES[how], frozenset(listed)))

    def check(body: Body) -> bool:
        process = body.get("process")
        caps = process.get("cap") if process is not None else None
        if caps is None:
            return False
        return all(match(frozenset(caps.get(name) or ()), listed) for name, match, listed in tests)

    return check


# In the order their checks run: cheap lookups first, regular expressions and selectors last.
CHECKS: dict[str, Builder] = {
    "pid": _pid,
    "namespace": _namespace,
    "policy_names": _policy_names,
    "health_check": _health_check,
    "in_init_tree": _in_init_tree,
    "binary_regex": _process_regex("process", "binary"),
    "parent_binary_regex": _process_regex("parent", "binary"),
    "ancestor_binary_regex": _ancestor_binary,
    "namespace_regex": _pod_regex("namespace"),
    "pod_regex": _pod_regex("name"),
    "container_id": _process_regex("process", "docker"),
    "arguments_regex": _process_regex("process", "arguments"),
    "parent_arguments_regex": _process_regex("parent", "arguments"),
    "labels": _labels,
    "capabilities": _capabilities,
}
