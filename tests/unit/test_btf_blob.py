"""tetra.kernel.btf on a small BTF blob built here with struct.pack (no root, no kernel).

The blob holds one type of every kind, and a struct after all of them, so a
wrong record size for any kind shows up as a wrong or missing ``last``::

    struct inner { int a; int b; };                 typedef struct inner inner_t;
    struct outer {                                  (kind_flag set)
        struct inner *p;           // 0
        const inner_t in;          // 8
        union { int u1; struct inner *u2; };   // 16
        int flags : 3;             // 24, bitfield
        int tail;                  // 28
    };
    struct old { int bits : 3; int x; };            (kind_flag clear: INT of 3 bits)
    ... array, enum, fwd, volatile, restrict, func, func_proto, var, datasec,
        float, decl_tag, type_tag, enum64 ...
    struct last { char pad[3]; int z; };            z at 4
"""

import struct
from pathlib import Path

import pytest

from tetra.errors import BtfError
from tetra.kernel.btf import Btf

KIND = {"int": 1, "ptr": 2, "array": 3, "struct": 4, "union": 5, "enum": 6, "fwd": 7,
        "typedef": 8, "volatile": 9, "const": 10, "restrict": 11, "func": 12,
        "func_proto": 13, "var": 14, "datasec": 15, "float": 16, "decl_tag": 17,
        "type_tag": 18, "enum64": 19}  # fmt: skip


class BlobBuilder:
    """Types appended in order get ids 1, 2, ...; ``build`` lays out header, types, strings."""

    def __init__(self, endian: str = "<") -> None:
        self.endian = endian
        self.strings = bytearray(b"\0")
        self.types = bytearray()
        self.count = 0

    def name(self, text: str) -> int:
        if not text:
            return 0
        offset = len(self.strings)
        self.strings += text.encode() + b"\0"
        return offset

    def add(self, kind: str, name: str = "", size_or_type: int = 0, vlen: int = 0,
            kind_flag: int = 0, extra: tuple[int, ...] = ()) -> int:
        info = (kind_flag << 31) | (KIND[kind] << 24) | vlen
        self.types += struct.pack(self.endian + "III", self.name(name), info, size_or_type)
        self.types += struct.pack(self.endian + "I" * len(extra), *extra)
        self.count += 1
        return self.count

    def composite(self, kind: str, name: str, size: int,
                  members: list[tuple[str, int, int]], kind_flag: int = 0) -> int:
        extra = tuple(v for m_name, m_type, offset in members for v in (self.name(m_name), m_type, offset))
        return self.add(kind, name, size, len(members), kind_flag, extra)

    def build(self) -> bytes:
        header = struct.pack(self.endian + "HBBIIIII", 0xEB9F, 1, 0, 24,
                             0, len(self.types), len(self.types), len(self.strings))
        return header + bytes(self.types) + bytes(self.strings)


def sample(endian: str = "<") -> bytes:
    b = BlobBuilder(endian)
    int_t = b.add("int", "int", 4, extra=(32 | 1 << 24,))
    inner = b.composite("struct", "inner", 8, [("a", int_t, 0), ("b", int_t, 32)])
    inner_p = b.add("ptr", "", inner)
    inner_t = b.add("typedef", "inner_t", inner)
    const_inner = b.add("const", "", inner_t)
    anon = b.composite("union", "", 8, [("u1", int_t, 0), ("u2", inner_p, 0)])
    b.composite("struct", "outer", 32, [
        ("p", inner_p, 0), ("in", const_inner, 64), ("", anon, 128),
        ("flags", int_t, 3 << 24 | 192), ("tail", int_t, 224),
    ], kind_flag=1)
    int3 = b.add("int", "int", 4, extra=(3 | 1 << 24,))
    b.composite("struct", "old", 8, [("bits", int3, 0), ("x", int_t, 32)])
    char = b.add("int", "char", 1, extra=(8,))
    pad = b.add("array", "", 0, extra=(char, int_t, 3))
    b.add("enum", "color", 4, vlen=2, extra=(b.name("RED"), 0, b.name("BLUE"), 1))
    b.add("fwd", "later")
    b.add("volatile", "", int_t)
    b.add("restrict", "", inner_p)
    proto = b.add("func_proto", "", int_t, vlen=2, extra=(b.name("x"), int_t, b.name("y"), inner_p))
    func = b.add("func", "do_it", proto)
    var = b.add("var", "counter", int_t, extra=(1,))
    b.add("datasec", ".data", 4, vlen=1, extra=(var, 0, 4))
    b.add("float", "double", 8)
    b.add("decl_tag", "tagged", func, extra=(0xFFFFFFFF,))
    b.add("type_tag", "user", int_t)
    b.add("enum64", "big", 8, vlen=2, extra=(b.name("LO"), 1, 0, b.name("HI"), 0, 1))
    b.composite("struct", "last", 8, [("pad", pad, 0), ("z", int_t, 32)])
    b.composite("struct", "twin", 4, [("t", int_t, 0)])
    b.composite("struct", "twin", 4, [("t", int_t, 0)])
    b.composite("struct", "clash", 4, [("c", int_t, 0)])
    b.composite("struct", "clash", 8, [("c", int_t, 32)])
    return b.build()


