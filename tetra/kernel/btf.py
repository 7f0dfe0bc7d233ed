r"""Struct offsets of the running kernel, read from its BTF in pure Python.

Why this exists: bcc compiles our probes against whatever kernel headers the
machine has (Debian's 6.1 tree on a 6.18 kernel here), so every ``task->field``
the C compiler lays out is at another kernel's offset. The probes therefore read
kernel structs only through offsets resolved here, from the running kernel's own
BTF, and handed to the C code as ``-D`` defines.

The file (``/sys/kernel/btf/vmlinux``, ~5 MB, ~127k types) is laid out as::

    0 ┌───────────────────────────────┐
      │ btf_header                    │ u16 magic 0xeB9F (its bytes give the byte
      │                               │ order), u8 version 1, u8 flags, u32 hdr_len,
      │                               │ u32 type_off, type_len, str_off, str_len
    hdr_len ────────────────────────────  (section offsets count from here)
      │ type section                  │ type ids count from 1 (0 is void);
      │   [1] btf_type + extra        │ each record is a 12-byte btf_type:
      │   [2] btf_type + extra        │   u32 name_off, u32 info, u32 size_or_type
      │   ...                         │   info: vlen bits 0-15, kind bits 24-28,
      │                               │         kind_flag bit 31
      ├───────────────────────────────┤ then extra bytes that depend on the kind:
      │ string section                │   INT 4, ARRAY 12, VAR 4, DECL_TAG 4,
      │   "\0name\0name\0..."         │   STRUCT, UNION, DATASEC, ENUM64 12 * vlen,
      └───────────────────────────────┘   ENUM, FUNC_PROTO 8 * vlen, the rest none

    a STRUCT or UNION is followed by vlen btf_member records:
        u32 name_off (0: an anonymous struct or union member), u32 type, u32 offset
        offset is in bits; when the struct's kind_flag is set, bits 24-31 hold
        the bitfield size and bits 0-23 the bit offset. Without kind_flag a
        bitfield shows as a member whose INT type is narrower than its size.

Loading makes one pass over the type section that records where each type
starts and indexes struct and union names; members are decoded only for the
structs asked about, and cached.
"""

import difflib
import struct
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self, TypeVar

from tetra.errors import BtfError

VMLINUX = "/sys/kernel/btf/vmlinux"

# Kind numbers from include/uapi/linux/btf.h, indexed by number.
KINDS = (
    "unkn", "int", "ptr", "array", "struct", "union", "enum", "fwd", "typedef",
    "volatile", "const", "restrict", "func", "func_proto", "var", "datasec",
    "float", "decl_tag", "type_tag", "enum64",
)  # fmt: skip
_INT, _STRUCT, _UNION, _ENUM, _ENUM64 = 1, 4, 5, 6, 19
_COMPOSITES = (_STRUCT, _UNION)
_MODIFIERS = frozenset({8, 9, 10, 11, 18})  # typedef, volatile, const, restrict, type_tag

# Bytes after the 12-byte btf_type, per kind number: (fixed, per vlen entry).
_EXTRA = tuple(
    {
        "int": (4, 0), "array": (12, 0), "struct": (0, 12), "union": (0, 12),
        "enum": (0, 8), "func_proto": (0, 8), "var": (4, 0), "datasec": (0, 12),
        "decl_tag": (4, 0), "enum64": (0, 12),
    }.get(kind, (0, 0))
    for kind in KINDS
)  # fmt: skip

