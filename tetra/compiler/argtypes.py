"""Argument types: how each Tetragon type is read in the kernel and decoded after.

A type says which ``tetra_put_*`` call collects it (generic.h) and how its
bytes in the event blob are laid out (``encoding``), which the decoder
(tetra/decode/generic.py) follows. Types tetra cannot read yet are named in
UNSUPPORTED with the reason, so a policy using one fails to compile with that
reason instead of producing a wrong value.
"""

from dataclasses import dataclass
from enum import Enum


class Encoding(Enum):
    """The layout of one argument in the event blob."""

    INT = "int"  # 8 bytes
    BYTES = "bytes"  # u32 length and flags, then the bytes
    PATH = "path"  # u32 length and flags, then path components leaf first
    SOCKADDR = "sockaddr"  # struct tetra_sockaddr
    SOCK = "sock"  # struct tetra_sock
    SKB = "skb"  # struct tetra_skb
    CRED = "cred"  # struct tetra_cred_arg
    RECORD = "record"  # u32 length and flags, then fields of a kernel struct (tetra/compiler/records.py)


class Memory(Enum):
    """Where a pointer argument points."""

    USER = "user"
    KERNEL = "kernel"


@dataclass(frozen=True)
class ArgType:
    """How to collect one Tetragon argument type."""

    name: str
    encoding: Encoding
    cast: str = "__s64"  # C type the raw 64-bit value is narrowed to (integers)
    unsigned: bool = False
    json_key: str = "int_arg"  # Tetragon's argument object key


def _int(name: str, cast: str, json_key: str, unsigned: bool = False) -> ArgType:
    return ArgType(name, Encoding.INT, cast, unsigned, json_key)


TYPES: dict[str, ArgType] = {t.name: t for t in (
    _int("auto", "__s64", "long_arg"),
    _int("int", "__s32", "int_arg"),
    _int("sint32", "__s32", "int_arg"),
    _int("int32", "__s32", "int_arg"),
    _int("uint32", "__u32", "uint_arg", unsigned=True),
    _int("sint8", "__s8", "int_arg"),
    _int("int8", "__s8", "int_arg"),
    _int("uint8", "__u8", "uint_arg", unsigned=True),
    _int("sint16", "__s16", "int_arg"),
    _int("int16", "__s16", "int_arg"),
    _int("uint16", "__u16", "uint_arg", unsigned=True),
    _int("long", "__s64", "long_arg"),
    _int("sint64", "__s64", "long_arg"),
    _int("int64", "__s64", "long_arg"),
    _int("ulong", "__u64", "size_arg", unsigned=True),
    _int("uint64", "__u64", "size_arg", unsigned=True),
    _int("size_t", "__u64", "size_arg", unsigned=True),
    _int("capability", "__s32", "capability_arg"),
    _int("syscall64", "__s64", "syscall_id"),
    ArgType("string", Encoding.BYTES, json_key="string_arg"),
    ArgType("filename", Encoding.BYTES, json_key="string_arg"),
    ArgType("char_buf", Encoding.BYTES, json_key="bytes_arg"),
    ArgType("const_buf", Encoding.BYTES, json_key="bytes_arg"),
    ArgType("fd", Encoding.PATH, json_key="file_arg"),
    ArgType("file", Encoding.PATH, json_key="file_arg"),
    ArgType("path", Encoding.PATH, json_key="path_arg"),
    ArgType("linux_binprm", Encoding.PATH, json_key="linux_binprm_arg"),
    ArgType("dentry", Encoding.PATH, json_key="path_arg"),
    ArgType("sockaddr", Encoding.SOCKADDR, json_key="sockaddr_arg"),
    ArgType("sock", Encoding.SOCK, json_key="sock_arg"),
    ArgType("socket", Encoding.SOCK, json_key="sock_arg"),
    ArgType("skb", Encoding.SKB, json_key="skb_arg"),
    ArgType("cred", Encoding.CRED, json_key="process_credentials_arg"),
    ArgType("net_device", Encoding.BYTES, json_key="string_arg"),  # its name, as Tetragon reports it
    ArgType("kiocb", Encoding.PATH, json_key="file_arg"),  # the path of its file (ki_filp), as Tetragon's
    ArgType("iov_iter", Encoding.BYTES, json_key="bytes_arg"),  # its first segment's bytes (records.IovIter)
    ArgType("bpf_attr", Encoding.RECORD, json_key="bpf_attr_arg"),
    ArgType("perf_event", Encoding.RECORD, json_key="perf_event_arg"),
    ArgType("bpf_map", Encoding.RECORD, json_key="bpf_map_arg"),
    ArgType("user_namespace", Encoding.RECORD, json_key="user_ns_arg"),
    ArgType("module", Encoding.RECORD, json_key="module_arg"),
    ArgType("load_info", Encoding.RECORD, json_key="module_arg"),
)}
TYPES["unsigned long"] = TYPES["ulong"]  # Tetragon's spelling too

# Tetragon's "nop": an argument declared only to skip a position; it is neither read nor reported.
NOP = "nop"

# Tetragon types tetra does not read yet, and why: a policy using one is refused.
UNSUPPORTED: dict[str, str] = {
    name: "not supported by tetra yet"
    for name in ("char_iovec", "sockaddr_un", "kernel_cap_t", "cap_inheritable", "cap_permitted",
                 "cap_effective", "data_loc", "bpf_cmd", "bpf_prog")
}

# Types whose pointer the compiler may read from user memory (syscall arguments,
# uprobes); on kernel functions the same types point into kernel memory.
POINTER_TYPES = {"string", "filename", "char_buf", "const_buf", "sockaddr"}
# Types that only make sense on a kernel pointer.
KERNEL_ONLY = {"file", "path", "linux_binprm", "dentry", "sock", "socket", "skb", "cred", "net_device", "kiocb",
               "iov_iter", "bpf_attr", "perf_event", "bpf_map", "user_namespace", "module", "load_info"}
