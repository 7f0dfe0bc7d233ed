"""tetra.kernel.btf against the running kernel's BTF, checked with bpftool.

bpftool's raw dump is an independent reading of the same file::

    [114] STRUCT 'task_struct' size=3264 vlen=248
    	'thread_info' type_id=375 bits_offset=0
    	'(anon)' type_id=263 bits_offset=...      <- anonymous struct/union member
    [2] CONST '(anon)' type_id=1

The reference below resolves members the way C does: a member of an anonymous
struct or union is a member of the enclosing struct, at the sum of both offsets.
"""

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tetra.errors import BtfError
from tetra.kernel.btf import VMLINUX, Btf

pytestmark = pytest.mark.usefixtures("root")  # the kernel's BTF is root's: skipped per test, not at import

if not os.path.exists(VMLINUX):
    pytest.skip(f"{VMLINUX} is absent (kernel without CONFIG_DEBUG_INFO_BTF)", allow_module_level=True)
if shutil.which("bpftool") is None:
    pytest.skip("bpftool is not installed; it is the reference", allow_module_level=True)

PROBE_OFFSETS = [
    "task_struct.real_parent", "task_struct.tgid", "task_struct.pid", "task_struct.mm",
    "task_struct.fs", "task_struct.start_boottime", "task_struct.loginuid",
    "task_struct.exit_code", "task_struct.cgroups", "mm_struct.arg_start",
    "mm_struct.arg_end", "fs_struct.pwd", "fs_struct.root", "path.dentry", "path.mnt",
    "dentry.d_parent", "dentry.d_name", "qstr.name", "mount.mnt", "mount.mnt_parent",
    "mount.mnt_mountpoint", "vfsmount.mnt_root", "css_set.dfl_cgrp", "cgroup.kn",
    "kernfs_node.name",
]  # fmt: skip

_MODIFIERS = {"TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"}
_TYPE_LINE = re.compile(r"\[(\d+)\] (\w+) '(.*?)'(.*)")
_MEMBER_LINE = re.compile(r"\t'(.*?)' type_id=(\d+) bits_offset=(\d+)(?: bitfield_size=(\d+))?")


@dataclass
class RefType:
    kind: str
    name: str
    attrs: dict[str, str]
    members: list[tuple[str, int, int, int]] = field(default_factory=list)  # name, type, bits, bitfield


class Reference:
    """bpftool's raw dump, with C's rules for anonymous members."""

    def __init__(self, dump: str) -> None:
        self.types: dict[int, RefType] = {}
        current: RefType | None = None
        for line in dump.splitlines():
            if match := _TYPE_LINE.fullmatch(line):
                type_id, kind, name, rest = match.groups()
                current = RefType(kind, name, dict(re.findall(r"(\w+)=(\S+)", rest)))
                self.types[int(type_id)] = current
            elif (match := _MEMBER_LINE.fullmatch(line)) and current and current.kind in ("STRUCT", "UNION"):
                name, type_id, bits, bitfield = match.groups()
                current.members.append((name, int(type_id), int(bits), int(bitfield or 0)))
        self.by_name: dict[str, list[int]] = {}
        for type_id, ref in self.types.items():
            if ref.kind in ("STRUCT", "UNION") and ref.name != "(anon)":
                self.by_name.setdefault(ref.name, []).append(type_id)

    def strip(self, type_id: int) -> int:
        while type_id and self.types[type_id].kind in _MODIFIERS:
            type_id = int(self.types[type_id].attrs["type_id"])
        return type_id

    def flat(self, type_id: int) -> dict[str, tuple[int, int]]:
        """Member name -> (bit offset, bitfield size), anonymous members flattened."""
        out: dict[str, tuple[int, int]] = {}
        for name, member_type, bits, bitfield in self.types[type_id].members:
            inner = self.strip(member_type)
            if name != "(anon)":
                out.setdefault(name, (bits, bitfield))
            elif inner and self.types[inner].kind in ("STRUCT", "UNION"):
                for sub, (sub_bits, sub_bitfield) in self.flat(inner).items():
                    out.setdefault(sub, (bits + sub_bits, sub_bitfield))
        return out

    def unique(self, name: str) -> int:
        (type_id,) = self.by_name[name]
        return type_id

    def offset(self, dotted: str) -> int:
        struct_name, member = dotted.split(".")
        bits, bitfield = self.flat(self.unique(struct_name))[member]
        assert bitfield == 0 and bits % 8 == 0
        return bits // 8


