"""``tetra getevents`` filtering: its options as one allowlist filter plus field filters.

Tetragon's getevents (cmd/tetra/getevents) turns its options into a single
allowlist Filter, so the options AND and the values of one option OR:
``--process`` is ``binary_regex``, ``--namespace`` is ``namespace`` (``--host``
adds "", host processes), ``--namespace-regex`` is ``namespace_regex``, ``--pod`` is ``pod_regex``, ``--event-types`` is
``event_set``, ``--policy-names`` is ``policy_names`` and ``--cel-expression`` is
``cel_expression``; ``-f``/``-F`` are field filters applied to the events that
pass. No option at all passes everything.

Event type names are taken in any case here (``process_exec`` too); Tetragon
wants them upper-case. Values are not split on commas: regular expressions
may contain them (``a{1,3}``), so splitting ``--namespace a,b`` as Tetragon's
flag parser does is the CLI's job. Field paths are split, since they never
contain commas.
"""

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

import orjson

from tetra.filters import FilterError
from tetra.filters.events import EventFilter, compile_filter
from tetra.filters.fields import cli_field_filters
from tetra.filters.reader import Issues, Reader

if TYPE_CHECKING:
    from tetra.filters.cel import Schema

Event = dict[str, Any]

_LABELS = {"binary_regex": "--process", "namespace": "--namespace", "namespace_regex": "--namespace-regex",
           "pod_regex": "--pod",
           "event_set": "--event-types", "policy_names": "--policy-names", "cel_expression": "--cel-expression"}


class ClientFilter:
    """The getevents options, checked at construction (FilterError lists every problem)."""

    def __init__(self, *, event_types: Iterable[str] = (), namespaces: Iterable[str] = (),
                 namespace_regexes: Iterable[str] = (), pods: Iterable[str] = (), processes: Iterable[str] = (),
                 policy_names: Iterable[str] = (), host: bool = False, include_fields: Iterable[str] = (),
                 exclude_fields: Iterable[str] = (), cel_expressions: Iterable[str] = (),
                 cel_schema: "Schema | None" = None) -> None:
        spec = {
            "event_set": [name.upper() for name in event_types],
            "namespace": [*namespaces, *([""] if host else [])],
            "namespace_regex": list(namespace_regexes),
            "pod_regex": list(pods),
            "binary_regex": list(processes),
            "policy_names": list(policy_names),
            "cel_expression": list(cel_expressions),
        }
        issues = Issues()
        event_filter = compile_filter(spec, Reader("", issues, _LABELS), cel_schema=cel_schema)
        fields = None
        try:
            fields = cli_field_filters(include_fields, exclude_fields)
        except FilterError as err:
            issues.messages.extend(err.issues)
        issues.raise_if_any()  # so compile_filter did not return None, nor did cli_field_filters fail
        self.filter = cast(EventFilter, event_filter)
        self.fields = fields if fields is not None and fields.filters else None
        self.invalid_lines = 0

    @property
    def cel_errors(self) -> int:
        """``--cel-expression`` evaluations that failed, each a skipped event."""
        return self.filter.cel.errors if self.filter.cel is not None else 0

    def apply(self, event: Event) -> Event | None:
        """The event to print (fields filtered), or None if the options reject it."""
        if not self.filter.matches(event):
            return None
        return self.fields.apply(event) if self.fields is not None else event

    def stream(self, lines: Iterable[bytes | str]) -> Iterator[Event]:
        """The events of a JSON-lines stream (stdin) that pass; lines that are not a JSON
        object are skipped and counted in ``invalid_lines``, blank lines are ignored."""
        for line in lines:
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                event = None
            if not isinstance(event, dict):
                self.invalid_lines += 1
                continue
            passed = self.apply(event)
            if passed is not None:
                yield passed
