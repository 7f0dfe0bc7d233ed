"""Kubernetes label selectors, for the ``labels`` key of a filter.

Tetragon parses them with Kubernetes' own parser (k8s.io/apimachinery
``labels.Parse``); this is the same grammar::

    selector    := requirement ("," requirement)*      (all must hold; "" selects everything)
    requirement := key | "!" key                        (key exists / does not exist)
                 | key ("=" | "==" | "!=") value
                 | key ("in" | "notin") "(" value ("," value)* ")"
                 | key (">" | "<") integer

``!=`` and ``notin`` also hold when the key is absent, as in Kubernetes. Keys are
qualified names (``[prefix/]name``), values label values, both checked as the
API server checks them.
"""

import re
from collections.abc import Callable, Mapping

Labels = Mapping[str, str]
Requirement = Callable[[Labels], bool]

_TOKEN = re.compile(r"\s*(?:(!=|==|=|!|\(|\)|,|>|<)|([^\s!=(),<>]+))")
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INTEGER = re.compile(r"-?[0-9]+")
_SPECIAL = frozenset({"!=", "==", "=", "!", "(", ")", ",", ">", "<"})
_END = ""


class Selector:
    """A parsed selector; ``matches`` holds when every requirement holds."""

    def __init__(self, requirements: tuple[Requirement, ...]) -> None:
        self.requirements = requirements

    def matches(self, labels: Labels) -> bool:
        return all(requirement(labels) for requirement in self.requirements)


def parse_selector(text: str) -> Selector:
    """Parse ``text``; ValueError says what is wrong and where."""
    return _Parser(text).selector()


def _tokens(text: str) -> list[str]:
    """Every character is a space, a symbol or part of a word, so only trailing space is left over."""
    tokens, pos = [], 0
    while match := _TOKEN.match(text, pos):
        tokens.append(match.group(1) or match.group(2))
        pos = match.end()
    return tokens


def _check_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise ValueError(f"invalid label key {key!r}: the prefix must be a DNS subdomain (lowercase, at most 253)")
    if len(name) > 63 or not _NAME.fullmatch(name):
        raise ValueError(f"invalid label key {key!r}: the name must be at most 63 letters, digits, '-', '_' "
                         "or '.', starting and ending with a letter or digit")


def _check_value(value: str) -> None:
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        raise ValueError(f"invalid label value {value!r}: at most 63 letters, digits, '-', '_' or '.', "
                         "starting and ending with a letter or digit")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else _END

    def take(self) -> str:
        token = self.peek()
        self.pos += 1
        return token

    def expect(self, token: str, after: str) -> None:
        found = self.take()
        if found != token:
            raise ValueError(f"expected {token!r} after {after}, found {_show(found)}")

    def identifier(self, what: str, after: str) -> str:
        token = self.take()
        if token == _END or token in _SPECIAL:
            raise ValueError(f"expected {what} after {after}, found {_show(token)}")
        return token

    def selector(self) -> Selector:
        requirements: list[Requirement] = []
        if self.tokens:
            requirements.append(self.requirement())
            while self.peek() == ",":
                self.take()
                requirements.append(self.requirement())
            if self.peek() != _END:
                raise ValueError(f"expected ',' between requirements, found {_show(self.peek())}")
        return Selector(tuple(requirements))

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            key = self.identifier("a label key", "'!'")
            _check_key(key)
            return lambda labels: key not in labels
        key = self.identifier("a label key", "','" if self.pos else "the start")
        _check_key(key)
        op = self.peek()
        if op in (",", _END):
            return lambda labels: key in labels
        self.take()
        if op in ("in", "notin"):
            return self.set_requirement(key, op)
        if op in ("=", "==", "!="):
            value = "" if self.peek() in (",", _END) else self.identifier("a value", repr(op))
            _check_value(value)
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
        if op in (">", "<"):
            bound = self.identifier("an integer", repr(op))
            if not _INTEGER.fullmatch(bound):
                raise ValueError(f"expected an integer after '{key} {op}', found {bound!r}")
            return _compare(key, int(bound), op == ">")
        raise ValueError(f"expected an operator after {key!r} (=, ==, !=, in, notin, >, <), found {_show(op)}")

    def set_requirement(self, key: str, op: str) -> Requirement:
        self.expect("(", repr(op))
        values: set[str] = set()
        if self.peek() == ")":
            raise ValueError(f"the values of '{key} {op}' must not be empty")
        while True:
            value = "" if self.peek() in (",", ")") else self.identifier("a value", "'(' or ','")
            _check_value(value)
            values.add(value)
            token = self.take()
            if token == ")":
                break
            if token != ",":
                raise ValueError(f"expected ',' or ')' in the values of {key!r}, found {_show(token)}")
        frozen = frozenset(values)
        if op == "in":
            return lambda labels: labels.get(key) in frozen
        return lambda labels: labels.get(key) not in frozen


def _compare(key: str, bound: int, greater: bool) -> Requirement:
    """``key > n`` holds only when the label is present and an integer, as in Kubernetes."""

    def requirement(labels: Labels) -> bool:
        value = labels.get(key)
        if value is None or not _INTEGER.fullmatch(value):
            return False
        return int(value) > bound if greater else int(value) < bound

    return requirement


def _show(token: str) -> str:
    return "the end" if token == _END else repr(token)