_MAGIC = 0xEB9F
_HEADER_SIZE = 24
_TYPE_SIZE = 12  # btf_type
_MEMBER_SIZE = 12  # btf_member
_MAX_CHAIN = 64  # typedef/const/... links followed before calling it a loop

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Member:
    """One member of a struct or union, its offset in bits from the start."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int  # 0 unless a bitfield


class Btf:
    """The types of one BTF blob; struct offsets by dotted name."""

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        """Parse the header and index the type section of ``data``."""
        self._data = data
        self._source = source
        endian, type_start, type_end, self._str_start, self._str_end = _header(data, source)
        self._record = struct.Struct(endian + "III").unpack_from
        self._u32 = struct.Struct(endian + "I").unpack_from
        self._offsets, composites = _scan(data, type_start, type_end, endian, source)
        self._index: dict[int, dict[str, list[int]]] = {_STRUCT: {}, _UNION: {}}
        for kind, name_off, type_id in composites:
            self._index[kind].setdefault(self._string(name_off), []).append(type_id)
        self._fields_cache: dict[int, dict[str, _Member]] = {}
        self._flattening: set[int] = set()  # structs being flattened, to catch cycles
        self._enumerators: dict[str, int] | None = None

    @classmethod
    def load(cls, path: str = VMLINUX) -> Self:
        """Read and index the BTF file at ``path`` (the running kernel's by default)."""
        try:
            with open(path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            raise BtfError(f"no BTF at {path}: the kernel needs CONFIG_DEBUG_INFO_BTF=y") from None
        except OSError as err:
            raise BtfError(f"cannot read BTF at {path}: {err.strerror or err}") from None
        return cls(data, path)

    def offset_of(self, dotted: str) -> int:
        """Byte offset of ``struct.member[.member...]``, through embedded members only."""
        parts = dotted.split(".")
        if len(parts) < 2 or not all(parts):
            raise BtfError(f"{dotted!r} is not of the form struct.member[.member...]")
        return self._agreed(parts[0], lambda type_id: self._offset_in(type_id, parts))

    def enum_value(self, name: str) -> int:
        """The value of the enumerator ``name`` (enumerators share C's one namespace: the name is enough).

        Enums that change between kernels (``enum iter_type`` gained ``ITER_UBUF`` first) are read here
        rather than from headers."""
        if self._enumerators is None:
            values: dict[str, int] = {}
            for kind, entry in ((_ENUM, 8), (_ENUM64, 12)):
                for ids in self._names(kind).values():
                    for type_id in ids:
                        start = self._offsets[type_id - 1] + _TYPE_SIZE
                        for index in range(self._type(type_id)[1] & 0xFFFF):
                            at = start + index * entry
                            (name_off,), (low,) = self._u32(self._data, at), self._u32(self._data, at + 4)
                            high = self._u32(self._data, at + 8)[0] if kind == _ENUM64 else 0
                            values.setdefault(self._string(name_off), low | high << 32)
            self._enumerators = values
        if name not in self._enumerators:
            raise BtfError(f"no enumerator named {name!r} in {self._source}")
        return self._enumerators[name]

    def size_of(self, name: str) -> int:
        """Size in bytes of the struct or union called ``name``."""
        return self._agreed(name, lambda type_id: self._type(type_id)[2])

    def has_type(self, name: str, kind: str = "struct") -> bool:
        """Whether a type of ``kind`` (a BTF kind name, lower case) is called ``name``."""
        if kind not in KINDS[1:]:
            raise ValueError(f"unknown BTF kind {kind!r}; one of {', '.join(KINDS[1:])}")
        return name in self._names(KINDS.index(kind))

    def member_names(self, struct: str) -> list[str]:
        """Member names of ``struct``, with anonymous structs and unions flattened in."""
        return self._agreed(struct, lambda type_id: list(self._fields(type_id)))

    def _agreed(self, name: str, answer: Callable[[int], T]) -> T:
        """``answer`` for the struct or union called ``name``, which must be unambiguous.

        A few names belong to several unrelated types (local structs of
        different files); the answer counts only if all types that have one agree.
        """
        ids = self._names(_STRUCT).get(name, []) + self._names(_UNION).get(name, [])
        if not ids:
            raise BtfError(f"no struct or union named {name!r} in {self._source}")
        answers: list[T] = []
        errors: list[BtfError] = []
        for type_id in ids:
            try:
                answers.append(answer(type_id))
            except BtfError as err:
                errors.append(err)
        if not answers:
            raise errors[0]
        if any(other != answers[0] for other in answers[1:]):
            raise BtfError(f"{len(ids)} different types are named {name!r} and they disagree")
        return answers[0]

    def _offset_in(self, type_id: int, parts: list[str]) -> int:
        """Byte offset of the member chain ``parts[1:]`` inside the struct ``type_id``."""
        dotted = ".".join(parts)
        offset = 0
        for depth, member_name in enumerate(parts[1:], start=2):
            fields = self._fields(type_id)
            member = fields.get(member_name)
            if member is None:
                raise BtfError(f"{dotted}: {self._describe(type_id)} has no member {member_name!r}"
                               + _suggestion(member_name, fields))
            where = ".".join(parts[:depth])
            if member.bitfield_size or member.bit_offset % 8:
                raise BtfError(f"{dotted}: {where} is a bitfield and has no byte offset")
            offset += member.bit_offset // 8
            if depth < len(parts):
                type_id = self._strip(member.type_id)
                if self._kind(type_id) not in _COMPOSITES:
                    raise BtfError(f"{dotted}: {where} is a {KINDS[self._kind(type_id)]}, not an "
                                   "embedded struct or union (offsets do not follow pointers)")
        return offset

    def _fields(self, type_id: int) -> dict[str, _Member]:
        """Members of struct ``type_id`` by name, anonymous members flattened in."""
        cached = self._fields_cache.get(type_id)
        if cached is not None:
            return cached
        if type_id in self._flattening:
            raise BtfError(f"{self._source}: {self._describe(type_id)} contains itself")
        self._flattening.add(type_id)
        try:
            fields = self._flatten(type_id)
        finally:
            self._flattening.discard(type_id)
        self._fields_cache[type_id] = fields
        return fields

    def _flatten(self, type_id: int) -> dict[str, _Member]:
        """Members of struct ``type_id``, those of anonymous members at their outer offsets."""
        fields: dict[str, _Member] = {}
        for member in self._members(type_id):
            if member.name:
                fields.setdefault(member.name, member)
                continue
            inner = self._strip(member.type_id)
            if self._kind(inner) in _COMPOSITES:
                for name, field in self._fields(inner).items():
                    at = member.bit_offset + field.bit_offset
                    fields.setdefault(name, _Member(name, field.type_id, at, field.bitfield_size))
        return fields

    def _members(self, type_id: int) -> list[_Member]:
        """The btf_member records that follow struct or union ``type_id``."""
        _, info, _ = self._type(type_id)
        kind_flag = info >> 31
        start = self._offsets[type_id - 1] + _TYPE_SIZE
        members = []
        for index in range(info & 0xFFFF):
            name_off, member_type, offset = self._record(self._data, start + index * _MEMBER_SIZE)
            if kind_flag:
                bit_offset, bitfield_size = offset & 0xFFFFFF, offset >> 24
            else:
                bit_offset, bitfield_size = offset, self._int_bitfield_size(member_type)
            members.append(_Member(self._string(name_off), member_type, bit_offset, bitfield_size))
        return members

    def _int_bitfield_size(self, type_id: int) -> int:
        """Bits of the INT ``type_id`` when it encodes a bitfield (no kind_flag), else 0."""
        type_id = self._strip(type_id)
        if self._kind(type_id) != _INT:
            return 0
        size = self._type(type_id)[2]
        (encoding,) = self._u32(self._data, self._offsets[type_id - 1] + _TYPE_SIZE)
        bits, bit_offset = encoding & 0xFF, (encoding >> 16) & 0xFF
        return bits if bits != size * 8 or bit_offset else 0

    def _strip(self, type_id: int) -> int:
        """Follow typedef, const, volatile, restrict and type tags to the type beneath."""
        for _ in range(_MAX_CHAIN):
            if self._kind(type_id) not in _MODIFIERS:
                return type_id
            type_id = self._type(type_id)[2]
        raise BtfError(f"{self._source}: type {type_id} is in a typedef/modifier loop")

    def _names(self, kind: int) -> dict[str, list[int]]:
        """Type ids by name for ``kind``; struct and union are indexed at load, others on demand."""
        index = self._index.get(kind)
        if index is None:
            index = {}
            for type_id in range(1, len(self._offsets) + 1):
                name_off, info, _ = self._type(type_id)
                if name_off and (info >> 24) & 0x1F == kind:
                    index.setdefault(self._string(name_off), []).append(type_id)
            self._index[kind] = index
        return index

    def _describe(self, type_id: int) -> str:
        """``struct path``, ``union (anon)``: a type as an error message names it."""
        name_off, info, _ = self._type(type_id)
        return f"{KINDS[(info >> 24) & 0x1F]} {self._string(name_off) or '(anon)'}"

    def _kind(self, type_id: int) -> int:
        """The kind number of ``type_id``; void (id 0) has kind 0."""
        return (self._type(type_id)[1] >> 24) & 0x1F if type_id else 0

    def _type(self, type_id: int) -> tuple[int, int, int]:
        """The btf_type record of ``type_id``: (name_off, info, size_or_type)."""
        if not 0 < type_id <= len(self._offsets):
            raise BtfError(f"{self._source}: reference to type {type_id}, which does not exist")
        return self._record(self._data, self._offsets[type_id - 1])

    def _string(self, offset: int) -> str:
        """The NUL-terminated string at ``offset`` in the string section."""
        start = self._str_start + offset
        if start >= self._str_end:
            raise BtfError(f"{self._source}: string offset {offset} is past the string section")
        end = self._data.find(b"\0", start, self._str_end)
        try:
            return self._data[start:end].decode()
        except UnicodeDecodeError:
            raise BtfError(f"{self._source}: string at offset {offset} is not UTF-8") from None


def _header(data: bytes, source: str) -> tuple[str, int, int, int, int]:
    """Byte order and absolute (start, end) of the type and string sections."""
    if len(data) < _HEADER_SIZE:
        raise BtfError(f"{source}: {len(data)} bytes, too short for a BTF header")
    endian = "<" if struct.unpack_from("<H", data)[0] == _MAGIC else ">"
    magic, version, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        endian + "HBBIIIII", data
    )
    if magic != _MAGIC:
        raise BtfError(f"{source}: not BTF (magic {magic:#06x}, want {_MAGIC:#06x})")
    if version != 1:
        raise BtfError(f"{source}: BTF version {version}, only version 1 is understood")
    if hdr_len < _HEADER_SIZE:
        raise BtfError(f"{source}: header length {hdr_len}, below the {_HEADER_SIZE} bytes of version 1")
    type_start, str_start = hdr_len + type_off, hdr_len + str_off
    type_end, str_end = type_start + type_len, str_start + str_len
    if max(type_end, str_end) > len(data):
        promised = max(type_end, str_end)
        raise BtfError(f"{source}: truncated ({len(data)} bytes; the header promises {promised})")
    if str_len == 0 or data[str_end - 1] != 0:
        raise BtfError(f"{source}: the string section does not end in NUL")
    return endian, type_start, type_end, str_start, str_end


def _scan(
    data: bytes, start: int, end: int, endian: str, source: str
) -> tuple["array[int]", list[tuple[int, int, int]]]:
    """Walk the type section once: where each type starts, and the named structs and unions.

    Returns the start offsets (type id N at index N - 1) and (kind, name_off, id)
    of every named struct or union. This loop is most of the load time.
    """
    unpack = struct.Struct(endian + "II").unpack_from
    offsets = array("I")
    composites: list[tuple[int, int, int]] = []
    extra = _EXTRA
    limit = end - _TYPE_SIZE
    position = start
    while position <= limit:
        name_off, info = unpack(data, position)
        kind = (info >> 24) & 0x1F
        if not 0 < kind < len(extra):
            raise BtfError(f"{source}: type {len(offsets) + 1} has unknown kind {kind}")
        offsets.append(position)
        if (kind == _STRUCT or kind == _UNION) and name_off:
            composites.append((kind, name_off, len(offsets)))
        fixed, per_entry = extra[kind]
        position += _TYPE_SIZE + fixed + (info & 0xFFFF) * per_entry
    if position != end:
        raise BtfError(f"{source}: the type section ends inside type {len(offsets)}")
    return offsets, composites


def _suggestion(name: str, fields: dict[str, _Member]) -> str:
    """``" (did you mean 'x'?)"`` for a near miss among ``fields``, else nothing."""
    close = difflib.get_close_matches(name, fields, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
