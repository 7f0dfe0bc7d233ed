"""From bytes to YAML node trees whose every value still knows its line and column.

PyYAML is used only up to *composition*: ``yaml.compose_all`` gives a tree of
``MappingNode`` / ``SequenceNode`` / ``ScalarNode`` with a ``start_mark`` each,
and no Python object is ever constructed from it. That keeps locations for
every error, lets the schema walk see duplicate keys (construction would merge
them silently), and keeps alias expansion under the walker's control (a shared
node is walked again at every use, and counted, so an alias bomb is stopped by
a budget instead of exhausting memory).

Before YAML sees the text it is checked as text: size, UTF-8, NUL bytes and
the other characters YAML forbids, each reported at its own line and column.

Scalars are resolved as in YAML 1.1 (PyYAML, and Go's yaml.v2 that Tetragon
and kubectl use) with two exceptions that Go does not have either: no
base-60 numbers (``1:5`` stays the string a range needs, not 65) and no
timestamps (``2024-01-01`` stays a string).
"""

import re
from collections.abc import Callable, Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tetra.policy.errors import shortened
from tetra.policy.limits import MAX_DEPTH, MAX_FILE_BYTES

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

TAG_STR = "tag:yaml.org,2002:str"
TAG_INT = "tag:yaml.org,2002:int"
TAG_FLOAT = "tag:yaml.org,2002:float"
TAG_BOOL = "tag:yaml.org,2002:bool"
TAG_NULL = "tag:yaml.org,2002:null"
TAG_MERGE = "tag:yaml.org,2002:merge"
_TAG_TIMESTAMP = "tag:yaml.org,2002:timestamp"

_INT = re.compile(r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""", re.X)
_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader with YAML 1.1 resolution minus base-60 numbers and timestamps."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (TAG_INT, TAG_FLOAT, _TAG_TIMESTAMP)]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }


_Loader.add_implicit_resolver(TAG_INT, _INT, list("-+0123456789"))
_Loader.add_implicit_resolver(TAG_FLOAT, _FLOAT, list("-+0123456789."))


class SourceProblem(Exception):
    """The text cannot be read as YAML; ``line``/``column`` are 1-based."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


# What YAML 1.1 allows in a stream (tab, newlines, printable Unicode), negated.
_FORBIDDEN = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def decode(data: bytes) -> str:
    """UTF-8 text of a policy file, or ``SourceProblem`` at the first byte YAML cannot take.

    ``data`` may be cut one byte past ``MAX_FILE_BYTES``: that is enough to know it is too large.
    """
    if len(data) > MAX_FILE_BYTES:
        raise SourceProblem(1, 1, f"file is larger than the {MAX_FILE_BYTES} bytes "
                                  f"({MAX_FILE_BYTES // (1024 * 1024)} MiB) a policy file may have")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line, column = _line_col(data[:err.start].decode("utf-8", "replace"), err.start)
        raise SourceProblem(line, column, f"not UTF-8 text: byte 0x{data[err.start]:02x} cannot start or "
                                          "continue a character (is this a binary file?)") from None
    bad = _FORBIDDEN.search(text)
    if bad:
        line, column = _line_col(text, bad.start())
        char = bad.group()
        what = "a NUL byte" if char == "\0" else f"character U+{ord(char):04X}"
        raise SourceProblem(line, column, f"{what} is not allowed in YAML (is this a binary file?)")
    return text


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH``, read from the (flat) event stream.

    libyaml's composer recurses in C once per level: a few hundred thousand
    ``[`` would overflow the stack and kill the process, so depth is measured
    before any tree is built.
    """
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise SourceProblem(mark.line + 1, mark.column + 1,
                                    f"nested more than {MAX_DEPTH} levels deep: a policy is never that deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def compose(text: str) -> list[Node]:
    """Every non-empty document of ``text`` as a node tree, or ``SourceProblem`` on a syntax error."""
    try:
        _check_depth(text)
        documents = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        message = shortened(err.problem or err.context or "invalid YAML")  # it may quote an anchor name
        if err.context and err.problem and err.context_mark:
            context = err.context_mark
            message += f" ({shortened(err.context)} at line {context.line + 1}, column {context.column + 1})"
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SourceProblem(line, column, message) from None
    except yaml.YAMLError as err:
        raise SourceProblem(1, 1, f"invalid YAML: {shortened(str(err))}") from None
    return [doc for doc in documents if not (isinstance(doc, ScalarNode) and doc.tag == TAG_NULL)]


def describe(node: Node) -> str:
    """What a node is, for messages such as "expected a list, got a mapping"."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _SCALAR_NAMES.get(node.tag, f"a value tagged {shortened(node.tag)}")


_SCALAR_NAMES = {TAG_STR: "a string", TAG_INT: "an integer", TAG_FLOAT: "a number", TAG_BOOL: "a boolean",
                 TAG_NULL: "null"}


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == TAG_NULL


def mapping_entries(node: MappingNode, report: Callable[[Node, str], None], visit: Callable[[], None],
                    merging: tuple[int, ...] = ()) -> Iterator[tuple[Node, Node]]:
    """The (key, value) pairs of a mapping with YAML merge keys (``<<: *base``) applied.

    Keys written in the mapping itself come first and win over merged ones, as
    YAML specifies; a merged key that is overridden is not a duplicate. A
    mapping that merges itself (through an alias) is reported, not followed.

    A merge is an alias expansion too: ten merges of a mapping that merges ten
    others, seven levels down, is ten million entries from a few hundred bytes.
    So every merged entry costs ``visit`` (which raises when the document's node
    budget is spent) at every level it is copied through, and a chain of merges
    deeper than ``MAX_DEPTH`` (each level is a recursion here) is reported at
    the merge that goes too deep, not followed.
    """
    merging = (*merging, id(node))
    merged: list[tuple[Node, Node]] = []
    for key, value in node.value:
        if key.tag != TAG_MERGE:
            yield key, value
            continue
        sources = value.value if isinstance(value, SequenceNode) else [value]
        for source in sources:
            if not isinstance(source, MappingNode):
                report(source, f"a merge key (<<) takes a mapping or a list of mappings, got {describe(source)}")
            elif id(source) in merging:
                report(source, "this merge key includes the mapping it is in")
            elif len(merging) > MAX_DEPTH:
                report(source, f"merge keys (<<) nested more than {MAX_DEPTH} levels deep: a policy is never "
                               "that deep")
            else:
                for entry in mapping_entries(source, report, visit, merging):
                    visit()
                    merged.append(entry)
    own = {key.value for key, _ in node.value if isinstance(key, ScalarNode) and key.tag != TAG_MERGE}
    seen: set[object] = set()
    for key, value in merged:
        name = key.value if isinstance(key, ScalarNode) else id(key)
        if name not in own and name not in seen:
            seen.add(name)
            yield key, value


def find(node: Node, key: str) -> tuple[Node, Node] | None:
    """The first (key node, value node) of ``key`` in a mapping node, if there is one."""
    if isinstance(node, MappingNode):
        for key_node, value in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == key:
                return key_node, value
    return None


def scalar_int(node: ScalarNode) -> int:
    """The value of a scalar resolved as an integer (YAML 1.1 forms: 0x.., 0b.., 0.. octal, 1_000)."""
    text = node.value.replace("_", "")
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits.startswith("0b"):
        return sign * int(digits[2:], 2)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    if len(digits) > 1 and digits.startswith("0"):
        return sign * int(digits, 8)
    return sign * int(digits)


def scalar_bool(node: ScalarNode) -> bool:
    return node.value.lower() in ("yes", "true", "on")
