"""Events as CEL sees them: Tetragon's GetEventsResponse messages, read lazily from event dicts.

Tetragon evaluates a ``cel_expression`` against the protobuf message of the
event, so types come from the .proto: ``process.pid`` is a UInt32Value (compare
it with ``1000u``), ``process_kprobe.args[0].size_arg`` a uint64,
``int_arg`` an int32, an unset wrapper is ``null``, an unset message field an
empty message, an unset string ``""``. tetra's events are dicts in protojson's
shape (64-bit integers as strings, enums as names, bytes as base64), so a
``Message`` pairs a dict with its descriptor and converts a field only when an
expression reads it: an exec event read for ``process.binary`` costs that
field's conversion, not the whole event's.

Every event type is a variable, as in Tetragon (``process_exec``,
``process_kprobe`` ...); the ones the event is not are empty messages, so
``process_exec.process.binary == "x"`` is false for an exit event, not an error.
"""

import base64
from collections.abc import Callable
from functools import cache
from typing import Any

from celpy import celtypes
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from tetra.protofields import is_map, is_repeated

Convert = Callable[[Any], Any]

_UINTS = frozenset({FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED32,
                    FieldDescriptor.TYPE_FIXED64})
_INTS = frozenset({FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT32,
                   FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SFIXED64})
