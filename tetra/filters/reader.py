"""Reading a filter flag's value: JSON objects one after another, and their typed keys.

Tetragon decodes these flags with a streaming JSON decoder, so objects are
usually one per line but may also span lines; both work here, and every object
is located by the line it starts on. Problems are collected in ``Issues`` and
raised together, so a user fixes a whole file in one pass.

Keys follow protojson, which Tetragon uses for these objects: the proto name
(``binary_regex``) or its JSON name (``binaryRegex``); ``null`` means unset; a
key given twice is an error. Unknown keys are errors too (with the
closest known key suggested).
"""

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from tetra.filters import FilterError
from tetra.policy.values import suggest
from tetra.regex import Regex, RegexError, compile_regex

_NON_SPACE = re.compile(r"\S")


class _Object(dict[str, Any]):
    """A decoded JSON object that remembers the keys it held more than once."""

    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    seen: set[str] = set()
    obj.duplicates = []
    for key, _ in pairs:
        if key in seen and key not in obj.duplicates:
            obj.duplicates.append(key)
        seen.add(key)
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_object)


class Issues:
    """The problems found in one or more flag values, raised at the end as one FilterError."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.messages.append(f"{where}: {message}" if where else message)

    def raise_if_any(self) -> None:
        if self.messages:
            raise FilterError(self.messages)


def objects(text: str, source: str, issues: Issues) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each JSON object in ``text`` with its location ``source:line``.

    A value that is not an object is reported and skipped; malformed JSON is
    reported and ends the reading, since nothing after it can be trusted.
    """
    pos, line = 0, 1
    while (first := _NON_SPACE.search(text, pos)) is not None:
        start = first.start()
        line += text.count("\n", pos, start)
        try:
            value, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError as err:
            issues.add(f"{source}:{err.lineno}", f"invalid JSON: {err.msg} (column {err.colno})")
            return
        where = f"{source}:{line}"
        if isinstance(value, dict):
            yield where, value
        else:
            issues.add(where, f"expected a JSON object, got {describe(value)}")
        line += text.count("\n", start, end)
        pos = end


def describe(value: Any) -> str:
    """A value as the user wrote it, shortened: for 'expected X, got Y' messages."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_name(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.capitalize() for word in rest)


class Reader:
    """Reads the keys of one object, reporting problems as ``where: label: message``.

    ``labels`` renames keys in messages: the CLI reports ``--process`` where a
    filter list reports ``binary_regex``.
    """

    def __init__(self, where: str, issues: Issues, labels: dict[str, str] | None = None) -> None:
        self.where = where
        self.issues = issues
        self.labels = labels or {}

    def error(self, key: str | None, message: str) -> None:
        label = self.labels.get(key, key) if key else None
        self.issues.add(self.where, f"{label}: {message}" if label else message)

    def keys(self, obj: dict[str, Any], known: Iterable[str], within: str | None = None) -> dict[str, Any]:
        """The object's set keys under their proto names; unknown and repeated keys are reported.

        ``within`` names the key holding ``obj`` when it is nested, for messages.
        """
        names = {name: name for name in known}
        names.update({_json_name(name): name for name in list(names)})
        for key in getattr(obj, "duplicates", ()):
            self.error(within, f"key '{key}' is given more than once")
        out: dict[str, Any] = {}
        for key, value in obj.items():
            name = names.get(key)
            if name is None:
                self.error(within, f"unknown key '{key}'" + suggest(key, set(names.values())))
            elif name in out:
                self.error(within, f"key '{name}' is given more than once (also as '{key}')")
            elif value is not None:
                out[name] = value
        return out

    def strings(self, key: str, value: Any) -> list[str] | None:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        self.error(key, f"expected a list of strings, got {describe(value)}")
        return None

    def boolean(self, key: str, value: Any) -> bool | None:
        if isinstance(value, bool):
            return value
        self.error(key, f"expected true or false, got {describe(value)}")
        return None

    def regexes(self, key: str, value: Any) -> tuple[Regex, ...] | None:
        """Compiled with RE2 (tetra.regex: linear-time, Go's syntax) and searched unanchored as
        Go's MatchString does; every refused pattern is reported."""
        patterns = self.strings(key, value)
        if patterns is None:
            return None
        compiled = []
        for pattern in patterns:
            try:
                compiled.append(compile_regex(pattern))
            except RegexError as err:
                self.error(key, str(err))
        return tuple(compiled) if len(compiled) == len(patterns) else None

    def pids(self, key: str, value: Any) -> frozenset[int] | None:
        """uint32 values; protojson also takes them as decimal strings."""
        if isinstance(value, list):
            pids = [_uint32(item) for item in value]
            if all(pid is not None for pid in pids):
                return frozenset(pid for pid in pids if pid is not None)
        self.error(key, f"expected a list of process ids, got {describe(value)}")
        return None


def _uint32(value: Any) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32:
        return value
    return None
