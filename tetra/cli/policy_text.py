"""A policy file's text as ``tracingpolicy add`` sends it: with the mode asked for, and the agent's
locations turned back into the file's.

``add -m monitor`` must load the policies in monitor mode from their first
instant (adding, then switching, would let a Sigkill through in between), so,
as Tetragon's tetra does, the YAML itself gets ``spec.options`` ``policy-mode``.
The text is edited, not re-serialized, so that every line the user wrote keeps
its number: an existing ``policy-mode`` value is replaced in place, a missing
entry is inserted at the end of ``spec`` (or of ``options``), and the lines it
adds are remembered so that the agent's ``api:LINE:COL`` can be told as
``FILE:LINE:COL``.
"""

import json
import re
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tetra.errors import TetraError

_API_LOCATION = re.compile(r"(?<![\w./-])api:(\d+):(\d+):")


class PolicyTextError(TetraError):
    """The file's layout leaves no place to set the mode without rewriting it."""


@dataclass
class PolicyText:
    """``text`` to send; ``inserted``: (line number in ``text``, lines) of each insertion, in order."""

    file: str
    text: str
    inserted: list[tuple[int, int]] = field(default_factory=list)

    def located(self, message: str) -> str:
        """The agent's message with ``api:LINE:COL`` as the file's ``FILE:LINE:COL``."""
        return _API_LOCATION.sub(lambda m: f"{self.file}:{self._line(int(m[1]))}:{m[2]}:", message)

    def _line(self, line: int) -> int:
        shift = 0
        for at, count in self.inserted:
            if line >= at + count:
                shift += count
            elif line >= at:
                return at - shift  # a line we added: the place it was added at
        return line - shift


def with_mode(file: str, text: str, mode: str | None) -> PolicyText:
    """``text`` with every policy's ``policy-mode`` set to ``mode`` (None: unchanged)."""
    out = PolicyText(file, text)
    if mode is None:
        return out
    if text and not text.endswith("\n"):
        text += "\n"  # the same lines, so that an entry can go after the last
    edits: list[tuple[int, int, str, int]] = []  # (start, end, replacement, lines added) by offset
    for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
        edits.append(_mode_edit(file, text, document, mode))
    for start, end, replacement, _ in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    added = 0
    for start, _, _, lines in sorted(edits):
        if lines:
            out.inserted.append((out.text.count("\n", 0, start) + 1 + added, lines))
            added += lines
    out.text = text
    return out


def _mode_edit(file: str, text: str, document: Node | None, mode: str) -> tuple[int, int, str, int]:
    spec = _get(document, "spec")
    if not isinstance(spec, MappingNode) or spec.flow_style or not spec.value:
        raise PolicyTextError(f"{file}: no block `spec:` mapping to set the mode in: set `options` "
                              f"`policy-mode: {mode}` in the file instead of --mode")
    value = json.dumps(mode)
    options = _get(spec, "options")
    if options is None:
        indent = " " * spec.value[0][0].start_mark.column
        entry = f"{indent}options:\n{indent}- name: policy-mode\n{indent}  value: {value}\n"
        return _insert(text, spec.end_mark.index, entry, 3)
    if not isinstance(options, SequenceNode) or options.flow_style or not options.value:
        raise PolicyTextError(f"{file}:{options.start_mark.line + 1}:{options.start_mark.column + 1}: "
                              f"spec.options is not a block list: set `policy-mode: {mode}` there instead of --mode")
    for item in options.value:
        name, current = _get(item, "name"), _get(item, "value")
        if isinstance(name, ScalarNode) and name.value == "policy-mode" and isinstance(current, ScalarNode):
            return current.start_mark.index, current.end_mark.index, value, 0
    indent = " " * (options.value[0].start_mark.column - 2)
    return _insert(text, options.end_mark.index, f"{indent}- name: policy-mode\n{indent}  value: {value}\n", 2)


def _insert(text: str, index: int, entry: str, lines: int) -> tuple[int, int, str, int]:
    """``entry`` on a line of its own where a block ends: ``index`` is where the next token starts,
    after its indentation (or at the end of a last line)."""
    line_start = text.rfind("\n", 0, index) + 1
    if text[line_start:index].strip():
        line_start = text.find("\n", index) + 1 or len(text)
    return line_start, line_start, entry, lines


def _get(node: Node | None, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    return next((v for k, v in node.value if isinstance(k, ScalarNode) and k.value == key), None)
