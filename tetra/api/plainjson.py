"""A reply message as the CLI prints it with ``-o json``: protobuf's JSON mapping, counters as numbers.

Protobuf's JSON mapping writes every 64-bit integer as a string ("12"), so
that JavaScript's doubles cannot round it. `tetra status -o json` is read by
jq and scripts, where ``.losses.kernel_lost > 0`` must work, and Python's
JSON keeps every integer exact; so the CLI turns the 64-bit fields tetra
defines (tetra.api.v1's, and tetra's additions to Tetragon's messages, numbered
from 10000) back into numbers. Tetragon's own 64-bit fields (a policy's ``id``
in `tetra tracingpolicy list -o json`) stay strings, as Tetragon's CLI prints
them, so that its users' scripts read them unchanged.
Numbers the gRPC API sends are untouched: its clients get protobuf's mapping.
"""

from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_WIDE = frozenset((FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
                   FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64))
TETRA_FIELDS = 10000  # in package tetragon, tetra's additions are numbered from here


def message_json(message: Message) -> dict[str, Any]:
    """``message`` as a dict for ``orjson.dumps``: every field (zeros included), proto field names."""
    out = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                    always_print_fields_with_no_presence=True)
    _numbers(out, message.DESCRIPTOR)
    return out


def _numbers(value: dict[str, Any], descriptor: Descriptor, tetras: bool = False) -> None:
    """Turn the 64-bit integer fields of ``value`` (a message as MessageToDict made it) into ints, in
    place, but Tetragon's own. ``tetras``: ``value`` is inside one of tetra's additions."""
    for field in descriptor.fields:
        if field.name not in value:
            continue
        item = value[field.name]
        addition = tetras or (field.containing_type.file.package == "tetragon" and field.number >= TETRA_FIELDS)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value[field.name] = _map(item, field.message_type.fields_by_name["value"], addition)
        elif field.message_type is not None:
            for one in item if field.is_repeated else (item,):
                _numbers(one, field.message_type, addition)
        elif field.type in _WIDE and (addition or field.containing_type.file.package != "tetragon"):
            value[field.name] = [int(one) for one in item] if field.is_repeated else int(item)


def _map(entries: dict[str, Any], field: FieldDescriptor, tetras: bool) -> dict[str, Any]:
    """A map field's entries, their values converted as a field of the value's type would be."""
    if field.message_type is not None:
        for one in entries.values():
            _numbers(one, field.message_type, tetras)
        return entries
    ours = tetras or field.containing_type.file.package != "tetragon"
    return {key: int(one) for key, one in entries.items()} if field.type in _WIDE and ours else entries
