"""``cel_expression``: CEL (Common Expression Language) filters, bounded in what they may cost.

Tetragon's Filter takes CEL expressions (``tetra getevents --cel-expression``),
which its server evaluates against each event's GetEventsResponse: any
expression of a filter that is true matches (OR), one that fails to evaluate
(``null > 1u``, a missing map key, a division by zero) is false. Expressions come
from API clients, so each is checked when the stream is requested and refused
(INVALID_ARGUMENT, the whole problem in one line) if it could cost more than an
event is worth:

* at most ``MAX_CHARS`` characters and ``MAX_DEPTH`` levels of nesting, and
  ``MAX_REQUEST_CHARS`` for all the expressions of a stream's request;
* the comprehensions ``all``, ``exists``, ``exists_one``, ``map`` and
  ``filter``, at most ``MAX_COMPREHENSIONS`` of them and none inside
  another: one loop over a list of the event (bounded by the event's size),
  never a loop in a loop;
* ``matches`` takes a literal pattern, compiled once with tetra.regex (RE2:
  linear in the text, Go's syntax as Tetragon's);
* only CEL's standard functions (no message construction, no extensions of
  the library's such as ``reduce``);
* names and types are checked as Tetragon's type checker (cel-go's) checks
  them, where they are known before an event comes: an event type variable
  and its fields as the .proto declares them (tetra.filters.celvalues), an
  operator's operands of one type (``process.pid == 1000`` compares a uint
  with an int: refused, write ``1000u``), a result that is a bool.

The library is ``cel-python`` (module celpy): its parser (lark, LALR: linear
in the text) makes the syntax tree and its types implement CEL's values and
operators (uint vs int, overflow, cross-type comparisons). The tree is
compiled here, once per stream, into nested Python closures: evaluating one
is a few calls per node with no lookups. For ``pid > 1000u && binary.endsWith(..)``
celpy's interpreter took ~400 µs, its transpiled Python ~90 µs, these closures
~10 µs (one measurement when choosing; benchmarks/cel_filter.py measures the
filter in a stream).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import lark
from celpy import celtypes
from celpy.celparser import CELParseError, CELParser
from celpy.evaluation import CELEvalError, base_functions, celbytes, celstr
from google.protobuf.descriptor import Descriptor

from tetra.filters.celvalues import Message, field_kind, field_reader, is_message, is_message_list, message_field
from tetra.regex import RegexError, compile_regex

MAX_CHARS = 4096
"""The longest expression accepted."""

MAX_DEPTH = 64
"""Operators, calls and field selections nested in one another (``a.b.c`` is 3; a chain of ``||``
is one level per operator: long alternatives read better as ``x in [...]``)."""

MAX_REQUEST_CHARS = 16 * 1024
"""All the expressions of one GetEvents request: parsing costs up to ~60 µs a character of
CPU (and the GIL) on the API's thread, so a request may not ask for seconds of it."""

MAX_COMPREHENSIONS = 8
"""Comprehensions in one expression; none may be inside another."""

Schema = Callable[[], Descriptor]
"""Gives Tetragon's GetEventsResponse descriptor, when an expression is compiled: the generated
protobuf modules belong to tetra.api, which imports this package, so its users hand it in."""

Scope = dict[str, Any]  # the event's variables and any comprehension's, by name
Eval = Callable[[Scope], Any]

# What evaluating an expression may raise is a CEL error: celpy's types and functions raise
# TypeError, ValueError, KeyError, ... and the libraries under them (pendulum for timestamps)
# their own. None may escape: filters run on the agent thread, in the Broadcaster.
EVAL_ERRORS = (Exception,)


class CelError(ValueError):
    """An expression that is refused: a syntax error, a bound exceeded, an unknown name or field."""


@dataclass
class CelExpressions:
    """The compiled expressions of one filter: true when any is true; an evaluation error is
    false, counted in ``errors`` (its last message in ``last_error``)."""

    programs: tuple["Program", ...]
    errors: int = 0
    _last: tuple[str, Exception] | None = field(default=None, compare=False)

    def __call__(self, key: str | None, body: dict[str, Any]) -> bool:
        for program in self.programs:
            try:
                if program.evaluate(key, body) is True:
                    return True
            except EVAL_ERRORS as err:
                self.errors += 1
                self._last = (program.text, err)  # formatted when read: errors may come with every event
        return False

    @property
    def last_error(self) -> str:
        return f"{self._last[0]}: {self._last[1]}" if self._last is not None else ""


