"""Event types in filters: Tetragon's EventType names, and which key of an event dict holds the body.

An event dict has exactly one key naming its type (``process_exec``, ...) next to
``node_name`` and ``time``; the types, their EventType names and numbers (which
protojson also accepts) are the table in tetra/wire/events.py.
"""

from typing import Any

from tetra.filters.reader import Reader, describe
from tetra.policy.values import suggest
from tetra.wire.events import EVENT_TYPES as _TABLE

EVENT_TYPES: dict[str, int] = {event.name: event.number for event in _TABLE}

BODY_KEYS: frozenset[str] = frozenset(event.key for event in _TABLE)
_BY_NUMBER = {number: name for name, number in EVENT_TYPES.items()}


def event_key(event: dict[str, Any]) -> str | None:
    """The key holding the event's body (``"process_exec"``), or None if it has none we know."""
    for key in event:
        if key in BODY_KEYS:
            return key
    return None


def read_event_set(reader: Reader, key: str, value: Any) -> frozenset[str] | None:
    """The body keys named by a list of EventType names (or numbers, as protojson allows)."""
    if not isinstance(value, list):
        reader.error(key, f"expected a list of event types, got {describe(value)}")
        return None
    keys: set[str] = set()
    ok = True
    for item in value:
        name = _name(item)
        if name is None:
            shown = f"'{item}'" if isinstance(item, str) else describe(item)
            reader.error(key, f"unknown event type {shown}" + _suggestion(item))
            ok = False
        else:
            keys.add(name.lower())
    return frozenset(keys) if ok else None


def _name(item: Any) -> str | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return _BY_NUMBER.get(item)
    if isinstance(item, str) and item in EVENT_TYPES:
        return item
    return None


def _suggestion(item: Any) -> str:
    return suggest(item, EVENT_TYPES) if isinstance(item, str) else ""
