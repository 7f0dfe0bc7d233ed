"""The probes' #defines and tetra/wire/constants.py must agree, both ways.

Every object-like ``TETRA_*`` define with a value in probes/lib/*.h and
probes/generic/generic.h is read as text and evaluated (numbers, other defines,
arithmetic); each must have a Python twin of the same value, and each Python
constant a define, unless C_ONLY says why the other side has no use for it.
tests/unit/test_wire_layouts.py does the same for the structs' offsets.

The action and event-type tables are checked against tetra.proto, whose enums
are Tetragon's: a name Tetragon does not know would reach users as an event
that no Tetragon client can parse.
"""

import ast
import enum
import operator
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from tetra.api import tg_events, tg_tetragon
from tetra.policy import vocab
from tetra.wire import constants, events
from tetra.wire.constants import Action, ExecFlags, Op

PROBES = Path(__file__).resolve().parents[2] / "probes"
HEADERS = (*sorted((PROBES / "lib").glob("*.h")), PROBES / "generic" / "generic.h")

# The prefix of each enum's members in C.
ENUM_PREFIXES: dict[type[enum.Enum], str] = {Op: "TETRA_OP_", ExecFlags: "TETRA_EXEC_", Action: "TETRA_ACTION_"}

# Defines only the C side uses, and why Python has no twin of them.
C_ONLY: dict[str, str] = {
    "TETRA_EXECVE_ENTRIES": "size of the binary map: only the kernel sizes it",
    "TETRA_PATH_DEPTH": "depth of the in-kernel path walk: Python sees its result as *_TRUNC_*/BIN_HEAD_LOST flags",
    "TETRA_NAME_MAX": "bytes read of one path component, inside the walk",
    "TETRA_WALK_HEAD_LOST": "the walk's result inside C; it reaches Python as EXEC_TRUNC_* and BIN_* flags",
    "TETRA_WALK_TAIL_LOST": "the walk's result inside C; it reaches Python as EXEC_TRUNC_* and BIN_* flags",
    "TETRA_WAKE_BYTES": "how often the kernel wakes the reader: a C tuning default",
    "TETRA_ARG_ROOM": "scratch room of one argument, derived in C from TETRA_STR_MAX",
    "TETRA_GEN_BUF": "scratch buffer of a policy event, derived in C from sizeof and TETRA_MAX_ARGS",
    "TETRA_ANCESTOR_DEPTH": "generations followChildren climbs, checked in the kernel only",
    "TETRA_AGENT_TGID": "the agent passes its own pid as -D; 0 is the value when compiled alone",
    "TETRA_AT_SECURE": "the auxv entry the kernel reads AT_SECURE from; Python sees its value, not where it was",
    "TETRA_AUXV_PAIRS": "how far the kernel looks for AT_SECURE in mm->saved_auxv",
    "TETRA_CGROUP_RATE_ENTRIES": "size of the --cgroup-rate map: only the kernel sizes it",
    "TETRA_RATE_PASS": "the rate check's verdict inside C; Python sees a record, or none",
    "TETRA_RATE_DROP": "the rate check's verdict inside C; Python sees a record, or none",
    "TETRA_RATE_START": "the rate check's verdict inside C; Python sees a record, or none",
}
# Python constants with no define, and why.
PYTHON_ONLY: dict[str, str] = {}

_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(TETRA_\w+)(\()?[ \t]*(.*)$")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_NAME = re.compile(r"\b(TETRA_\w+)\b")
_SUFFIX = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b")
_BINARY: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.floordiv,
    ast.Mod: operator.mod, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
    ast.BitOr: operator.or_, ast.BitAnd: operator.and_, ast.BitXor: operator.xor,
}
_UNARY: dict[type[ast.unaryop], Callable[[int], int]] = {ast.USub: operator.neg, ast.Invert: operator.invert}


def read_defines(text: str) -> dict[str, str]:
    """Object-like TETRA_* defines that have a value, as C text (comments removed).

    A default inside ``#ifndef X`` counts: it is the value unless a -D says otherwise."""
    text = _COMMENT.sub(" ", text.replace("\\\n", " "))
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _DEFINE.match(line)
        if match and not match[2] and match[3].strip():
            found[match[1]] = match[3].strip()
    return found


def evaluate(name: str, defines: Mapping[str, str], seen: frozenset[str] = frozenset()) -> int | None:
    """The integer value of a define, or None when it is not integer arithmetic (sizeof, a string)."""
    if name not in defines or name in seen:
        return None
    values: dict[str, int | None] = {}
    for ref in set(_NAME.findall(defines[name])):
        values[ref] = evaluate(ref, defines, seen | {name})
    if any(value is None for value in values.values()):
        return None
    expr = _NAME.sub(lambda m: str(values[m[1]]), defines[name])
    try:
        return _arith(ast.parse(_SUFFIX.sub(r"\1", expr), mode="eval").body)
    except (SyntaxError, ValueError):
        return None


def _arith(node: ast.expr) -> int:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_arith(node.left), _arith(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_arith(node.operand))
    raise ValueError(f"not integer arithmetic: {ast.dump(node)}")


