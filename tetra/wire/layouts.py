"""Record layouts written by the probes, mirrored from probes/lib/wire.h.

Each layout is a list of (field, struct format code) with explicit padding, so
``struct.Struct("<...")`` decodes it without guessing alignment;
tests/unit/test_wire_layouts.py compiles wire.h with gcc and checks every
offset and size here against the C compiler's. The constants of the same
headers (opcodes, flags, limits) are in tetra/wire/constants.py.
"""

import struct
from dataclasses import dataclass, field

HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("opcode", "B"),
    ("flags", "B"),
    ("_pad", "H"),
    ("size", "I"),
    ("ktime", "Q"),
    ("pid", "I"),
    ("tid", "I"),
)


@dataclass(frozen=True)
class Layout:
    """One C struct: its name in wire.h and its fields in order."""

    c_name: str
    fields: tuple[tuple[str, str], ...]
    codec: struct.Struct = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fmt = "<" + "".join(code for _, code in self.fields)
        object.__setattr__(self, "codec", struct.Struct(fmt))

    @property
    def size(self) -> int:
        return self.codec.size

    def offsets(self) -> dict[str, int]:
        """Byte offset of every field, as the C compiler must place it."""
        result: dict[str, int] = {}
        at = 0
        for name, code in self.fields:
            result[name] = at
            at += struct.calcsize("<" + code)
        return result


HEADER = Layout("tetra_header", HEADER_FIELDS)
EXEC = Layout(
    "tetra_exec",
    HEADER_FIELDS
    + (
        ("ppid", "I"),
        ("uid", "I"),
        ("gid", "I"),
        ("auid", "I"),
        ("cgroup_id", "Q"),
        ("filename_len", "H"),
        ("cwd_len", "H"),
        ("args_len", "H"),
        ("cgroup_len", "H"),
        ("exec_flags", "I"),
        ("_pad2", "I"),
    ),
)
CLONE = Layout("tetra_clone", HEADER_FIELDS + (("ppid", "I"), ("_pad2", "I"), ("cgroup_id", "Q")))
EXIT = Layout("tetra_exit", HEADER_FIELDS + (("exit_code", "I"), ("_pad2", "I")))
THROTTLE = Layout("tetra_throttle", HEADER_FIELDS + (("cgroup_id", "Q"), ("cgroup_len", "H"), ("_pad2", "H"),
                                                     ("_pad3", "I")))

GENERIC = Layout(
    "tetra_generic",
    HEADER_FIELDS
    + (
        ("policy_id", "I"),
        ("hook_id", "I"),
        ("action", "I"),
        ("kernel_stack_id", "i"),
        ("user_stack_id", "i"),
        ("args_len", "H"),
        ("selector", "B"),
        ("gen_flags", "B"),
        ("ret", "q"),
    ),
)
LOADER = Layout("tetra_loader", HEADER_FIELDS + (("ino", "Q"), ("path_len", "I"), ("loader_flags", "I")))
SOCKADDR = Layout("tetra_sockaddr", (("family", "H"), ("port", "H"), ("_pad2", "I"), ("addr", "16s")))
TUPLE_FIELDS: tuple[tuple[str, str], ...] = (
    ("family", "H"), ("sport", "H"), ("dport", "H"), ("protocol", "B"), ("state", "B"),
    ("saddr", "16s"), ("daddr", "16s"),
)
TUPLE = Layout("tetra_tuple", TUPLE_FIELDS)
SOCK = Layout("tetra_sock", TUPLE_FIELDS + (("type", "H"), ("_pad", "H"), ("_pad2", "I")))
SKB = Layout("tetra_skb", TUPLE_FIELDS + (("len", "I"), ("priority", "I"), ("mark", "I"), ("_pad", "I")))
CRED_FIELDS: tuple[tuple[str, str], ...] = (
    ("uid", "I"), ("gid", "I"), ("suid", "I"), ("sgid", "I"), ("euid", "I"), ("egid", "I"),
    ("fsuid", "I"), ("fsgid", "I"), ("securebits", "I"), ("user_ns", "I"),
    ("cap_permitted", "Q"), ("cap_effective", "Q"), ("cap_inheritable", "Q"),
)
CRED = Layout("tetra_cred", CRED_FIELDS)
# A cred argument of a policy hook: the cred and its user namespace's level and owner.
CRED_ARG = Layout("tetra_cred_arg", CRED_FIELDS + (
    ("userns_level", "i"), ("userns_owner", "I"), ("userns_group", "I"), ("_pad", "I"),
))
# The process context after an exec record (ExecFlags.CRED, ExecFlags.NS).
EXEC_CRED = Layout("tetra_exec_cred", CRED_FIELDS + (
    ("userns_level", "i"), ("userns_owner", "I"), ("userns_group", "I"), ("exe_nlink", "I"),
    ("exe_ino", "Q"), ("exe_uid", "I"), ("exe_gid", "I"), ("exe_mode", "I"), ("secureexec", "I"),
))
NS_NAMES: tuple[str, ...] = (
    "uts", "ipc", "mnt", "pid", "pid_for_children", "net", "time", "time_for_children", "cgroup", "user",
)  # Tetragon's Namespaces fields, in the order of struct tetra_ns
NS = Layout("tetra_ns", tuple((name, "I") for name in NS_NAMES) + (("pid_nr", "I"),))
# The sizes of the environment at the end of an exec record (ExecFlags.ENV).
EXEC_ENV = Layout("tetra_exec_env", (("env_len", "I"), ("env_size", "I")))

LAYOUTS: tuple[Layout, ...] = (HEADER, EXEC, CLONE, EXIT, THROTTLE, GENERIC, LOADER, SOCKADDR, TUPLE, SOCK, SKB, CRED,
                               CRED_ARG, EXEC_CRED, NS, EXEC_ENV)
