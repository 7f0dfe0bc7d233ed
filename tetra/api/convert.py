"""Event dicts to protobuf messages and back, exactly as protojson maps them, fast.

``json_format.ParseDict`` costs about 230 µs for one exec event and
``MessageToDict`` about 80 µs: a few thousand events a second, less than an
exec storm makes. Here each message type gets a plan once, from its
descriptor, saying which fields need a change of form:

* to a message: wrappers take ``{"value": v}``, Timestamps seconds and nanos,
  64-bit integers ints (JSON has them as strings), bytes raw (JSON has base64);
  everything else goes unchanged to the message constructor, which is C and
  takes nested dicts, lists and enum names, and refuses unknown fields;
* to a dict: ``ListFields`` (C) lists exactly the fields protojson prints
  (present ones: set scalars, messages, ``optional`` fields even when zero),
  and each value is turned into its JSON form.

The results equal json_format's (tests/unit/test_api_convert.py compares them).

An event becomes Tetragon's GetEventsResponse (package tetragon), whose field
names are the JSON export's, so a line of the export is its JSON form.
"""

import base64
import binascii
import calendar
import time
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from tetra.api import tg_events
from tetra.errors import TetraError
from tetra.node import rfc3339_fraction
from tetra.protofields import is_map, is_repeated

Json = dict[str, Any]
Convert = Callable[[Any], Any]

_WRAPPERS = frozenset(f"google.protobuf.{name}Value" for name in
                      ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"))
_TIMESTAMP = "google.protobuf.Timestamp"
_INT64 = frozenset({FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
                    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64})
_FLOATS = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})


class ConvertError(TetraError):
    """An event does not fit the protobuf messages (a field the .proto lacks, a wrong type)."""


# -- dict -> message ------------------------------------------------------------


def to_message(event: Json) -> Any:
    """``event`` (one line of the JSON export) as a GetEventsResponse."""
    response = tg_events.GetEventsResponse
    try:
        return response(**_to_init(response.DESCRIPTOR, event))
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error) as err:
        raise ConvertError(f"event does not fit {response.DESCRIPTOR.full_name}: {err}") from None


def to_bytes(event: Json) -> bytes:
    """``event`` serialized as a GetEventsResponse: what a GetEvents stream carries."""
    return to_message(event).SerializeToString()


def _to_init(descriptor: Descriptor, value: Json) -> Json:
    """Constructor arguments for ``descriptor`` from its JSON form (a new dict only when needed)."""
    plan = _init_plan(descriptor)
    if not plan:
        return value
    out = dict(value)
    for key, convert in plan.items():
        if key in out:
            out[key] = convert(out[key])
    return out


@cache
def _init_plan(descriptor: Descriptor) -> dict[str, Convert]:
    """Field name -> converter, for the fields whose JSON form the constructor does not take."""
    plan: dict[str, Convert] = {}
    for field in descriptor.fields:
        convert = _init_value(field)
        if convert is None:
            continue
        if is_repeated(field) and not is_map(field):
            plan[field.name] = _each(convert)
        else:
            plan[field.name] = convert
    return plan


def _each(convert: Convert) -> Convert:
    return lambda values: [convert(v) for v in values]


def _init_value(field: FieldDescriptor) -> Convert | None:
    """How one value of ``field`` changes from JSON to constructor form; None when it does not."""
    message = field.message_type
    if message is not None:
        if is_map(field):
            inner = _init_value(message.fields_by_name["value"])
            return None if inner is None else (lambda mapping: {k: inner(v) for k, v in mapping.items()})
        if message.full_name in _WRAPPERS:
            value = _init_value(message.fields_by_name["value"])
            if value is None:
                return lambda v: {"value": v}
            return lambda v: {"value": value(v)}
        if message.full_name == _TIMESTAMP:
            return _parse_timestamp
        if not _needs_init(message):
            return None
        return lambda value: _to_init(message, value)
    if field.type in _INT64:
        return int
    if field.type == FieldDescriptor.TYPE_BYTES:
        return _unbase64
    if field.type in _FLOATS:
        return float
    return None


@cache
def _needs_init(descriptor: Descriptor) -> bool:
    return bool(_init_plan(descriptor))


def _unbase64(text: str) -> bytes:
    """protojson accepts standard and URL-safe base64, padded or not."""
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


@lru_cache(maxsize=4096)
def _epoch(prefix: str) -> int:
    """Seconds since the epoch of "YYYY-MM-DDTHH:MM:SS" (UTC); cached: events share their seconds."""
    date, _, clock = prefix.partition("T")
    year, month, day = (int(p) for p in date.split("-"))
    hour, minute, second = (int(p) for p in clock.split(":"))
    return calendar.timegm((year, month, day, hour, minute, second))


def _parse_timestamp(text: str) -> Json:
    """An RFC 3339 time as Timestamp fields; the "Z" form fast, any other through protobuf."""
    if len(text) >= 20 and text[-1] == "Z" and text[10] == "T" and (len(text) == 20 or text[19] == "."):
        digits = text[20:-1]
        if len(digits) <= 9 and digits.isdigit() or not digits:
            return {"seconds": _epoch(text[:19]), "nanos": int(digits.ljust(9, "0")) if digits else 0}
    stamp = tg_events.GetEventsResponse().time
    stamp.FromJsonString(text)
    return {"seconds": stamp.seconds, "nanos": stamp.nanos}


# -- message -> dict ------------------------------------------------------------


def to_dict(message: Message) -> Json:
    """``message`` in protobuf's JSON mapping with proto field names, as the JSON export writes it."""
    return {field.name: _json_value(field)(value) for field, value in message.ListFields()}


@cache
def _json_value(field: FieldDescriptor) -> Convert:
    """How a value ListFields returns for ``field`` becomes JSON (per field, cached)."""
    if is_map(field):
        inner = _json_scalar(field.message_type.fields_by_name["value"])
        return lambda mapping: {str(k): inner(v) for k, v in mapping.items()}
    single = _json_scalar(field)
    if is_repeated(field):
        return lambda values: [single(v) for v in values]
    return single


def _json_scalar(field: FieldDescriptor) -> Convert:
    message = field.message_type
    if message is not None:
        if message.full_name in _WRAPPERS:
            inner = _json_scalar(message.fields_by_name["value"])
            return lambda wrapper: inner(wrapper.value)
        if message.full_name == _TIMESTAMP:
            return _format_timestamp
        return to_dict
    if field.type in _INT64:
        return str
    if field.type == FieldDescriptor.TYPE_BYTES:
        return lambda data: base64.b64encode(data).decode("ascii")
    if field.type == FieldDescriptor.TYPE_ENUM:
        names = {value.number: value.name for value in field.enum_type.values}
        return lambda number: names.get(number, number)
    if field.type in _FLOATS:
        return _json_float
    return lambda value: value


def _json_float(value: float) -> float | str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


@lru_cache(maxsize=4096)
def _date(seconds: int) -> str:
    """"YYYY-MM-DDTHH:MM:SS" of ``seconds``; cached: events share their seconds."""
    year, month, day, hour, minute, second = time.gmtime(seconds)[:6]
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"


def _format_timestamp(stamp: Any) -> str:
    return f"{_date(stamp.seconds)}{rfc3339_fraction(stamp.nanos)}Z"
