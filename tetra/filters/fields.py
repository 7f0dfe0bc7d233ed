"""Field filters: keep or drop fields of events, per event type.

``--field-filters`` is JSON objects, one per line, as in Tetragon::

    {"fields": "process.binary,process.arguments", "event_set": ["PROCESS_EXEC"], "action": "INCLUDE"}

``fields`` is a protobuf FieldMask: comma-separated dotted paths relative to the
event body (``process.binary``, not ``process_exec.process.binary``); ``node_name``
and ``time`` are always kept. ``INCLUDE`` (the default, as the enum's zero) keeps
only the listed paths, ``EXCLUDE`` drops them. ``event_set`` limits a filter to
those types (empty: all), ``invert_event_set`` to all other types. Filters apply
one after another, so an exclusion always wins over an inclusion. A path into a
list applies to each item (``args.label``); a path naming a whole field covers
everything under it. Paths may be snake_case or camelCase (Tetragon accepts both).

``tetra getevents -f``/``-F`` are an INCLUDE and an EXCLUDE filter over all
types, in that order, as ``tetra getevents`` builds them (``apply_fields``).
"""

import functools
import re
from collections.abc import Iterable
from typing import Any

from tetra.filters.eventtypes import BODY_KEYS, event_key, read_event_set
from tetra.filters.reader import Issues, Reader, describe, objects

# A path trie: each key maps to the trie below it, or to None for the whole field.
Trie = dict[str, "Trie | None"]

_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
_ACTIONS = {"INCLUDE": True, "EXCLUDE": False, 0: True, 1: False}


class FieldFilter:
    """One filter: which event types it applies to, whether it keeps or drops, and its paths."""

    def __init__(self, event_keys: frozenset[str] | None, invert: bool, include: bool, trie: Trie) -> None:
        self.event_keys = event_keys
        self.invert = invert
        self.include = include
        self.trie = trie

    def applies_to(self, key: str) -> bool:
        """Tetragon's rule: no event set means every type; a set is inverted by invert_event_set."""
        return self.event_keys is None or (key in self.event_keys) != self.invert


class FieldFilters:
    """Field filters in order; ``apply`` returns a new event and never modifies its argument."""

    def __init__(self, filters: list[FieldFilter]) -> None:
        self.filters = filters
        self._by_type = {key: tuple(f for f in filters if f.applies_to(key)) for key in BODY_KEYS}

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        """``event`` with its body filtered; the event itself when no filter applies to its type.

        The result shares the values it keeps with ``event`` (only dicts and lists
        on the filtered paths are new), so neither may be modified afterwards.
        """
        key = event_key(event)
        stages = self._by_type[key] if key is not None else ()
        if not stages:
            return event
        body = event[key]
        for stage in stages:
            body = _include(body, stage.trie) if stage.include else _exclude(body, stage.trie)
        return {**event, key: body}


def _include(value: Any, trie: Trie) -> Any:
    if isinstance(value, dict):
        kept = {}
        for name, item in value.items():
            if name in trie:
                below = trie[name]
                kept[name] = item if below is None else _include(item, below)
        return kept
    if isinstance(value, list):
        return [_include(item, trie) for item in value]
    return value  # a path below a scalar keeps the scalar, as fieldmask-utils does


def _exclude(value: Any, trie: Trie) -> Any:
    if isinstance(value, dict):
        kept = {}
        for name, item in value.items():
            if name not in trie:
                kept[name] = item
            elif (below := trie[name]) is not None:
                kept[name] = _exclude(item, below)
        return kept
    if isinstance(value, list):
        return [_exclude(item, trie) for item in value]
    return value


def read_paths(reader: Reader, key: str, paths: Iterable[str]) -> Trie | None:
    """A trie of dotted paths; comma-separated lists are split. None (reported) if any is malformed."""
    trie: Trie = {}
    ok = True
    for path in (p.strip() for text in paths for p in text.split(",")):
        segments = path.split(".")
        bad = next((s for s in segments if not _SEGMENT.fullmatch(s)), None)
        if bad is not None:
            reader.error(key, f"invalid field path '{path}'" + (f": bad part '{bad}'" if bad else ""))
            ok = False
            continue
        _add(trie, [_CAMEL.sub(r"_\1", s).lower() for s in segments])
    return trie if ok else None


def _add(trie: Trie, segments: list[str]) -> None:
    """Add a path; a shorter path covering a longer one wins whichever comes first."""
    node = trie
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment in node and node[segment] is None:
            return
        if last:
            node[segment] = None
            return
        node = node.setdefault(segment, {})  # type: ignore[assignment]  # checked not None above


def parse_field_filters(text: str, source: str) -> FieldFilters:
    """The filters of a ``--field-filters`` value; every problem is reported in one FilterError."""
    issues = Issues()
    filters = []
    for where, obj in objects(text, source, issues):
        reader = Reader(where, issues)
        before = len(issues.messages)
        keys = reader.keys(obj, ("event_set", "fields", "action", "invert_event_set"))
        event_keys = read_event_set(reader, "event_set", keys["event_set"]) if "event_set" in keys else None
        invert = reader.boolean("invert_event_set", keys["invert_event_set"]) if "invert_event_set" in keys else False
        action = keys.get("action", "INCLUDE")
        if isinstance(action, bool) or not isinstance(action, str | int) or action not in _ACTIONS:
            reader.error("action", f"expected \"INCLUDE\" or \"EXCLUDE\", got {describe(action)}")
        trie = None
        if "fields" not in keys:
            reader.error(None, "a field filter needs 'fields' (comma-separated paths such as \"process.binary\")")
        elif not isinstance(keys["fields"], str):
            reader.error("fields", f"expected a string of comma-separated paths, got {describe(keys['fields'])}")
        else:
            trie = read_paths(reader, "fields", [keys["fields"]])
        if len(issues.messages) == before and trie is not None:
            filters.append(FieldFilter(event_keys or None, bool(invert), _ACTIONS[action], trie))
    issues.raise_if_any()
    return FieldFilters(filters)


_CLI_LABELS = {"include": "--include-fields", "exclude": "--exclude-fields"}


def cli_field_filters(include: Iterable[str], exclude: Iterable[str]) -> FieldFilters:
    """``-f``/``-F`` as Tetragon's getevents builds them: include, then exclude, for every type."""
    issues = Issues()
    reader = Reader("", issues, _CLI_LABELS)
    filters = []
    for key, paths in (("include", list(include)), ("exclude", list(exclude))):
        if paths:
            trie = read_paths(reader, key, paths)
            if trie is not None:
                filters.append(FieldFilter(None, False, key == "include", trie))
    issues.raise_if_any()
    return FieldFilters(filters)


@functools.lru_cache(maxsize=32)
def _cached(include: tuple[str, ...], exclude: tuple[str, ...]) -> FieldFilters:
    return cli_field_filters(include, exclude)


def apply_fields(event: dict[str, Any], include: list[str] | None, exclude: list[str] | None) -> dict[str, Any]:
    """``event`` with only the ``include`` paths kept and the ``exclude`` paths dropped.

    Paths are relative to the body, as in ``tetra getevents -f process.binary``;
    raises FilterError for a malformed path. Compiled paths are cached, so calling
    this per event costs the filtering, not the parsing.
    """
    return _cached(tuple(include or ()), tuple(exclude or ())).apply(event)