class Program:
    """One compiled expression: ``evaluate`` is True, False, or raises one of EVAL_ERRORS."""

    def __init__(self, text: str, run: Eval, variables: dict[str, Descriptor]) -> None:
        self.text = text
        self._run = run
        self._variables = variables

    def evaluate(self, key: str | None, body: dict[str, Any]) -> bool:
        """The event is its type's variable; the others read as empty messages (see ``_ident``)."""
        descriptor = self._variables.get(key) if key is not None else None
        scope = {key: Message(body, descriptor)} if key is not None and descriptor is not None else {}
        value = self._run(scope)
        if not isinstance(value, celtypes.BoolType):
            raise TypeError(f"the expression gave {_type_name(value)}, not a bool")
        return bool(value)


def compile_cel(text: str, events: Descriptor) -> Program:
    """``text`` checked against the bounds and the event types of ``events`` (Tetragon's
    GetEventsResponse), compiled; CelError says why not."""
    if len(text) > MAX_CHARS:
        raise CelError(f"expression of {len(text)} characters: at most {MAX_CHARS} are accepted")
    if not text.strip():
        raise CelError("empty expression")
    try:
        tree = _parser().parse(text)
    except CELParseError as err:
        line = text.splitlines()[err.line - 1] if err.line else text
        raise CelError(f"{err.line}:{err.column}: syntax error in {line.strip()!r}") from None
    compiler = _Compiler(event_variables(events))
    run = compiler.expr(tree, 0)
    if run.kind not in (None, "bool"):
        raise CelError(f"the expression gives a {run.kind}, not a bool")
    return Program(text, run.eval, compiler.variables)


@cache
def _parser() -> CELParser:
    return CELParser()


@cache
def event_variables(events: Descriptor) -> dict[str, Descriptor]:
    """The variables of an expression: each event type of a GetEventsResponse (its ``event``
    oneof) by its field name, as Tetragon declares them."""
    return {f.name: f.message_type for f in events.oneofs_by_name["event"].fields}


# -- compiling ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Node:
    """A compiled sub-expression and what is known of its value before it runs: its CEL type
    (``kind``: int, uint, string ...; a wrapper field's may also be null), the message type it
    is, or the message type of the items of the list it is (for checking field names)."""

    eval: Eval
    kind: str | None = None
    message: Descriptor | None = None
    items: Descriptor | None = None


# What functions give, for the checks of the operators they are operands of.
_RESULT_KINDS = {"size": "int", "contains": "bool", "endsWith": "bool", "startsWith": "bool", "matches": "bool",
                 "bool": "bool", "bytes": "bytes", "double": "double", "duration": "duration", "int": "int",
                 "string": "string", "timestamp": "timestamp", "uint": "uint"}
_LITERAL_KINDS = {"INT_LIT": "int", "UINT_LIT": "uint", "FLOAT_LIT": "double", "STRING_LIT": "string",
                  "MLSTRING_LIT": "string", "BYTES_LIT": "bytes", "BOOL_LIT": "bool", "NULL_LIT": "null"}


# CEL's type names, usable as values (``type(x) == uint``)
_TYPES: dict[str, Any] = {name: base_functions[name] for name in
                          ("bool", "bytes", "double", "duration", "int", "list", "map", "null_type", "string",
                           "timestamp", "uint")}
_FUNCTIONS = frozenset({"size", "contains", "endsWith", "startsWith", "type", "getDate", "getDayOfMonth",
                        "getDayOfWeek", "getDayOfYear", "getFullYear", "getMonth", "getHours",
                        "getMilliseconds", "getMinutes", "getSeconds", *_TYPES})