def c_constants(headers: tuple[Path, ...] = HEADERS) -> dict[str, int | None]:
    """Every define of the headers by name, with its value (None: not a number)."""
    defines: dict[str, str] = {}
    for header in headers:
        defines.update(read_defines(header.read_text()))
    return {name: evaluate(name, defines) for name in defines}


def python_constants() -> dict[str, int]:
    """Every constant of tetra/wire/constants.py by the name its define has in C."""
    found: dict[str, int] = {}
    for name, value in vars(constants).items():
        if isinstance(value, type) and issubclass(value, enum.Enum) and value.__module__ == constants.__name__:
            assert value in ENUM_PREFIXES, f"enum {name}: add its C prefix to ENUM_PREFIXES"
            found.update({ENUM_PREFIXES[value] + member.name: int(member.value) for member in value})
        elif type(value) is int and name.isupper() and not name.startswith("_"):
            found["TETRA_" + name] = value
    return found


def differences(c: Mapping[str, int | None], python: Mapping[str, int], c_only: Mapping[str, str],
                python_only: Mapping[str, str]) -> list[str]:
    """What breaks the contract, one line each; empty when both sides agree."""
    problems = []
    for name, value in sorted(c.items()):
        if name in c_only:
            if name in python:
                problems.append(f"{name} is in C_ONLY but has a Python twin")
        elif name not in python:
            problems.append(f"{name} = {value} in C has no Python twin in tetra/wire/constants.py")
        elif value is None:
            problems.append(f"{name} in C is not integer arithmetic, so it cannot be checked")
        elif value != python[name]:
            problems.append(f"{name} is {value} in C but {python[name]} in Python")
    for name, value in sorted(python.items()):
        if name not in c and name not in python_only:
            problems.append(f"{name[len('TETRA_'):]} = {value} in Python has no define in probes/")
    problems += [f"{name} is allowed on one side but is on neither" for name in sorted({*c_only, *python_only})
                 if name not in c and name not in python]
    return problems


def test_headers_and_python_agree() -> None:
    assert differences(c_constants(), python_constants(), C_ONLY, PYTHON_ONLY) == []


def test_the_check_catches_each_kind_of_drift(tmp_path: Path) -> None:
    """A changed value, a define Python lacks, a constant C lacks, a stale allowance: each is reported."""
    header = tmp_path / "x.h"
    header.write_text("#ifndef TETRA_X_H\n#define TETRA_X_H\n#define TETRA_A (2 * TETRA_B) /* a */\n"
                      "#define TETRA_B 0x10u\n#define TETRA_NEW 1\n#define TETRA_F(x) (x)\n#endif\n")
    c = c_constants((header,))
    assert c == {"TETRA_A": 32, "TETRA_B": 16, "TETRA_NEW": 1}
    assert differences(c, {"TETRA_A": 32, "TETRA_B": 17, "TETRA_OLD": 3}, {"TETRA_GONE": "why"}, {}) == [
        "TETRA_B is 16 in C but 17 in Python",
        "TETRA_NEW = 1 in C has no Python twin in tetra/wire/constants.py",
        "OLD = 3 in Python has no define in probes/",
        "TETRA_GONE is allowed on one side but is on neither",
    ]


def test_a_define_that_is_not_a_number_cannot_be_twinned() -> None:
    c = c_constants()
    assert c["TETRA_GEN_BUF"] is None  # sizeof(...): C_ONLY, with its reason
    assert c["TETRA_STAT_SLOTS"] == constants.STAT_SLOTS == 14


def test_generated_c_names_each_action_by_its_define() -> None:
    c = c_constants()
    for action in Action:
        assert c[action.c_name] == action


def test_action_words_and_names_are_tetragons() -> None:
    """Each action: a word the policy language has, and a KprobeAction of Tetragon's API."""
    tetragon = {value.name: value.number for value in tg_tetragon.DESCRIPTOR.enum_types_by_name["KprobeAction"].values}
    for action in Action:
        assert action.word in vocab.ACTIONS
        assert action.tetragon in tetragon
        assert constants.ACTIONS_BY_WORD[action.word] is action
        assert constants.TETRAGON_ACTIONS[int(action)] == action.tetragon
    assert tetragon[constants.TETRAGON_UNKNOWN_ACTION] == 0


def test_event_types_are_tetragons() -> None:
    """The table is exactly Tetragon's EventType enum; what tetra produces is a GetEventsResponse field."""
    enum_values = {value.name: value.number for value in tg_events.DESCRIPTOR.enum_types_by_name["EventType"].values}
    enum_values.pop("UNDEF")
    assert {event.name: event.number for event in events.EVENT_TYPES} == enum_values
    fields = {field.name: field.number for field in tg_events.GetEventsResponse.DESCRIPTOR.oneofs_by_name["event"].fields}
    produced = [event for event in events.EVENT_TYPES if event.opcode is not None] + [events.RATE_LIMIT_INFO]
    for event in produced:
        assert fields[event.key] == event.number
    assert {event.opcode for event in events.EVENT_TYPES} - {None} == set(Op) - {Op.CLONE}  # a clone only feeds the cache

