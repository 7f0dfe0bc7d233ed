"""What kind of field a protobuf descriptor declares, for the code that reads events by their .proto.

Two readers need it and sit in packages that must not import each other: the
API's dict <-> message conversion (tetra.api.convert) and the CEL filters'
typed view of events (tetra.filters.celvalues).
"""

from google.protobuf.descriptor import FieldDescriptor


def is_repeated(field: FieldDescriptor) -> bool:
    """``is_repeated`` where protobuf has it (``label`` is gone in protobuf 7), ``label`` before."""
    attribute = getattr(field, "is_repeated", None)
    return bool(attribute) if attribute is not None else field.label == FieldDescriptor.LABEL_REPEATED


def is_map(field: FieldDescriptor) -> bool:
    """A ``map<K, V>`` field (protobuf declares it as a repeated message of map entries)."""
    return field.message_type is not None and field.message_type.GetOptions().map_entry