_COMPREHENSIONS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_RELATIONS = {"relation_lt": "_<_", "relation_le": "_<=_", "relation_gt": "_>_", "relation_ge": "_>=_",
              "relation_eq": "_==_", "relation_ne": "_!=_", "relation_in": "_in_"}
_ARITHMETIC = {"addition_add": "_+_", "addition_sub": "_-_", "multiplication_mul": "_*_",
               "multiplication_div": "_/_", "multiplication_mod": "_%_"}
# Comparisons of two values of one plain type, by the builtin type's own operator: the same answer
# as celpy's functions, which wrap the operator anew on every call (most of an expression's cost).
_PLAIN = {celtypes.IntType: int, celtypes.UintType: int, celtypes.BoolType: int, celtypes.StringType: str,
          celtypes.DoubleType: float, celtypes.BytesType: bytes}
_SAME_TYPE: dict[str, dict[type, Callable[[Any, Any], bool]]] = {
    name: {kind: getattr(base, method) for kind, base in _PLAIN.items()}
    for name, method in (("_<_", "__lt__"), ("_<=_", "__le__"), ("_>_", "__gt__"), ("_>=_", "__ge__"),
                         ("_==_", "__eq__"), ("_!=_", "__ne__"))}
_TRUE = celtypes.BoolType(True)
_FALSE = celtypes.BoolType(False)


def _checked(value: Any) -> Any:
    """celpy's functions return some errors instead of raising them."""
    if isinstance(value, CELEvalError):
        raise value
    return value


