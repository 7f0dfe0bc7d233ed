"""Regular expressions that users write: compiled with RE2, so matching is linear in the text.

Filters run on the agent thread, the one that drains the ring buffers. Python's
``re`` backtracks: ``arguments_regex ["^(a+)+$"]`` against an unprivileged
``/bin/true aaaaaaaaaaaaaaaaaaaaaaaaa!`` took seconds (minutes at 30 characters)
and froze every event meanwhile, and ``"(a" * 3000`` raised RecursionError while
compiling. RE2 (the ``google-re2`` package) never backtracks: a search takes time
linear in the text whatever the pattern, and its parser does not recurse.

RE2 is also the syntax Tetragon speaks: Go's ``regexp`` is RE2, so a pattern means
here what it means there. A search is unanchored unless the pattern anchors
(``^``, ``$``, ``\\A``, ``\\z``; ``$`` is the end of the text, not before a final
newline), classes such as ``\\d`` and ``\\b`` are ASCII, alternation is
leftmost-first. What RE2 lacks, Go lacks too: backreferences, lookaround,
possessive and atomic groups. ``\\C`` (any byte), which C++ RE2 has and Go has
not, is refused as Go refuses it: it could split a character.

Limits, so a pattern cannot cost unbounded memory either: at most
``MAX_PATTERN_CHARS`` characters, and a compiled program within RE2's
``MAX_MEM`` bytes (the same budget bounds the lazily built DFA; past it RE2 falls
back to its NFA, slower but still linear). Every refusal is one line,
``RegexError``, which the callers locate (flag, object, key or policy field).

Every place that compiles a user's pattern uses ``compile_regex`` (filter flags,
gRPC subscriber filters, ``tetra getevents`` options, redaction filters) or
``regex_problem`` (TracingPolicy list patterns). tetra's own constant patterns
stay on ``re``: none repeats a group that can itself repeat over the same text,
so none backtracks more than linearly, and each reads short or trusted text
(names of at most 253 characters, durations, field paths, cgroup and kernel
files), never a user's pattern.
"""

from collections.abc import Iterator
from typing import Protocol

import re2

MAX_PATTERN_CHARS = 32 * 1024
"""The longest pattern accepted; a list of many alternatives belongs in several patterns."""

MAX_MEM = 4 << 20
"""RE2's memory budget per pattern (bytes): its compiled program and DFA cache."""

_OPTIONS = re2.Options()
_OPTIONS.max_mem = MAX_MEM
_OPTIONS.log_errors = False  # RE2 would print every refused pattern to stderr; the error says it once

_SHOWN_CHARS = 40


class Match(Protocol):
    """What is read from a match: the spans of the whole match (group 0) and of each group."""

    def span(self, group: int = 0) -> tuple[int, int]: ...
    def start(self, group: int = 0) -> int: ...
    def end(self, group: int = 0) -> int: ...


class RegexError(ValueError):
    """A pattern that is refused; the message is one line and names the pattern."""


class Regex:
    """One compiled pattern: ``search`` as Go's ``MatchString``, ``finditer`` as its ``FindAll``.

    Text is a ``str``; a lone surrogate in it (text that was not valid Unicode)
    is read as U+FFFD, as Go reads an invalid UTF-8 byte, rather than raising in
    the middle of the event stream. One character stands for one, so the spans of
    a match are those of the text given.
    """

    __slots__ = ("pattern", "groups", "_compiled")

    def __init__(self, pattern: str, compiled: "re2._Regexp") -> None:
        self.pattern = pattern
        self.groups: int = compiled.groups
        self._compiled = compiled

    def search(self, text: str) -> Match | None:
        """The first match anywhere in ``text`` (leftmost-first), or None."""
        try:
            return self._compiled.search(text)  # type: ignore[no-any-return]
        except UnicodeEncodeError:
            return self._compiled.search(_valid(text))  # type: ignore[no-any-return]

    def finditer(self, text: str) -> Iterator[Match]:
        """Successive non-overlapping matches; an empty match right where the previous one ended
        is skipped, as Go's ``ReplaceAll``/``FindAll`` do (Python's ``re`` keeps it)."""
        try:
            text.encode()
        except UnicodeEncodeError:
            text = _valid(text)
        previous_end = -1
        for match in self._compiled.finditer(text):
            start, end = match.span()
            if not (start == end == previous_end):
                yield match
            previous_end = end


def compile_regex(pattern: str) -> Regex:
    """``pattern`` compiled with RE2 in Go's syntax; RegexError says in one line why it is refused."""
    problem = _precheck(pattern)
    if problem is None:
        try:
            return Regex(pattern, re2.compile(pattern, _OPTIONS))
        except re2.error as err:
            problem = _reason(pattern, err)
    raise RegexError(f"{shown(pattern)} is not a valid regular expression (RE2 syntax): {problem}")


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is refused (one line), or None: for validators that report a string."""
    try:
        compile_regex(pattern)
    except RegexError as err:
        return str(err)
    return None


def shown(pattern: str) -> str:
    """A pattern quoted for a one-line message: control characters escaped, a long one cut."""
    text = pattern if len(pattern) <= _SHOWN_CHARS else pattern[:_SHOWN_CHARS]
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return f"'{text}'" if len(pattern) <= _SHOWN_CHARS else f"'{text}...' ({len(pattern)} characters)"


def _precheck(pattern: str) -> str | None:
    """What RE2 would accept but tetra must not: too long, not Unicode, ``\\C``."""
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"longer than {MAX_PATTERN_CHARS} characters"
    try:
        pattern.encode()
    except UnicodeEncodeError as err:
        return f"not valid Unicode (a lone surrogate at character {err.start})"
    escaped = False
    for char in pattern:
        if escaped and char == "C":
            return "\\C (any byte) is not supported, as in Go"
        escaped = not escaped and char == "\\"
    return None


def _reason(pattern: str, err: re2.error) -> str:
    """RE2's message (``code: fragment``) with the fragment cut, and a hint for what RE2 lacks."""
    message = err.args[0].decode("utf-8", "replace") if err.args and isinstance(err.args[0], bytes) else str(err)
    code, _, fragment = message.partition(": ")
    if code == "pattern too large - compile failed":
        return f"too large: compiled, it would take more than RE2's {MAX_MEM >> 20} MiB"
    reason = code if not fragment or fragment == pattern else f"{code} {shown(fragment)}"
    if code == "invalid perl operator" or (code == "invalid escape sequence" and fragment[1:2].isdigit()):
        reason += " (RE2, like Go, has no lookaround or backreferences)"
    return reason


def _valid(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, one character for one."""
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
