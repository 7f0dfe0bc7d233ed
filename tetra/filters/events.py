"""Event filters: ``--export-allowlist`` / ``--export-denylist`` and the filters the CLI builds.

A filter list is JSON objects, one per line (``parse_filter_list``). The keys of
one object must all match (AND), any object of a list may match (OR), and a list
value matches when any of its items does (OR), as in Tetragon's
``pkg/filters``. ``ExportFilter`` combines the two lists: no allowlist allows
everything, and the denylist wins over the allowlist.

Each object compiles to an ``EventFilter``: the event types it is limited to
(``event_set``, used to pick the filters worth evaluating for an event's type),
a tuple of checks on the event's body, cheapest first, and last its CEL
expressions (``cel_expression``, tetra.filters.cel), which see the event's type
too. ``ExportFilter.cel_errors`` counts the evaluations that failed (each one
a non-match). Regular expressions are searched, not anchored (Go's ``MatchString``); they are Python's ``re``,
which accepts every RE2 pattern Tetragon users write except ``\\C`` and
``\\z`` (Python spells it ``\\Z``).
"""

import json
from typing import TYPE_CHECKING, Any

from tetra.filters.checks import CHECKS, Body, Check, PidSet
from tetra.filters.eventtypes import BODY_KEYS, event_key, read_event_set
from tetra.filters.reader import Issues, Reader, objects

if TYPE_CHECKING:  # tetra.filters.cel is imported when an expression is compiled: its library takes ~0.1 s
    from tetra.filters.cel import CelExpressions, Schema

_NO_BODY: Body = {}

# Keys that read process arguments: the chain redacts before evaluating them (and CEL expressions, which may).
ARGUMENT_KEYS = frozenset({"arguments_regex", "parent_arguments_regex"})


class EventFilter:
    """One filter object: its event types (None: all), the checks its body must pass and its
    CEL expressions (None: no ``cel_expression``), one of which must hold."""

    def __init__(self, event_keys: frozenset[str] | None, checks: tuple[Check, ...], pid_set: PidSet | None,
                 reads_arguments: bool, cel: "CelExpressions | None" = None) -> None:
        self.event_keys = event_keys
        self.checks = checks
        self.pid_set = pid_set
        self.reads_arguments = reads_arguments
        self.cel = cel

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether ``event`` matches: its type is in ``event_set`` and every check passes."""
        key = event_key(event)
        body = event[key] if key is not None else _NO_BODY
        if self.pid_set is not None:
            self.pid_set.observe(key, body)
        return (self.event_keys is None or key in self.event_keys) and self.matches_body(key, body)

    def matches_body(self, key: str | None, body: Body) -> bool:
        """The checks alone, for callers that already dispatched on the event's type (``key``)."""
        for check in self.checks:
            if not check(body):
                return False
        return self.cel is None or self.cel(key, body)


class ExportFilter:
    """An allowlist and a denylist: no allowlist allows all, and the denylist wins."""

    def __init__(self, allow: list[EventFilter], deny: list[EventFilter]) -> None:
        self.allow = allow
        self.deny = deny
        self._pid_sets = tuple(f.pid_set for f in allow + deny if f.pid_set is not None)
        self._allow = _by_type(allow)
        self._deny = _by_type(deny)
        self.reads_arguments = any(f.reads_arguments for f in allow + deny)
        self._cel = tuple(f.cel for f in allow + deny if f.cel is not None)

    @property
    def cel_errors(self) -> int:
        """CEL evaluations that failed, so far: each one counted as a non-match."""
        return sum(cel.errors for cel in self._cel)

    @property
    def cel_last_error(self) -> str:
        """The message of a failed CEL evaluation ("" if none failed), for the log."""
        return next((cel.last_error for cel in self._cel if cel.last_error), "")

    def accepts(self, event: dict[str, Any]) -> bool:
        """Whether to export ``event``: some allow filter matches (or there are none) and no deny filter does.

        Only the filters whose ``event_set`` admits the event's type are evaluated.
        """
        key = event_key(event)
        body = event[key] if key is not None else _NO_BODY
        for pid_set in self._pid_sets:
            pid_set.observe(key, body)
        if self.allow:
            for f in self._allow[key]:
                if f.matches_body(key, body):
                    break
            else:
                return False
        for f in self._deny[key]:
            if f.matches_body(key, body):
                return False
        return True