class _Compiler:
    """The syntax tree (celpy's grammar) to closures, checking bounds and names on the way."""

    def __init__(self, variables: dict[str, Descriptor]) -> None:
        self.variables = variables
        self.bound: dict[str, int] = {}  # comprehension variables in scope, by name: how many deep
        self.comprehensions = 0
        self.in_comprehension = False

    def fail(self, tree: lark.Tree | lark.Token, message: str) -> CelError:
        meta = getattr(tree, "meta", None)
        line = getattr(meta, "line", None) if meta is not None else getattr(tree, "line", None)
        column = getattr(meta, "column", None) if meta is not None else getattr(tree, "column", None)
        where = f"{line}:{column}: " if line is not None and column is not None else ""
        return CelError(where + message)

    def expr(self, tree: lark.Tree, depth: int) -> _Node:
        """Any node: single-child wrappers of the grammar (expr -> conditionalor -> ... -> primary)
        are passed through without counting as depth."""
        while tree.data in _PASS_THROUGH and len(tree.children) == 1 and isinstance(tree.children[0], lark.Tree):
            tree = tree.children[0]
        if depth > MAX_DEPTH:
            raise self.fail(tree, f"nested deeper than {MAX_DEPTH} levels")
        method = getattr(self, "_" + str(tree.data), None)
        if method is None:
            raise self.fail(tree, f"{str(tree.data).replace('_', ' ')} is not supported")
        node: _Node = method(tree, depth + 1)
        return node

    # -- operators -------------------------------------------------------------------------

    def _expr(self, tree: lark.Tree, depth: int) -> _Node:
        nodes = [self.expr(child, depth) for child in tree.children]
        self.require_bool(tree, nodes[0], "a condition")
        cond, left, right = (node.eval for node in nodes)

        def ternary(scope: Scope) -> Any:
            test = cond(scope)
            if not isinstance(test, celtypes.BoolType):
                raise TypeError(f"no such overload: {_type_name(test)} ? _ : _")
            return left(scope) if test else right(scope)

        return _Node(ternary, nodes[1].kind if nodes[1].kind == nodes[2].kind else None)

    def _conditionalor(self, tree: lark.Tree, depth: int) -> _Node:
        return self._logical(tree, depth, "||", _TRUE)

    def _conditionaland(self, tree: lark.Tree, depth: int) -> _Node:
        return self._logical(tree, depth, "&&", _FALSE)

    def _logical(self, tree: lark.Tree, depth: int, operator: str, absorbing: Any) -> _Node:
        left, right = (self.expr(child, depth) for child in tree.children)
        for node in (left, right):
            self.require_bool(tree, node, f"an operand of {operator}")
        return _Node(_logical(left.eval, right.eval, absorbing), "bool")

    def require_bool(self, tree: lark.Tree, node: _Node, role: str) -> None:
        if node.kind not in (None, "bool"):
            raise self.fail(tree, f"{role} must be a bool, not a {node.kind}")

    def _relation(self, tree: lark.Tree, depth: int) -> _Node:
        return self._binary(tree, depth, _RELATIONS)

    def _addition(self, tree: lark.Tree, depth: int) -> _Node:
        return self._binary(tree, depth, _ARITHMETIC)

    def _multiplication(self, tree: lark.Tree, depth: int) -> _Node:
        return self._binary(tree, depth, _ARITHMETIC)

    def _binary(self, tree: lark.Tree, depth: int, names: dict[str, str]) -> _Node:
        """``[relation_lt(left)] right`` and the like: the operator node holds the left operand."""
        operator, right_tree = tree.children
        left_node, right_node = self.expr(operator.children[0], depth), self.expr(right_tree, depth)
        left, right = left_node.eval, right_node.eval
        name = names[operator.data]
        kinds = (left_node.kind, right_node.kind)
        if (name != "_in_" and None not in kinds and "null" not in kinds and kinds[0] != kinds[1]
                and not {"timestamp", "duration"} & set(kinds)):
            raise self.fail(tree, f"no matching overload for '{name}' applied to '({kinds[0]}, {kinds[1]})'"
                            + (": write unsigned literals with a u, e.g. 1000u" if "uint" in kinds else ""))
        function = base_functions[name]
        fast = _SAME_TYPE.get(name)
        if fast is None:
            kind = "bool" if name == "_in_" else (kinds[0] if kinds[0] == kinds[1] else None)
            return _Node(lambda scope: _checked(function(left(scope), right(scope))), kind)
        equality = name in ("_==_", "_!=_")

        def compare(scope: Scope) -> Any:
            a, b = left(scope), right(scope)
            same = fast.get(type(a)) if type(a) is type(b) else None
            if same is not None:
                return _TRUE if same(a, b) else _FALSE
            if equality and (a is None or b is None):  # an unset wrapper is null: equal to null only
                return _TRUE if (a is b) == (name == "_==_") else _FALSE
            return _checked(function(a, b))

        return _Node(compare, "bool")

    def _unary(self, tree: lark.Tree, depth: int) -> _Node:
        operator, operand_tree = tree.children
        node = self.expr(operand_tree, depth)
        operand = node.eval
        negation = operator.data == "unary_not"
        if negation:
            self.require_bool(tree, node, "the operand of !")
        function = base_functions["!_" if negation else "-_"]
        return _Node(lambda scope: _checked(function(operand(scope))), "bool" if negation else node.kind)

    # -- members ---------------------------------------------------------------------------

    def _member_dot(self, tree: lark.Tree, depth: int) -> _Node:
        target_tree, name_token = tree.children
        target = self.expr(target_tree, depth)
        name = str(name_token)
        if target.message is not None:
            declared = message_field(target.message, name)
            if declared is None:
                raise self.fail(name_token, f"undefined field '{name}' of {target.message.full_name}")
            get, read = target.eval, field_reader(target.message, name)
            return _Node(lambda scope: read(get(scope)), field_kind(declared),
                         declared.message_type if is_message(declared) else None,
                         declared.message_type if is_message_list(declared) else None)
        get = target.eval
        key = celtypes.StringType(name)
        return _Node(lambda scope: _select(get(scope), name, key))

    def _member_index(self, tree: lark.Tree, depth: int) -> _Node:
        target_tree, index_tree = tree.children
        target = self.expr(target_tree, depth)
        index = self.expr(index_tree, depth).eval
        get = target.eval
        getitem = base_functions["_[_]"]
        return _Node(lambda scope: _checked(getitem(get(scope), index(scope))), message=target.items)

    def _member_dot_arg(self, tree: lark.Tree, depth: int) -> _Node:
        target_tree, name_token, *rest = tree.children
        name = str(name_token)
        arguments = rest[0].children if rest else []
        if name in _COMPREHENSIONS:
            return self._comprehension(tree, name, target_tree, arguments, depth)
        target = self.expr(target_tree, depth).eval
        if name == "matches":
            return self._matches(tree, target, arguments, depth)
        function = self._function(name_token, name)
        args = [self.expr(argument, depth).eval for argument in arguments]
        return _Node(lambda scope: _checked(function(target(scope), *(arg(scope) for arg in args))),
                     _RESULT_KINDS.get(name))

    def _member_object(self, tree: lark.Tree, depth: int) -> _Node:
        raise self.fail(tree, "message construction is not supported")

    def _member(self, tree: lark.Tree, depth: int) -> _Node:  # only reached with several children
        raise self.fail(tree, "unexpected member expression")

    # -- primaries -------------------------------------------------------------------------

    def _ident(self, tree: lark.Tree, depth: int) -> _Node:
        token = tree.children[0]
        name = str(token)
        if name in self.bound:
            return _Node(lambda scope: scope[name])
        if name in self.variables:
            empty = Message({}, self.variables[name])
            return _Node(lambda scope: scope.get(name, empty), message=self.variables[name])
        if name in _TYPES:
            value = _TYPES[name]
            return _Node(lambda scope: value)
        raise self.fail(token, f"undeclared reference to '{name}' (the variables are the event types: "
                        f"{', '.join(sorted(self.variables))})")

    def _ident_arg(self, tree: lark.Tree, depth: int) -> _Node:
        name_token, *rest = tree.children
        name = str(name_token)
        arguments = rest[0].children if rest else []
        if name == "has":
            return self._has(tree, arguments, depth)
        if name == "dyn" and len(arguments) == 1:
            return self.expr(arguments[0], depth)
        if name == "matches" and len(arguments) == 2:
            return self._matches(tree, self.expr(arguments[0], depth).eval, arguments[1:], depth)
        function = self._function(name_token, name)
        args = [self.expr(argument, depth).eval for argument in arguments]
        return _Node(lambda scope: _checked(function(*(arg(scope) for arg in args))), _RESULT_KINDS.get(name))

    def _paren_expr(self, tree: lark.Tree, depth: int) -> _Node:
        return self.expr(tree.children[0], depth)

    def _list_lit(self, tree: lark.Tree, depth: int) -> _Node:
        items = [self.expr(item, depth).eval for item in (tree.children[0].children if tree.children else [])]
        return _Node(lambda scope: celtypes.ListType([item(scope) for item in items]), "list")

    def _map_lit(self, tree: lark.Tree, depth: int) -> _Node:
        flat = [self.expr(item, depth).eval for item in (tree.children[0].children if tree.children else [])]
        pairs = list(zip(flat[::2], flat[1::2]))
        return _Node(lambda scope: celtypes.MapType({key(scope): value(scope) for key, value in pairs}), "map")

    def _literal(self, tree: lark.Tree, depth: int) -> _Node:
        token = tree.children[0]
        try:
            value = _literal_value(token)
        except (ValueError, CELEvalError) as err:
            raise self.fail(token, f"invalid literal {str(token)!r}: {err}") from None
        return _Node(lambda scope: value, _LITERAL_KINDS[token.type])

    def _dot_ident(self, tree: lark.Tree, depth: int) -> _Node:
        raise self.fail(tree, "names with a leading dot are not supported")

    _dot_ident_arg = _dot_ident

    # -- functions and macros --------------------------------------------------------------

    def _function(self, token: lark.Token, name: str) -> Callable[..., Any]:
        if name not in _FUNCTIONS:
            raise self.fail(token, f"unknown function '{name}'")
        return base_functions[name]

    def _has(self, tree: lark.Tree, arguments: list[lark.Tree], depth: int) -> _Node:
        """``has(e.f)``: whether a message's field is set or a map has the key ``f``."""
        selection = _unwrap(arguments[0]) if len(arguments) == 1 else None
        if selection is None or selection.data != "member_dot":
            raise self.fail(tree, "has() takes one field selection, e.g. has(process_exec.process.pod)")
        target_tree, name_token = selection.children
        target = self.expr(target_tree, depth)
        name = str(name_token)
        if target.message is not None and message_field(target.message, name) is None:
            raise self.fail(name_token, f"undefined field '{name}' of {target.message.full_name}")
        get = target.eval
        key = celtypes.StringType(name)

        def has(scope: Scope) -> Any:
            value = get(scope)
            if isinstance(value, Message):
                return celtypes.BoolType(value.has(name))
            if isinstance(value, celtypes.MapType):
                return celtypes.BoolType(key in value)
            raise TypeError(f"has() on {_type_name(value)}")

        return _Node(has, "bool")

    def _matches(self, tree: lark.Tree, text: Eval, arguments: list[lark.Tree], depth: int) -> _Node:
        """``s.matches(re)``, RE2 searched unanchored as Go's MatchString; the pattern must be a literal,
        so it is checked and compiled once, here."""
        literal = _unwrap(arguments[0]) if len(arguments) == 1 else None
        if literal is None or literal.data != "literal" or literal.children[0].type not in ("STRING_LIT",
                                                                                            "MLSTRING_LIT"):
            raise self.fail(tree, "matches() takes one pattern, a string literal")
        try:
            pattern = compile_regex(str(celstr(literal.children[0])))
        except (RegexError, ValueError) as err:
            raise self.fail(literal, f"matches(): {err}") from None
        search = pattern.search

        def matches(scope: Scope) -> Any:
            value = text(scope)
            if not isinstance(value, celtypes.StringType):
                raise TypeError(f"no such overload: {_type_name(value)}.matches(string)")
            return celtypes.BoolType(search(value) is not None)

        return _Node(matches, "bool")

    def _comprehension(self, tree: lark.Tree, name: str, range_tree: lark.Tree, arguments: list[lark.Tree],
                       depth: int) -> _Node:
        """``range.all(x, p)`` and its kin: one loop over the range's items (a map's keys)."""
        if self.in_comprehension:
            raise self.fail(tree, f"{name}() inside another comprehension is not accepted (its cost would "
                            "be the product of the lists' sizes)")
        self.comprehensions += 1
        if self.comprehensions > MAX_COMPREHENSIONS:
            raise self.fail(tree, f"more than {MAX_COMPREHENSIONS} comprehensions")
        variable = _unwrap(arguments[0]) if arguments else None
        expected = 3 if name == "map" and len(arguments) == 3 else 2
        if variable is None or variable.data != "ident" or len(arguments) != expected:
            raise self.fail(tree, f"{name}() takes a variable name and an expression, e.g. "
                            f"process_kprobe.args.{name}(a, ...)")
        var = str(variable.children[0])
        if var in self.variables:
            raise self.fail(variable, f"'{var}' is an event type: name the variable otherwise")
        items = self.expr(range_tree, depth)
        self.in_comprehension = True
        self.bound[var] = self.bound.get(var, 0) + 1
        try:
            bodies = [self.expr(argument, depth).eval for argument in arguments[1:]]
        finally:
            self.in_comprehension = False
            self.bound[var] -= 1
            if not self.bound[var]:
                del self.bound[var]
        return _Node(_LOOPS[name](items.eval, var, *bodies), "list" if name in ("map", "filter") else "bool")