@pytest.fixture(scope="module")
def btf() -> Btf:
    return Btf.load()


@pytest.fixture(scope="module")
def ref() -> Reference:
    dump = subprocess.run(["bpftool", "btf", "dump", "file", VMLINUX, "format", "raw"],
                          check=True, capture_output=True, text=True).stdout
    return Reference(dump)


@pytest.mark.root
@pytest.mark.parametrize("dotted", PROBE_OFFSETS)
def test_probe_offsets_match_bpftool(btf: Btf, ref: Reference, dotted: str) -> None:
    assert btf.offset_of(dotted) == ref.offset(dotted)


@pytest.mark.root
def test_anonymous_members_are_reached(ref: Reference) -> None:
    """mm_struct.arg_start sits in an anonymous struct: the comparison above covers that case."""
    direct = {name for name, *_ in ref.types[ref.unique("mm_struct")].members}
    assert "arg_start" not in direct


@pytest.mark.root
def test_every_unambiguous_struct_matches_bpftool(btf: Btf, ref: Reference) -> None:
    """Sizes, flattened member names and every byte offset of every struct and union."""
    checked = 0
    for name, ids in ref.by_name.items():
        if len(ids) != 1:
            continue
        flat = ref.flat(ids[0])
        assert btf.size_of(name) == int(ref.types[ids[0]].attrs["size"]), name
        assert btf.member_names(name) == list(flat), name
        for member, (bits, bitfield) in flat.items():
            if bitfield or bits % 8:
                with pytest.raises(BtfError, match="bitfield"):
                    btf.offset_of(f"{name}.{member}")
            else:
                assert btf.offset_of(f"{name}.{member}") == bits // 8, f"{name}.{member}"
            checked += 1
    assert checked > 50_000


@pytest.mark.root
def test_last_type_of_every_kind_is_found(btf: Btf, ref: Reference) -> None:
    """A wrong record size for any kind would shift every type after it."""
    last: dict[str, str] = {}
    for rtype in ref.types.values():
        if rtype.name != "(anon)":
            last[rtype.kind] = rtype.name
    for kind, name in last.items():
        assert btf.has_type(name, kind.lower()), (kind, name)


@pytest.mark.root
def test_nested_path_adds_offsets(btf: Btf) -> None:
    pwd, dentry = btf.offset_of("fs_struct.pwd"), btf.offset_of("path.dentry")
    assert btf.offset_of("fs_struct.pwd.dentry") == pwd + dentry
    assert btf.offset_of("fs_struct.root.mnt") == btf.offset_of("fs_struct.root") + btf.offset_of("path.mnt")


@pytest.mark.root
def test_missing_member_names_struct_and_member(btf: Btf) -> None:
    with pytest.raises(BtfError, match=r"struct task_struct has no member 'real_parnt'.*real_parent"):
        btf.offset_of("task_struct.real_parnt")


@pytest.mark.root
def test_pointer_is_not_followed(btf: Btf) -> None:
    with pytest.raises(BtfError, match=r"task_struct\.real_parent is a ptr"):
        btf.offset_of("task_struct.real_parent.pid")


@pytest.mark.root
def test_missing_struct(btf: Btf) -> None:
    with pytest.raises(BtfError, match="no struct or union named 'no_such_struct'"):
        btf.offset_of("no_such_struct.x")
    assert not btf.has_type("no_such_struct")


@pytest.mark.root
def test_truncated_and_garbage_files_raise_btf_error(tmp_path: Path) -> None:
    data = Path(VMLINUX).read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "header only": data[:24],
        "garbage": bytes(range(256)) * 64,
        "empty": b"",
    }
    for label, content in cases.items():
        path = tmp_path / label.replace(" ", "_")
        path.write_bytes(content)
        with pytest.raises(BtfError):
            Btf.load(str(path))
    with pytest.raises(BtfError, match="no BTF at"):
        Btf.load(str(tmp_path / "absent"))


@pytest.mark.root
def test_load_is_fast() -> None:
    start = time.perf_counter()
    Btf.load()
    assert time.perf_counter() - start < 1.0
