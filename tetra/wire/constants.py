"""Every number the probes and tetra must agree on, defined once on the Python side.

The C side keeps its ``#define``s in the headers (so that a probe compiles alone,
and ``tetra compile --emit-c`` shows what the kernel runs); this module is their
twin, named as in C without the ``TETRA_`` prefix (``TETRA_OP_EXEC`` is
``Op.EXEC``, ``TETRA_KEY_MAX`` is ``KEY_MAX``). tests/unit/test_wire_constants.py
reads the headers and fails on any value that differs, any define without a
twin here and any constant here without a define, unless its allow-list says
why. Python code imports these instead of repeating a literal or a name::

    probes/lib/wire.h        Op, STAT_*, ExecFlags, PATH/ARGS/CGROUP/ENV_MAX, THROTTLE_*, LOADER_*, Action, GEN_*, ARG_*
    probes/lib/execve.h      BINARY_MAX, BIN_*
    probes/lib/emit.h        RINGBUF_PAGES (the default; the agent passes its own as -D)
    probes/generic/generic.h MAX_ARGS, STR_MAX, KEY_MAX, POSTFIX_MAX, VALUE_ENTRIES, MAX_HOOKS, REC_MAX

An action has three spellings, all in :class:`Action`: its value on the wire,
its word in a policy (``Sigkill``) and Tetragon's name in events
(``KPROBE_ACTION_SIGKILL``).
"""

import enum

# -- probes/lib/wire.h ------------------------------------------------------------


class Op(enum.IntEnum):
    """Opcodes, the first byte of every record (TETRA_OP_*)."""

    EXEC = 1
    CLONE = 2
    EXIT = 3
    GENERIC = 4
    THROTTLE = 5  # --cgroup-rate: a CPU began throttling a cgroup's process events
    LOADER = 6  # an executable file mapped (spec.loader)


OP_MAX = 7
# Per-opcode counters of the `tetra_stats` per-CPU array: slot = opcode * 2 + kind.
STAT_SENT = 0
STAT_LOST = 1
STAT_SLOTS = OP_MAX * 2


class ExecFlags(enum.IntFlag):
    """exec_flags of an exec record (TETRA_EXEC_*)."""

    TRUNC_ARGS = 0x01
    ARGS_ERROR = 0x02
    TRUNC_CWD = 0x04
    CWD_ERROR = 0x08
    TRUNC_FILENAME = 0x10
    FILENAME_UNRESOLVED = 0x20
    CRED = 0x40  # the record carries the process's credentials (--enable-process-cred)
    NS = 0x80  # the record carries the process's namespaces (--enable-process-ns)
    ENV = 0x100  # the record carries the process's environment (--enable-process-environment-variables)
    TRUNC_ENV = 0x200
    ENV_ERROR = 0x400


PATH_MAX = 4096  # bytes of an exec's filename and of its cwd
ARGS_MAX = 16384  # bytes of an exec's argv
CGROUP_MAX = 256  # bytes of an exec's cgroup leaf name
ENV_MAX = 4096  # bytes of an exec's environment (--enable-process-environment-variables)


class Action(enum.IntEnum):
    """What a policy hook did (TETRA_ACTION_*), with its word in a policy's
    matchActions and Tetragon's KprobeAction name in events."""

    word: str
    tetragon: str

    def __new__(cls, value: int, word: str, tetragon: str) -> "Action":
        member = int.__new__(cls, value)
        member._value_ = value
        member.word = word
        member.tetragon = tetragon
        return member

    POST = 0, "Post", "KPROBE_ACTION_POST"
    NOPOST = 1, "NoPost", "KPROBE_ACTION_NOPOST"
    SIGKILL = 2, "Sigkill", "KPROBE_ACTION_SIGKILL"
    SIGNAL = 3, "Signal", "KPROBE_ACTION_SIGNAL"
    OVERRIDE = 4, "Override", "KPROBE_ACTION_OVERRIDE"
    NOTIFY_ENFORCER = 5, "NotifyEnforcer", "KPROBE_ACTION_NOTIFYENFORCER"
    # the agent acts on these when their event arrives (tetra/agent/user_actions.py); the kernel only posts
    GETURL = 6, "GetUrl", "KPROBE_ACTION_GETURL"
    DNSLOOKUP = 7, "DnsLookup", "KPROBE_ACTION_DNSLOOKUP"

    @property
    def c_name(self) -> str:
        """The define the generated C names it by (``TETRA_ACTION_SIGKILL``)."""
        return f"TETRA_ACTION_{self.name}"


# The actions the agent performs in user space when their event arrives: the kernel only posts the event.
AGENT_ACTIONS = frozenset({Action.GETURL, Action.DNSLOOKUP})
ACTIONS_BY_WORD: dict[str, Action] = {action.word: action for action in Action}
# Wire value -> Tetragon's name, for building events (a plain dict: one lookup per event).
TETRAGON_ACTIONS: dict[int, str] = {int(action): action.tetragon for action in Action}
TETRAGON_UNKNOWN_ACTION = "KPROBE_ACTION_UNKNOWN"

# header flags of a throttle record (--cgroup-rate)
THROTTLE_START = 0x1  # this CPU began throttling the cgroup: the record carries its name
THROTTLE_EXEC = 0x2  # an exec of the record's pid was dropped: the image the agent knows for it ended
LOADER_TRUNC_PATH = 0x1  # loader_flags: the mapped file's path is not whole

# gen_flags of a policy event
GEN_RETURN = 0x01  # ret holds the hook's return value
GEN_MONITOR = 0x02  # monitoring mode: the action was not taken
GEN_PROTECTED = 0x04  # the action was withheld: PID 1 or the agent

# The u32 before each string, buffer or path argument: length and flags.
ARG_TRUNCATED = 0x80000000
ARG_ERROR = 0x40000000
ARG_LEN_MASK = 0x00FFFFFF

# -- probes/lib/execve.h: the binary of every live process, for matchBinaries -------

BINARY_MAX = 256  # bytes of a binary path the map keeps, the NUL included
BIN_TAIL_LOST = 0x1  # longer than BINARY_MAX - 1: the end is missing
BIN_HEAD_LOST = 0x2  # deeper than the path walk: the start is missing

# -- probes/lib/emit.h --------------------------------------------------------------

RINGBUF_PAGES = 2048  # pages of the ring buffer, unless the agent is told otherwise

# -- probes/generic/generic.h: what one policy hook can hold ------------------------

MAX_ARGS = 6  # argument slots of one hook
STR_MAX = 4096  # bytes read of a string, buffer or path argument
KEY_MAX = 252  # bytes of a string compared for Equal and Prefix (an LPM key holds 256 with the id)
POSTFIX_MAX = 128  # bytes of a string compared for Postfix
VALUE_ENTRIES = 4096  # entries of each map of policy values (str_eq, str_prefix, ..., pid_set)
MAX_HOOKS = 64  # hooks of one policy (hook_stats has two slots each)
REC_MAX = 256  # bytes of one record argument (bpf_attr, bpf_map, ...: tetra/compiler/records.py)