_PASS_THROUGH = frozenset({"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication",
                           "unary", "member", "primary"})


def _unwrap(tree: lark.Tree) -> lark.Tree:
    """The node under a chain of single-child wrappers: ``has(a.b)``'s argument is an expr of a member_dot."""
    while tree.data in _PASS_THROUGH and len(tree.children) == 1 and isinstance(tree.children[0], lark.Tree):
        tree = tree.children[0]
    return tree


def _literal_value(token: lark.Token) -> Any:
    kind = token.type
    if kind == "INT_LIT":
        return celtypes.IntType(int(token.value, 0) if "x" in token.value.lower() else int(token.value))
    if kind == "UINT_LIT":
        digits = token.value[:-1]
        return celtypes.UintType(int(digits, 0) if "x" in digits.lower() else int(digits))
    if kind == "FLOAT_LIT":
        return celtypes.DoubleType(token.value)
    if kind in ("STRING_LIT", "MLSTRING_LIT"):
        return celstr(token)
    if kind == "BYTES_LIT":
        return celbytes(token)
    if kind == "BOOL_LIT":
        return celtypes.BoolType(token.value == "true")
    return None  # NULL_LIT


def _logical(left: Eval, right: Eval, absorbing: Any) -> Eval:
    """``||`` (absorbing true) or ``&&`` (absorbing false) as CEL has them: commutative over errors,
    ``error || true`` is true; otherwise an error (or a non-bool operand) is the result's."""

    def logical(scope: Scope) -> Any:
        try:
            first = left(scope)
            failure = None if isinstance(first, celtypes.BoolType) else TypeError(
                f"no such overload: {_type_name(first)} in a logical operator")
        except EVAL_ERRORS as err:
            first, failure = None, err
        if failure is None and first == absorbing:
            return absorbing
        second = right(scope)
        if not isinstance(second, celtypes.BoolType):
            raise TypeError(f"no such overload: {_type_name(second)} in a logical operator")
        if second == absorbing:
            return absorbing
        if failure is not None:
            raise failure
        return second

    return logical


