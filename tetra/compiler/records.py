"""Record arguments: a few fields of a kernel struct, copied into the event as they are.

Tetragon reports ``bpf_attr``, ``perf_event``, ``bpf_map``, ``user_namespace``,
``module`` and ``load_info`` arguments as small objects (program type and name,
map sizes, a module's name...). tetra collects each as one length-prefixed
argument holding the listed fields back to back::

    u32 length | field 0 bytes | field 1 bytes | ...      (struct format: RECORDS[type].layout)

Each field is read at the offset BTF gives for its member path on the running
kernel (never from headers), so a kernel without the struct or member refuses
the argument with the reason. A field names either bytes inside the struct
(``copy``) or a pointer to a NUL-terminated string (``kernel_string``,
``user_string``), copied into a fixed room. The decoder
(tetra/decode/records.py) renders the fields as Tetragon's JSON.
"""

import struct
from dataclasses import dataclass
from enum import Enum

from tetra.errors import KernelError
from tetra.kernel.btf import Btf


class Source(Enum):
    COPY = "copy"  # the bytes at the member
    KERNEL_STRING = "kernel_string"  # the member is a pointer to a kernel string
    USER_STRING = "user_string"  # the member is a pointer to a string in the calling process


@dataclass(frozen=True)
class RecordField:
    name: str  # key the decoder reads it by
    member: str  # BTF member path inside the record's struct
    fmt: str  # struct format of its bytes in the record: "I", "Q", "B", "16s"
    source: Source = Source.COPY

    @property
    def size(self) -> int:
        return struct.calcsize("<" + self.fmt)


@dataclass(frozen=True)
class Record:
    struct: str  # the kernel struct the argument points to
    fields: tuple[RecordField, ...]
    needs: str  # the kernel feature that provides the struct, for the refusal message

    @property
    def layout(self) -> struct.Struct:
        return struct.Struct("<" + "".join(f.fmt for f in self.fields))

    def offsets(self, btf: Btf | None) -> tuple[int, ...]:
        """Each field's byte offset on this kernel; KernelError names a missing member."""
        if btf is None:
            raise KernelError(f"a {self.struct} argument needs the kernel's BTF (/sys/kernel/btf/vmlinux)")
        try:
            return tuple(btf.offset_of(f"{self.struct}.{f.member}") for f in self.fields)
        except Exception as err:  # BtfError: the struct or a member is not in this kernel
            raise KernelError(f"a {self.struct} argument needs struct {self.struct} ({self.needs}), "
                              f"which this kernel's BTF cannot give: {err}") from None


_NAME = 56  # MODULE_NAME_LEN on 64-bit kernels
RECORDS: dict[str, Record] = {
    "bpf_attr": Record("bpf_attr", (  # BPF_PROG_LOAD's part of the union
        RecordField("prog_type", "prog_type", "I"),
        RecordField("insn_cnt", "insn_cnt", "I"),
        RecordField("prog_name", "prog_name", "16s"),
    ), "CONFIG_BPF_SYSCALL"),
    "bpf_map": Record("bpf_map", (
        RecordField("map_type", "map_type", "I"),
        RecordField("key_size", "key_size", "I"),
        RecordField("value_size", "value_size", "I"),
        RecordField("max_entries", "max_entries", "I"),
        RecordField("name", "name", "16s"),
    ), "CONFIG_BPF_SYSCALL"),
    "perf_event": Record("perf_event", (
        RecordField("type", "attr.type", "I"),
        RecordField("config", "attr.config", "Q"),
        RecordField("probe_offset", "attr.probe_offset", "Q"),
        RecordField("kprobe_func", "attr.kprobe_func", "64s", Source.USER_STRING),
    ), "CONFIG_PERF_EVENTS"),
    "user_namespace": Record("user_namespace", (
        RecordField("level", "level", "i"),
        RecordField("uid", "owner", "I"),
        RecordField("gid", "group", "I"),
        RecordField("inum", "ns.inum", "I"),
    ), "CONFIG_USER_NS"),
    "module": Record("module", (
        RecordField("name", "name", f"{_NAME}s"),
        RecordField("taints", "taints", "Q"),
    ), "CONFIG_MODULES"),
    "load_info": Record("load_info", (
        RecordField("name", "name", f"{_NAME}s", Source.KERNEL_STRING),
        RecordField("sig_ok", "sig_ok", "B"),
    ), "CONFIG_MODULES with CONFIG_MODULE_SIG"),
}


def record_c(record: Record, offsets: tuple[int, ...], slot: int, base: str) -> str:
    """The C statements that collect one record argument: integers formatted here, the base an
    expression the planner built (never policy text)."""
    lines = [f"{{ char *at = tetra_slot_at(g); __u32 n = 0; const void *b = (const void *)({base});"]
    for f, offset in zip(record.fields, offsets):
        if f.source is Source.COPY:
            lines.append(f"  n = tetra_rec_copy(at, n, b, {int(offset)}, {f.size});")
        else:
            user = int(f.source is Source.USER_STRING)
            lines.append(f"  n = tetra_rec_str(at, n, b, {int(offset)}, {f.size}, {user});")
    lines.append(f"  tetra_close_field(g, {int(slot)}, at, n, b ? 0 : TETRA_ARG_ERROR); }}")
    return "\n    ".join(lines)


@dataclass(frozen=True)
class IovIter:
    """Where an ``iov_iter`` keeps its first segment on this kernel: Tetragon reports the bytes of an
    iov_iter argument, which tetra reads from the user buffer (ITER_UBUF) or the first iovec
    (ITER_IOVEC); other kinds (kernel or page vectors) are reported empty."""

    type_offset: int  # u8 iter_type
    count_offset: int  # size_t count
    pointer_offset: int  # the union of ubuf and the iovec array
    ubuf: int  # enum iter_type values; -1 where the kernel has no ITER_UBUF
    iovec: int

    @classmethod
    def of(cls, btf: Btf | None) -> "IovIter":
        if btf is None:
            raise KernelError("an iov_iter argument needs the kernel's BTF (/sys/kernel/btf/vmlinux)")
        try:
            members = btf.member_names("iov_iter")
            pointer = "__iov" if "__iov" in members else "iov"  # renamed in 6.4
            ubuf = btf.enum_value("ITER_UBUF") if "ubuf" in members else -1
            return cls(btf.offset_of("iov_iter.iter_type"), btf.offset_of("iov_iter.count"),
                       btf.offset_of(f"iov_iter.{pointer}"), ubuf, btf.enum_value("ITER_IOVEC"))
        except Exception as err:  # BtfError: an older layout (iter_type arrived in 5.14)
            raise KernelError(f"an iov_iter argument needs struct iov_iter with iter_type (Linux 5.14 or later), "
                              f"which this kernel's BTF cannot give: {err}") from None
