"""Redaction filters: ``--redaction-filters``, secrets in command lines replaced by ``*****``.

One JSON object per line, as in Tetragon::

    {"redact": ["(?:--password|-p)[\\\\s=]+(\\\\S+)"], "binary_regex": ["(?:^|/)mysql$"]}

What Tetragon does (pkg/fieldfilters/redaction.go, pkg/process/process.go), and so
does this:

* Every capture group of every match of a ``redact`` regex becomes ``*****``; the
  rest of the match is kept. A group inside one already redacted is covered by
  it, a group that took no part is left alone, and an empty group still gets
  ``*****`` (an empty password is not told from a real one).
* Only process ``arguments`` and ``environment_variables`` are redacted, not
  kprobe or tracepoint arguments. The patterns see each environment variable as
  ``NAME=value``: ``{"redact": ["^AWS_SECRET_ACCESS_KEY=(.*)$"]}`` masks that
  variable's value, in every process that has it.
  Tetragon redacts them once, when a process enters its cache, so every event
  carries redacted arguments for its process, parent and ancestors; here each of
  those is redacted per event, each judged by its own binary against
  ``binary_regex`` (none given: every binary).
* Filters apply in order, each to the result of the ones before.

``match`` (filters as in the allowlist, any may match) limits a redaction filter
to the events it selects, as Tetragon 1.1 did; Tetragon deprecated the key and
now ignores it, redacting every event.
"""

from typing import Any

from tetra.filters.eventtypes import event_key
from tetra.filters.events import EventFilter, compile_filter
from tetra.filters.reader import Issues, Reader, describe, objects
from tetra.regex import Regex, shown

MASK = "*****"
ENV_KEY = "environment_variables"  # tetra/process/environ.py's Process member (filters do not import process)

Process = dict[str, Any]


class RedactionRule:
    """One redaction filter, compiled."""

    def __init__(self, patterns: tuple[Regex, ...], binaries: tuple[Regex, ...],
                 match: tuple[EventFilter, ...]) -> None:
        self.patterns = patterns
        self.binaries = binaries
        self.match = match

    def selects(self, event: dict[str, Any]) -> bool:
        """No ``match``: every event; else any of its filters must match."""
        return not self.match or any(f.matches(event) for f in self.match)

    def covers(self, binary: str) -> bool:
        return not self.binaries or any(p.search(binary) is not None for p in self.binaries)


class Redactor:
    """Applies redaction rules to events; never modifies the event it is given."""

    def __init__(self, rules: list[RedactionRule]) -> None:
        self.rules = rules
        self._selective = any(rule.match for rule in rules)

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        """``event`` with its processes' arguments redacted; ``event`` itself when nothing changed.

        Only the dicts on the path to a changed ``arguments`` are new; everything
        else is shared with ``event``.
        """
        key = event_key(event)
        if key is None:
            return event
        rules = [r for r in self.rules if r.selects(event)] if self._selective else self.rules
        if not rules:
            return event
        body = event[key]
        changed: dict[str, Any] = {}
        for role in ("process", "parent"):
            process = body.get(role)
            if process is not None and (redacted := _redact_process(process, rules)) is not process:
                changed[role] = redacted
        ancestors = body.get("ancestors")
        if ancestors:
            redacted_ancestors = [_redact_process(ancestor, rules) for ancestor in ancestors]
            if any(new is not old for new, old in zip(redacted_ancestors, ancestors)):
                changed["ancestors"] = redacted_ancestors
        if not changed:
            return event
        return {**event, key: {**body, **changed}}


def _redact_process(process: Process, rules: list[RedactionRule]) -> Process:
    arguments = process.get("arguments")
    env = process.get(ENV_KEY)
    if not arguments and not env:
        return process
    binary = process.get("binary", "")
    patterns = [pattern for rule in rules if rule.covers(binary) for pattern in rule.patterns]
    changed: Process = {}
    if arguments and (redacted := _redact_all(patterns, arguments)) != arguments:
        changed["arguments"] = redacted
    if env and (redacted_env := _redact_env(patterns, env)) is not env:
        changed[ENV_KEY] = redacted_env
    return {**process, **changed} if changed else process


def _redact_all(patterns: list[Regex], text: str) -> str:
    for pattern in patterns:
        text = redact_text(pattern, text)
    return text


def _redact_env(patterns: list[Regex], env: list[dict[str, str]]) -> list[dict[str, str]]:
    """Each variable as ``NAME=value`` through the patterns; ``env`` itself when none changed."""
    out = []
    changed = False
    for var in env:
        text = f"{var.get('Key', '')}={var.get('Value', '')}"  # protojson leaves "" out
        redacted = _redact_all(patterns, text)
        if redacted != text:
            name, _, value = redacted.partition("=")
            var = {"Key": name, "Value": value}
            changed = True
        out.append(var)
    return out if changed else env


def redact_text(pattern: Regex, text: str) -> str:
    """``text`` with the capture groups of every match of ``pattern`` replaced by ``*****``.

    Matches are Go's ``ReplaceAllStringFunc`` ones (RE2, no empty match abutting the
    previous one); the groups are read from each match in its place in ``text``.
    """
    pieces: list[str] = []
    done = 0
    for match in pattern.finditer(text):
        for group in range(1, pattern.groups + 1):
            start, end = match.span(group)
            if start < done:  # took no part (-1), or inside a group already redacted
                continue
            pieces += (text[done:start], MASK)
            done = end
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def parse_redaction_filters(text: str, source: str, *, enable_pid_set: bool = False) -> Redactor:
    """The rules of a ``--redaction-filters`` value; every problem is reported in one FilterError."""
    issues = Issues()
    rules = []
    for where, obj in objects(text, source, issues):
        reader = Reader(where, issues)
        before = len(issues.messages)
        keys = reader.keys(obj, ("match", "redact", "binary_regex"))
        patterns = reader.regexes("redact", keys["redact"]) if "redact" in keys else None
        if keys.get("redact") in (None, []):
            reader.error(None, "a redaction filter needs 'redact' (regular expressions whose groups are redacted)")
        for pattern in patterns or ():
            if pattern.groups == 0:
                reader.error("redact", f"{shown(pattern.pattern)} has no capture group, so it would redact nothing")
        binaries = reader.regexes("binary_regex", keys["binary_regex"]) if "binary_regex" in keys else ()
        match = _match_filters(reader, keys.get("match", []), enable_pid_set)
        if len(issues.messages) == before and patterns is not None and binaries is not None and match is not None:
            rules.append(RedactionRule(patterns, binaries, match))
    issues.raise_if_any()
    return Redactor(rules)


def _match_filters(reader: Reader, value: Any, enable_pid_set: bool) -> tuple[EventFilter, ...] | None:
    """``match``: a list of filter objects; a single object is taken too (Tetragon 1.1's examples)."""
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        reader.error("match", f"expected a list of filter objects, got {describe(value)}")
        return None
    filters = [compile_filter(item, Reader(f"{reader.where}: match[{i}]", reader.issues), enable_pid_set)
               for i, item in enumerate(items)]
    return tuple(f for f in filters if f is not None) if all(f is not None for f in filters) else None