def _select(value: Any, name: str, key: celtypes.StringType) -> Any:
    """``value.name`` where the type of ``value`` is not known before it runs."""
    if isinstance(value, Message):
        return value.field(name)
    if isinstance(value, celtypes.MapType):
        return value[key]
    raise TypeError(f"{_type_name(value)} has no fields ('{name}')")


def _truth(value: Any) -> bool:
    """A condition's value: a bool, or the error CEL makes of anything else."""
    if not isinstance(value, celtypes.BoolType):
        raise TypeError(f"no such overload: {_type_name(value)} as a condition")
    return bool(value)


def _items(value: Any) -> list[Any]:
    if isinstance(value, celtypes.ListType | celtypes.MapType):
        return list(value)
    raise TypeError(f"a comprehension over {_type_name(value)}")


def _quantifier(decisive: bool) -> Callable[[Eval, str, Eval], Eval]:
    """``all`` (decisive False: one false item decides) and ``exists`` (decisive True), as cel-go
    evaluates them: an item that fails to evaluate is an error only if no other item decides."""
    def build(items: Eval, var: str, test: Eval) -> Eval:
        def loop(scope: Scope) -> Any:
            inner = dict(scope)
            failure = None
            for item in _items(items(scope)):
                inner[var] = item
                try:
                    if _truth(test(inner)) is decisive:
                        return _TRUE if decisive else _FALSE
                except EVAL_ERRORS as err:
                    failure = err
            if failure is not None:
                raise failure
            return _FALSE if decisive else _TRUE
        return loop
    return build