def _by_type(filters: list[EventFilter]) -> dict[str | None, tuple[EventFilter, ...]]:
    """For each body key (None: an event of no known type), the filters that can match it, in order."""
    table: dict[str | None, tuple[EventFilter, ...]] = {
        key: tuple(f for f in filters if f.event_keys is None or key in f.event_keys) for key in BODY_KEYS
    }
    table[None] = tuple(f for f in filters if f.event_keys is None)
    return table


def parse_filter_list(text: str, source: str, *, enable_pid_set: bool = False,
                      cel_schema: "Schema | None" = None) -> list[EventFilter]:
    """The filters of a ``--export-allowlist``/``--export-denylist`` value.

    ``source`` names the value in messages (``source:line: ...``). Every problem
    is reported in one FilterError. As in Tetragon, ``pid_set`` is refused
    unless ``enable_pid_set``: it tracks pids on a best-effort basis and pids
    are reused. ``cel_schema`` gives the event types ``cel_expression`` reads; without it
    that key is refused.
    """
    issues = Issues()
    filters = [f for where, obj in objects(text, source, issues)
               if (f := compile_filter(obj, Reader(where, issues), enable_pid_set, cel_schema)) is not None]
    issues.raise_if_any()
    return filters


def compile_filter(obj: dict[str, Any], reader: Reader, enable_pid_set: bool = False,
                   cel_schema: "Schema | None" = None) -> EventFilter | None:
    """One filter object as an EventFilter, or None when it has problems (reported to ``reader``)."""
    before = len(reader.issues.messages)
    # An empty list is an unset repeated field in protojson: {"binary_regex": []} constrains nothing.
    keys = {key: value for key, value in reader.keys(obj, _ALL_KEYS).items() if value != []}
    event_keys = read_event_set(reader, "event_set", keys["event_set"]) if "event_set" in keys else None
    pid_set = None
    if "pid_set" in keys:
        pids = reader.pids("pid_set", keys["pid_set"])
        if pids is not None and not enable_pid_set:
            reader.error("pid_set", "refused: it tracks processes on a best-effort basis (pids are reused) and "
                         "is meant for testing, not production; pass --enable-pid-set-filter to use it anyway")
        pid_set = PidSet(pids) if pids is not None else None
    checks: list[Check] = [pid_set] if pid_set is not None else []
    for name, build in CHECKS.items():
        if name in keys:
            check = build(reader, name, keys[name])
            if check is not None:
                checks.append(check)
    cel = _cel_expressions(reader, keys["cel_expression"], cel_schema) if "cel_expression" in keys else None
    if len(reader.issues.messages) > before:
        return None
    reads_arguments = bool(ARGUMENT_KEYS & keys.keys()) or cel is not None
    return EventFilter(event_keys, tuple(checks), pid_set, reads_arguments, cel)


def _cel_expressions(reader: Reader, value: Any, schema: "Schema | None") -> "CelExpressions | None":
    """The CEL expressions of ``cel_expression``, each compiled (and bounded) once; each refused one reported."""
    from tetra.filters.cel import CelError, CelExpressions, compile_cel

    texts = reader.strings("cel_expression", value)
    if texts is None:
        return None
    if schema is None:
        reader.error("cel_expression", "CEL expressions are not evaluated here")
        return None
    events = schema()
    programs = []
    for text in texts:
        try:
            programs.append(compile_cel(text, events))
        except CelError as err:
            shown = text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 3] + "..."
            reader.error("cel_expression", f"{json.dumps(shown)}: {err}")
    return CelExpressions(tuple(programs)) if len(programs) == len(texts) else None


_ALL_KEYS = ("event_set", "pid_set", *CHECKS, "cel_expression")
_SHOWN_CHARS = 100  # of a refused expression, in its message (the message's line:column point into it)
