"""The schema language, and the walk that reads a YAML node tree against it.

A ``Schema`` is a table for one kind of object: YAML key -> ``Field`` (model
attribute, value kind, required, default, validator), plus a ``build`` that
makes the model object and an optional object-level ``check`` that sees every
field with the node it came from. Value kinds (``Str``, ``Int``, ``Enum``,
``ListOf``, ``Obj``...) read one node each and report what is wrong with it.

Nothing stops at the first problem: every issue is recorded on the ``Walk``
with its location, and a value that could not be read becomes ``INVALID``,
which makes the objects around it ``INVALID`` too (so nothing half-read is
built) while the walk goes on to find the other problems.

Every node read costs one unit of the walk's budget. Aliases make YAML a graph,
so a small document can stand for an enormous tree ("billion laughs"); the
budget stops such a walk with ``BudgetExceeded`` long before memory runs out.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tetra.policy.errors import PolicyIssue, Severity, quoted, shortened
from tetra.policy.limits import MAX_NODES, MAX_NUMBER_DIGITS
from tetra.policy.model import Location
from tetra.policy.values import closest, suggest_or_list
from tetra.policy.yamltree import (TAG_BOOL, TAG_INT, TAG_STR, describe, is_null, mapping_entries, scalar_bool,
                                   scalar_int)


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()
"""What a kind returns for a value it reported as wrong."""


class BudgetExceeded(Exception):
    """A document expands (through aliases and merge keys) to more nodes than its walk may read."""


class OutOfTime(Exception):
    """The walk went past its deadline (an API call's: its client would not see the answer)."""


DEADLINE_EVERY = 4096  # nodes between two looks at the clock


class Walk:
    """The state of reading one document: its file, the issues found, values shared across objects.

    ``budget`` is how many nodes it may read; ``deadline`` (``time.monotonic``) when it must stop.
    """

    def __init__(self, filename: str, budget: int = MAX_NODES, deadline: float | None = None) -> None:
        self.filename = filename
        self.issues: list[PolicyIssue] = []
        self.state: dict[str, Any] = {}
        self.budget = budget
        self.spent = 0
        self.out_of_time = False
        self._deadline = deadline

    def loc(self, node: Node, path: str) -> Location:
        mark = node.start_mark
        return Location(self.filename, mark.line + 1, mark.column + 1, path)

    def report(self, node: Node, path: str, message: str, severity: Severity = "error") -> None:
        self.issues.append(PolicyIssue(self.loc(node, path), message, severity))

    def warn(self, node: Node, path: str, message: str) -> None:
        self.report(node, path, message, "warning")

    def visit(self) -> None:
        self.spent += 1
        if self.spent > self.budget:
            raise BudgetExceeded
        if self._deadline is not None and self.spent % DEADLINE_EVERY == 0 and time.monotonic() > self._deadline:
            self.out_of_time = True
            raise OutOfTime

    def read(self, kind: "Kind", node: Node, path: str) -> Any:
        self.visit()
        return kind.read(self, node, path)


class Kind(Protocol):
    """How to read one node; reports problems on the walk and returns ``INVALID`` for them."""

    def read(self, walk: Walk, node: Node, path: str) -> Any: ...


def _expected(walk: Walk, node: Node, path: str, what: str) -> Any:
    walk.report(node, path, f"expected {what}, got {describe(node)}")
    return INVALID


Check = Callable[[Any], str | None]


def _checked(walk: Walk, node: Node, path: str, value: Any, check: Check | None) -> Any:
    problem = check(value) if check else None
    if problem:
        walk.report(node, path, problem)
        return INVALID
    return value


def _integer(walk: Walk, node: ScalarNode, path: str) -> Any:
    """The value of an integer scalar; one longer than any policy number is reported instead of
    converted (Python refuses decimal conversions past 4300 digits, and they cost quadratic time)."""
    digits = len(node.value.replace("_", "").lstrip("+-"))
    if digits > MAX_NUMBER_DIGITS:
        walk.report(node, path, f"number too large ({digits} digits): a policy's numbers fit in 64 bits")
        return INVALID
    return scalar_int(node)


@dataclass(frozen=True)
class Str:
    """A YAML string, at most ``max_len`` characters, passing ``check``."""

    max_len: int | None = None
    check: Check | None = None

    def read(self, walk: Walk, node: Node, path: str) -> Any:
        if not (isinstance(node, ScalarNode) and node.tag == TAG_STR):
            return _expected(walk, node, path, "a string")
        if self.max_len is not None and len(node.value) > self.max_len:
            walk.report(node, path, f"{len(node.value)} characters, at most {self.max_len} are allowed")
            return INVALID
        return _checked(walk, node, path, node.value, self.check)


@dataclass(frozen=True)
class Scalar:
    """A string, or an integer kept as its decimal string (matchArgs values are written both ways)."""

    check: Check | None = None

    def read(self, walk: Walk, node: Node, path: str) -> Any:
        if isinstance(node, ScalarNode) and node.tag == TAG_STR:
            value = node.value
        elif isinstance(node, ScalarNode) and node.tag == TAG_INT:
            number = _integer(walk, node, path)
            if number is INVALID:
                return INVALID
            value = str(number)
        else:
            return _expected(walk, node, path, "a string or an integer")
        return _checked(walk, node, path, value, self.check)


@dataclass(frozen=True)
class Int:
    low: int
    high: int

    def read(self, walk: Walk, node: Node, path: str) -> Any:
        if not (isinstance(node, ScalarNode) and node.tag == TAG_INT):
            return _expected(walk, node, path, "an integer")
        value = _integer(walk, node, path)
        if value is INVALID:
            return INVALID
        if not self.low <= value <= self.high:
            walk.report(node, path, f"{value} is out of range ({self.low}..{self.high})")
            return INVALID
        return value


@dataclass(frozen=True)
class Bool:
    def read(self, walk: Walk, node: Node, path: str) -> Any:
        if not (isinstance(node, ScalarNode) and node.tag == TAG_BOOL):
            return _expected(walk, node, path, "a boolean (true or false)")
        return scalar_bool(node)


@dataclass(frozen=True)
class Enum:
    """One of ``choices``. Other spellings Tetragon also takes (``aliases``, or any case with
    ``fold_case``) are read as the canonical choice, with a warning: Kubernetes rejects them."""

    choices: tuple[str, ...]
    noun: str = "value"
    aliases: Mapping[str, str] = field(default_factory=dict)
    fold_case: bool = False
    listing: str = "allowed"

    def read(self, walk: Walk, node: Node, path: str) -> Any:
        if not (isinstance(node, ScalarNode) and node.tag == TAG_STR):
            return _expected(walk, node, path, f"a string (one of: {', '.join(self.choices)})")
        value = node.value
        if value in self.choices:
            return value
        canonical = self.aliases.get(value)
        if canonical not in self.choices:
            canonical = None
        if canonical is None and self.fold_case:
            canonical = next((choice for choice in self.choices if choice.lower() == value.lower()), None)
        if canonical is not None:
            walk.warn(node, path, f"{quoted(value)} is read as '{canonical}' (Kubernetes only accepts '{canonical}')")
            return canonical
        walk.report(node, path, f"unknown {self.noun} {quoted(value)}"
                                f"{suggest_or_list(value, self.choices, self.listing)}")
        return INVALID


@dataclass(frozen=True)
class ListOf:
    """A YAML list of ``item``, as a tuple; more than ``max_items`` is an error, never a truncation."""

    item: Kind
    max_items: int | None = None
    noun: str = "items"

    def read(self, walk: Walk, node: Node, path: str) -> Any:
        if not isinstance(node, SequenceNode):
            return _expected(walk, node, path, "a list")
        if self.max_items is not None and len(node.value) > self.max_items:
            walk.report(node, path, f"{len(node.value)} {self.noun}, at most {self.max_items} are supported "
                                    "(none is dropped silently: remove some or split them up)")
            return INVALID
        items = tuple(walk.read(self.item, item, f"{path}[{i}]") for i, item in enumerate(node.value))
        return INVALID if any(item is INVALID for item in items) else items


@dataclass(frozen=True)
class MapOf:
    """A mapping from strings to ``value``, as a read-only mapping."""

    value: Kind
    key_check: Check | None = None

    def read(self, walk: Walk, node: Node, path: str) -> Any:
        if not isinstance(node, MappingNode):
            return _expected(walk, node, path, "a mapping")
        result: dict[str, Any] = {}
        for key_node, value_node in _entries(walk, node, path):
            key = key_node.value
            item_path = f"{path}.{shortened(key)}"
            if _checked(walk, key_node, item_path, key, self.key_check) is INVALID:
                result[key] = INVALID
                continue
            result[key] = walk.read(self.value, value_node, item_path)
        if any(value is INVALID for value in result.values()):
            return INVALID
        return MappingProxyType(result)


@dataclass(frozen=True)
class Opaque:
    """Anything, not looked into (Kubernetes bookkeeping such as ``managedFields``)."""

    def read(self, walk: Walk, node: Node, path: str) -> Any:
        return None


@dataclass(frozen=True)
class Field:
    """One row of a schema table: model attribute, kind, required, default, validator."""

    attr: str
    kind: Kind
    required: bool = False
    default: Any = None
    check: Check | None = None


@dataclass
class Read:
    """One object as read: values by attribute and the nodes they came from, for object checks."""

    values: dict[str, Any]
    nodes: dict[str, Node]
    keys: dict[str, str]
    node: MappingNode
    path: str

    def at(self, attr: str, index: int | None = None) -> tuple[Node, str]:
        """The node and path of field ``attr`` (or of item ``index`` of it); the object's when absent."""
        if attr not in self.nodes:
            return self.node, self.path
        node, path = self.nodes[attr], _join(self.path, self.keys[attr])
        if index is not None and isinstance(node, SequenceNode):
            return node.value[index], f"{path}[{index}]"
        return node, path


@dataclass(frozen=True)
class Schema:
    """The table for one kind of object, how to build it, and checks across its fields.

    Attributes named in ``publish`` are stored in ``walk.state`` as soon as they
    are read, for objects read later (fields are read in table order).
    """

    what: str
    fields: Mapping[str, Field]
    build: Callable[[Walk, dict[str, Any], Location], Any]
    check: Callable[[Walk, Read], None] | None = None
    publish: frozenset[str] = frozenset()


def construct(cls: Callable[..., Any]) -> Callable[[Walk, dict[str, Any], Location], Any]:
    """A ``build`` that passes every field to the model class by name."""
    return lambda walk, values, loc: cls(**values, loc=loc)


@dataclass(frozen=True)
class Obj:
    """A mapping read against ``schema`` into a model object."""

    schema: Schema

    def read(self, walk: Walk, node: Node, path: str) -> Any:
        if not isinstance(node, MappingNode):
            return _expected(walk, node, path, f"a mapping ({self.schema.what})")
        schema = self.schema
        present: dict[str, tuple[Node, Node]] = {}
        misspelled: set[str] = set()  # keys an unknown key probably meant: not also reported missing
        for key_node, value_node in _entries(walk, node, path):
            key = key_node.value
            if key in schema.fields:
                present[key] = (key_node, value_node)
                continue
            meant = closest(key, schema.fields)
            if meant:
                misspelled.add(meant)
            hint = f" (did you mean '{meant}'?)" if meant else f"; allowed: {', '.join(sorted(schema.fields))}"
            walk.report(key_node, path, f"unknown key {quoted(key)}{hint}")
        read = Read({}, {}, {}, node, path)
        valid = True
        for key, spec in schema.fields.items():
            read.keys[spec.attr] = key
            entry = present.get(key)
            if entry is None or is_null(entry[1]):
                if spec.required:
                    valid = False
                    if entry:
                        walk.report(entry[0], path, f"missing required key '{key}' (it is null)")
                    elif key not in misspelled:
                        walk.report(node, path, f"missing required key '{key}'")
                read.values[spec.attr] = spec.default
                continue
            value_path = _join(path, key)
            value = walk.read(spec.kind, entry[1], value_path)
            if value is not INVALID:
                value = _checked(walk, entry[1], value_path, value, spec.check)
            valid = valid and value is not INVALID
            read.values[spec.attr] = value
            read.nodes[spec.attr] = entry[1]
            if spec.attr in schema.publish and value is not INVALID:
                walk.state[spec.attr] = value
        if not valid:
            return INVALID
        if schema.check:
            schema.check(walk, read)
        return schema.build(walk, read.values, walk.loc(node, path))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _entries(walk: Walk, node: MappingNode, path: str) -> list[tuple[ScalarNode, Node]]:
    """A mapping's entries with string keys, reporting other keys and duplicates."""
    first: dict[str, Node] = {}
    entries: list[tuple[ScalarNode, Node]] = []
    for key_node, value_node in mapping_entries(node, lambda bad, message: walk.report(bad, path, message), walk.visit):
        walk.visit()
        if not isinstance(key_node, ScalarNode) or is_null(key_node):
            walk.report(key_node, path, f"keys must be strings, got {describe(key_node)}")
            continue
        key = key_node.value
        if key in first:
            walk.report(key_node, path, f"duplicate key {quoted(key)} (first at line {first[key].start_mark.line + 1})")
            continue
        first[key] = key_node
        entries.append((key_node, value_node))
    return entries