_FLOATS = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})
_WRAPPERS = frozenset(f"google.protobuf.{name}Value" for name in
                      ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"))
_TIMESTAMP = "google.protobuf.Timestamp"
_DURATION = "google.protobuf.Duration"
_EPOCH = "1970-01-01T00:00:00Z"


class Message:
    """A protobuf message in CEL: the dict of its set fields and the descriptor naming all of them."""

    __slots__ = ("body", "descriptor")

    def __init__(self, body: dict[str, Any], descriptor: Descriptor) -> None:
        self.body = body
        self.descriptor = descriptor

    def field(self, name: str) -> Any:
        """``message.name``: the field's value, or its type's default when unset (KeyError: no such field)."""
        convert, default = _plan(self.descriptor)[name]
        value = self.body.get(name)
        return default() if value is None else convert(value)

    def has(self, name: str) -> bool:
        """``has(message.name)``: set (protojson prints only those), non-empty for lists and maps."""
        if name not in self.descriptor.fields_by_name:
            raise KeyError(name)
        value = self.body.get(name)
        return value is not None and value != [] and value != {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and other.descriptor is self.descriptor and other.body == self.body

    def __hash__(self) -> int:
        return id(self.descriptor)

    def __repr__(self) -> str:
        return f"{self.descriptor.name}({self.body!r})"


def field_reader(descriptor: Descriptor, name: str) -> Callable[[Message], Any]:
    """``message.name`` for messages of a type known before they come: the field's conversion is
    looked up once, here, not at each event."""
    convert, default = _plan(descriptor)[name]

    def read(message: Message) -> Any:
        value = message.body.get(name)
        return default() if value is None else convert(value)

    return read


def field_kind(field: FieldDescriptor) -> str | None:
    """The CEL type of the field's values, as a type checker names it (int, uint, string, list ...);
    a wrapper is its value's type (it may also be null); None for a message."""
    message = field.message_type
    if is_map(field):
        return "map"
    if is_repeated(field):
        return "list"
    if message is None:
        return _KINDS.get(field.type)
    if message.full_name in _WRAPPERS:
        return _KINDS.get(message.fields_by_name["value"].type)
    return {_TIMESTAMP: "timestamp", _DURATION: "duration"}.get(message.full_name)


def message_field(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    """The field of that name, for checking expressions before they run."""
    return descriptor.fields_by_name.get(name)


def is_message(field: FieldDescriptor) -> bool:
    """A field whose value is a Message in CEL (not a wrapper, timestamp, list or map)."""
    message = field.message_type
    return (message is not None and not is_repeated(field)
            and message.full_name not in _WRAPPERS and message.full_name not in (_TIMESTAMP, _DURATION))


def is_message_list(field: FieldDescriptor) -> bool:
    """A repeated message field (not a map): indexing it gives Messages."""
    message = field.message_type
    return (is_repeated(field) and message is not None and not is_map(field)
            and message.full_name not in _WRAPPERS)


@cache
def _plan(descriptor: Descriptor) -> dict[str, tuple[Convert, Callable[[], Any]]]:
    """Field name -> (JSON value -> CEL value, the default when unset), once per message type."""
    return {field.name: _field_plan(field) for field in descriptor.fields}


def _field_plan(field: FieldDescriptor) -> tuple[Convert, Callable[[], Any]]:
    message = field.message_type
    if is_map(field):
        key = _scalar(message.fields_by_name["key"])
        value = _value(message.fields_by_name["value"])
        return (lambda items: celtypes.MapType({key(k): value(v) for k, v in items.items()}),
                lambda: celtypes.MapType({}))
    single = _value(field)
    if is_repeated(field):
        return (lambda items: celtypes.ListType([single(item) for item in items]), lambda: celtypes.ListType([]))
    if message is not None:
        if message.full_name in _WRAPPERS:
            return single, lambda: None
        if message.full_name == _TIMESTAMP:
            return single, lambda: celtypes.TimestampType(_EPOCH)
        if message.full_name == _DURATION:
            return single, lambda: celtypes.DurationType(0)
        empty: dict[str, Any] = {}
        return single, lambda: Message(empty, message)
    default = single(_ZERO.get(field.type, 0) if field.type != FieldDescriptor.TYPE_ENUM else 0)
    return single, lambda: default


_KINDS: dict[int, str] = {**{kind: "uint" for kind in _UINTS}, **{kind: "int" for kind in _INTS},
                          **{kind: "double" for kind in _FLOATS}, FieldDescriptor.TYPE_ENUM: "int",
                          FieldDescriptor.TYPE_STRING: "string", FieldDescriptor.TYPE_BOOL: "bool",
                          FieldDescriptor.TYPE_BYTES: "bytes"}
_ZERO: dict[int, Any] = {FieldDescriptor.TYPE_STRING: "", FieldDescriptor.TYPE_BYTES: "",
                         FieldDescriptor.TYPE_BOOL: False, FieldDescriptor.TYPE_DOUBLE: 0.0,
                         FieldDescriptor.TYPE_FLOAT: 0.0}


def _value(field: FieldDescriptor) -> Convert:
    """One value of ``field`` (one item of a repeated field) from JSON to CEL."""
    message = field.message_type
    if message is None:
        return _scalar(field)
    if message.full_name in _WRAPPERS:
        return _scalar(message.fields_by_name["value"])
    if message.full_name == _TIMESTAMP:
        return celtypes.TimestampType
    if message.full_name == _DURATION:
        return celtypes.DurationType
    return lambda body: Message(body, message)


def _scalar(field: FieldDescriptor) -> Convert:
    kind = field.type
    # int.__new__: the .proto's type bounds the value already, and celpy's constructors (range
    # checks through a decorator made anew per call) cost more than the rest of a field's reading
    if kind in _UINTS:
        return lambda value: int.__new__(celtypes.UintType, int(value))
    if kind in _INTS:
        return lambda value: int.__new__(celtypes.IntType, int(value))
    if kind == FieldDescriptor.TYPE_STRING:
        return celtypes.StringType
    if kind == FieldDescriptor.TYPE_BOOL:
        return celtypes.BoolType
    if kind in _FLOATS:
        return lambda value: celtypes.DoubleType(float(value))
    if kind == FieldDescriptor.TYPE_BYTES:
        return lambda text: celtypes.BytesType(base64.b64decode(text))
    if kind == FieldDescriptor.TYPE_ENUM:  # CEL's enums are ints; protojson writes their names
        numbers = {value.name: value.number for value in field.enum_type.values}
        return lambda value: celtypes.IntType(numbers.get(value, 0) if isinstance(value, str) else int(value))
    raise ValueError(f"field {field.full_name} has a type CEL does not read ({kind})")