@pytest.fixture(params=["<", ">"], ids=["little-endian", "big-endian"])
def btf(request: pytest.FixtureRequest) -> Btf:
    return Btf(sample(request.param), "sample")


def test_offsets_through_typedef_const_and_anonymous_union(btf: Btf) -> None:
    assert btf.offset_of("outer.p") == 0
    assert btf.offset_of("outer.in") == 8
    assert btf.offset_of("outer.in.b") == 12
    assert btf.offset_of("outer.u1") == 16
    assert btf.offset_of("outer.u2") == 16
    assert btf.offset_of("outer.tail") == 28


def test_every_kind_is_skipped_correctly(btf: Btf) -> None:
    assert btf.offset_of("last.z") == 4
    for kind, name in [("int", "char"), ("enum", "color"), ("fwd", "later"), ("typedef", "inner_t"),
                       ("func", "do_it"), ("var", "counter"), ("datasec", ".data"),
                       ("float", "double"), ("decl_tag", "tagged"), ("type_tag", "user"),
                       ("enum64", "big"), ("struct", "last")]:
        assert btf.has_type(name, kind), (kind, name)
    assert not btf.has_type("inner", "union")
    assert not btf.has_type("do_it", "var")


def test_sizes_and_flattened_member_names(btf: Btf) -> None:
    assert btf.size_of("outer") == 32
    assert btf.size_of("inner") == 8
    assert btf.member_names("outer") == ["p", "in", "u1", "u2", "flags", "tail"]


def test_bitfields_have_no_byte_offset(btf: Btf) -> None:
    with pytest.raises(BtfError, match=r"outer\.flags is a bitfield"):
        btf.offset_of("outer.flags")
    with pytest.raises(BtfError, match=r"old\.bits is a bitfield"):
        btf.offset_of("old.bits")
    assert btf.offset_of("old.x") == 4


def test_lookup_errors_name_what_is_missing(btf: Btf) -> None:
    with pytest.raises(BtfError, match=r"struct outer has no member 'tial' \(did you mean 'tail'\?\)"):
        btf.offset_of("outer.tial")
    with pytest.raises(BtfError, match=r"struct inner has no member 'c'"):
        btf.offset_of("outer.in.c")
    with pytest.raises(BtfError, match=r"outer\.p is a ptr, not an embedded struct"):
        btf.offset_of("outer.p.a")
    with pytest.raises(BtfError, match="no struct or union named 'nothing'"):
        btf.size_of("nothing")
    with pytest.raises(BtfError, match="not of the form"):
        btf.offset_of("outer")
    with pytest.raises(ValueError, match="unknown BTF kind"):
        btf.has_type("outer", "class")


def test_duplicate_names_must_agree(btf: Btf) -> None:
    assert btf.offset_of("twin.t") == 0
    with pytest.raises(BtfError, match="2 different types are named 'clash'"):
        btf.offset_of("clash.c")


def test_every_truncation_raises_btf_error() -> None:
    blob = sample()
    for length in range(len(blob)):
        with pytest.raises(BtfError):
            Btf(blob[:length], "truncated")


def _patched(blob: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(blob)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


@pytest.mark.parametrize(("label", "offset", "fmt", "value", "message"), [
    ("magic", 0, "<H", 0x1234, "not BTF"),
    ("version", 2, "<B", 2, "version 2"),
    ("hdr_len", 4, "<I", 8, "header length 8"),
    ("type_len", 12, "<I", 100, "ends inside type"),
    ("kind", 24 + 4, "<I", 25 << 24, "unknown kind 25"),
    ("kind zero", 24 + 4, "<I", 0, "unknown kind 0"),
])  # fmt: skip
def test_malformed_headers_and_records(label: str, offset: int, fmt: str, value: int, message: str) -> None:
    with pytest.raises(BtfError, match=message):
        Btf(_patched(sample(), offset, fmt, value), label)


def test_bad_references_raise_btf_error_when_used() -> None:
    b = BlobBuilder()
    b.composite("struct", "broken", 8, [("dangling", 99, 0)])
    btf = Btf(b.build(), "dangling")
    with pytest.raises(BtfError, match="type 99, which does not exist"):
        btf.offset_of("broken.dangling")
    b = BlobBuilder()
    b.composite("struct", "ouroboros", 4, [("", 1, 0)])
    with pytest.raises(BtfError, match="struct ouroboros contains itself"):
        Btf(b.build(), "cycle").member_names("ouroboros")
    b = BlobBuilder()
    b.add("struct", "", 0)
    blob = _patched(b.build(), 24, "<I", 1000)  # the struct's name_off, past the strings
    with pytest.raises(BtfError, match="past the string section"):
        Btf(blob, "bad name")


def test_garbage_file_raises_btf_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(BtfError, match="not BTF"):
        Btf.load(str(path))
    with pytest.raises(BtfError, match="no BTF at"):
        Btf.load(str(tmp_path / "absent"))