def _loop_exists_one(items: Eval, var: str, test: Eval) -> Eval:
    def loop(scope: Scope) -> Any:
        inner = dict(scope)
        found = 0
        for item in _items(items(scope)):
            inner[var] = item
            found += _truth(test(inner))
        return celtypes.BoolType(found == 1)
    return loop


def _loop_map(items: Eval, var: str, *bodies: Eval) -> Eval:
    """``map(x, f)`` and ``map(x, p, f)`` (only the items where p holds)."""
    keep, transform = bodies if len(bodies) == 2 else (None, bodies[0])

    def loop(scope: Scope) -> Any:
        inner = dict(scope)
        out = []
        for item in _items(items(scope)):
            inner[var] = item
            if keep is None or _truth(keep(inner)):
                out.append(transform(inner))
        return celtypes.ListType(out)
    return loop


def _loop_filter(items: Eval, var: str, test: Eval) -> Eval:
    def loop(scope: Scope) -> Any:
        inner = dict(scope)
        out = []
        for item in _items(items(scope)):
            inner[var] = item
            if _truth(test(inner)):
                out.append(item)
        return celtypes.ListType(out)
    return loop


_LOOPS: dict[str, Callable[..., Eval]] = {"all": _quantifier(False), "exists": _quantifier(True),
                                          "exists_one": _loop_exists_one, "map": _loop_map,
                                          "filter": _loop_filter}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Message):
        return value.descriptor.full_name
    return type(value).__name__.removesuffix("Type").lower()
