"""One-line renderings of events, as ``tetra getevents -o compact`` prints them.

The format is Tetragon's current encoder (``pkg/encoder``), field for field and
space for space::

    <emoji> <what, padded to 7> <namespace/pod, or the node> <binary> <details> [<caps>]
    🚀 process default/xwing /usr/bin/curl https://ebpf.io
    💥 exit    default/xwing /usr/bin/curl https://ebpf.io 60
    🔌 connect default/xwing /usr/bin/curl tcp 10.244.0.6:34965 -> 104.198.14.52:80
    ☎  syscall my-node /usr/bin/cat openat(int dfd=?, const char * filename=?, int flags=?, umode_t mode=?)

Without a pod the node name stands where ``namespace/pod`` would. The fields
are joined with one space each even when one is empty, as Go's ``Sprintf``
does. A field whoever runs the traced program chooses (binary, arguments, file
paths, string arguments, node name, uprobe and usdt names, cgroup) is printed
as is unless it holds a space or a character that is not printable: then it is
quoted and escaped as Go's ``strconv.Quote`` does (``"/tmp/my file"``,
``"x\\n\\x1b[2J"``). The arguments are a list separated by spaces (an argument
with a space already quoted in it), so they are quoted only for a character
that is not printable. Other fields (kernel function names, Kubernetes names,
enum names, addresses) cannot hold such characters unless something else is
wrong; they are escaped (``\\xNN``) without quotes.

Two tables dispatch the work: one by event type, one by kprobe function name
(with the arch prefix such as ``__x64_`` cut off). A new rendering is one new
entry, not another branch.

Where tetra differs from Tetragon, on purpose (docs/compact-output.md says why):

* a policy event without a rendering of its own (``❓ syscall``, tracepoint,
  LSM, uprobe, usdt) shows its first arguments and its policy after
  Tetragon's fields;
* a policy event whose action is not a plain Post says so: ``[Sigkill]`` when it
  was done, ``[monitor: Sigkill not done]`` in monitor mode, and
  ``[Sigkill withheld: protected process]``: never "killed" when nothing was;
* ``rate_limit_info``, which Tetragon does not render, is a plain line;
* the capability trailer is shown for a process whose effective set holds
  CAP_SYS_ADMIN (Tetragon tests the set's indices, not its values), and in
  colour only then (Tetragon pads every coloured line, its empty trailer being
  colour codes);
* a ``raw_syscalls/sys_enter`` id captured as ``uint64`` is named too
  (Tetragon names only ``int64`` and ``syscall64``); openat's path is its first
  string argument, wherever the policy put it.

Colours are ANSI SGR codes, exactly the bytes Tetragon's colour library emits:
the event word blue, the pod or node green, the binary magenta, details cyan,
the exit status red; an empty field gets none.
"""

import base64
import re
from collections.abc import Callable
from typing import Any

from tetra.kernel.syscall_abi import MACHINE_ABI, syscall_name
from tetra.kernel.syscall_table import ARGUMENTS
from tetra.wire.constants import Action
from tetra.wire.events import (PROCESS_EXEC, PROCESS_EXIT, PROCESS_KPROBE, PROCESS_LOADER, PROCESS_LSM,
                               PROCESS_THROTTLE, PROCESS_TRACEPOINT, PROCESS_UPROBE, PROCESS_USDT, RATE_LIMIT_INFO)

Json = dict[str, Any]

RED, GREEN, YELLOW, BLUE, MAGENTA, CYAN = "31", "32", "33", "34", "35", "36"

_CAPS_COLUMN = 120  # Tetragon right-aligns the capability trailer up to here
_GENERIC_ARGS = 4  # arguments a line without a rendering of its own shows
_ACTION_WORDS = {action.tetragon: action.word for action in Action}

_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z")
_ARCH_PREFIX = re.compile(r"__(?:x64|ia32|arm64|s390x|riscv)_")

_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
# Line and paragraph separators, bidi embeddings, overrides and isolates.
_UNICODE_CONTROLS = (0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_ESCAPES.update({c: f"\\u{c:04x}" for c in _UNICODE_CONTROLS})

# strconv.Quote's escapes with a name of their own; other controls are \xNN, \uNNNN or \UNNNNNNNN.
_GO_ESCAPES = {0x07: "\\a", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x0B: "\\v",
               ord('"'): '\\"', ord("\\"): "\\\\"}

# setns(2) nstype flags, as Tetragon names them.
_NAMESPACES = {
    0: "any",
    0x02000000: "cgroup",
    0x08000000: "ipc",
    0x40000000: "net",
    0x00020000: "mnt",
    0x20000000: "pid",
    0x00000080: "time",
    0x10000000: "user",
    0x04000000: "uts",
}


class _Paint:
    """Wraps text in an ANSI colour, or leaves it alone when colour is off."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __call__(self, colour: str, text: str) -> str:
        return f"\x1b[{colour}m{text}\x1b[0m" if self.on and text else text


Render = Callable[[Json, _Paint, str], str | None]


def render_compact(event: Json, color: bool = False, timestamps: bool = False) -> str | None:
    """Render ``event`` as one line; ``None`` when the type is unknown or has no process.

    ``timestamps`` prefixes the event's ``time``, with nanoseconds always
    written out as Tetragon does.
    """
    paint = _Paint(color)
    node = str(event.get("node_name") or "")
    for kind, body in event.items():
        render = _EVENTS.get(kind)
        if render is not None and isinstance(body, dict):
            line = render(body, paint, node)
            break
    else:
        return None
    if line is None:
        return None
    if timestamps and event.get("time"):
        line = f"{_timestamp(str(event['time']))} {line}"
    return line


def _timestamp(value: str) -> str:
    """Pad the fraction to nine digits; protojson trims it to 0, 3 or 6."""
    m = _TIME.fullmatch(value)
    if m is None:
        return _clean(value)
    return f"{m[1]}.{(m[2] or '').ljust(9, '0')}Z"


def _clean(value: object) -> str:
    """``value`` as text that cannot break the line or steer the terminal."""
    return str(value).translate(_ESCAPES)


def _user(value: object) -> str:
    """A field the traced program's owner chooses: quoted when it holds a space or a character
    that is not printable, so it can neither split into two fields nor forge a line."""
    text = str(value)
    return text if text.isprintable() and " " not in text else _go_quote(text)


def _user_list(value: object) -> str:
    """The arguments: a list separated by spaces, quoted only for a character that is not printable."""
    text = str(value)
    return text if text.isprintable() else _go_quote(text)


def _go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: the form Tetragon prints an unsafe field in."""
    out = []
    for char in text:
        code = ord(char)
        if code in _GO_ESCAPES:
            out.append(_GO_ESCAPES[code])
        elif char.isprintable():
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _head(paint: _Paint, emoji: str, word: str) -> str:
    return paint(BLUE, f"{emoji} {word:<7}")


def _line(paint: _Paint, head: str, process: Json, node: str, *fields: str, extras: tuple[str, ...] = ()) -> str:
    """Tetragon's fields, each after one space even when empty; then tetra's own ``extras``,
    those that are not empty; then Tetragon's capability trailer when there is one."""
    pod = process.get("pod")
    if isinstance(pod, dict):
        source = _clean(f"{pod.get('namespace', '')}/{pod.get('name', '')}")
    else:
        source = _user(node)
    binary = paint(MAGENTA, _user(process.get("binary", "")))
    line = " ".join((head, paint(GREEN, source), binary, *fields, *(extra for extra in extras if extra)))
    caps = _caps(process)
    if not caps:
        return line
    # Go's len() counts bytes, so the padding does too.
    pad = max(0, _CAPS_COLUMN - len(line.encode()))
    return f"{line} {paint(MAGENTA, caps):>{pad}}"


def _caps(process: Json) -> str:
    """Tetragon flags processes holding CAP_SYS_ADMIN."""
    cap = process.get("cap")
    effective = (cap.get("effective") or []) if isinstance(cap, dict) else []
    return "🛑 CAP_SYS_ADMIN" if "CAP_SYS_ADMIN" in effective else ""


# -- event types -----------------------------------------------------------


def _exec(body: Json, paint: _Paint, node: str) -> str | None:
    process = body.get("process")
    if not isinstance(process, dict):
        return None
    args = paint(CYAN, _user_list(process.get("arguments", "")))
    return _line(paint, _head(paint, "🚀", "process"), process, node, args)


def _exit(body: Json, paint: _Paint, node: str) -> str | None:
    process = body.get("process")
    if not isinstance(process, dict):
        return None
    args = paint(CYAN, _user_list(process.get("arguments", "")))
    status = paint(RED, _clean(body.get("signal") or body.get("status", 0)))
    return _line(paint, _head(paint, "💥", "exit"), process, node, args, status)


def _kprobe(body: Json, paint: _Paint, node: str) -> str | None:
    process = body.get("process")
    if not isinstance(process, dict):
        return None
    function = str(body.get("function_name", ""))
    args = _args(body)
    render = _KPROBES.get(_ARCH_PREFIX.sub("", function, count=1))
    if render is None:
        return _generic(body, paint, process, node, _head(paint, "❓", "syscall"), _clean(function))
    emoji, word, details = render(args)
    return _line(paint, _head(paint, emoji, word), process, node, *(paint(CYAN, d) for d in details),
                 extras=(_action(body, paint),))


def _args(body: Json) -> list[Json]:
    return [a if isinstance(a, dict) else {} for a in body.get("args") or []]


def _tracepoint(body: Json, paint: _Paint, node: str) -> str | None:
    process = body.get("process")
    if not isinstance(process, dict):
        return None
    subsys, event = _clean(body.get("subsys", "")), _clean(body.get("event", ""))
    if (subsys, event) == ("raw_syscalls", "sys_enter"):
        call = paint(CYAN, _clean(_raw_syscall(_args(body))))
        return _line(paint, paint(BLUE, "☎  syscall"), process, node, call, extras=(_action(body, paint),))
    return _generic(body, paint, process, node, _head(paint, "⁉️", "tracepoint"), subsys, event)


def _raw_syscall(args: list[Json]) -> str:
    """raw_syscalls/sys_enter's id as the call it names, with its arguments' types and names and
    the values the policy captured after the id (``?`` for the others), as Tetragon writes it."""
    abi, number = _syscall_id(args[0] if args else {})
    name = syscall_name(abi, number) if number is not None else ""
    if not name:
        return "unknown"
    if abi != MACHINE_ABI:
        return f"{abi}/{name}"  # another ABI's arguments are not in the table (nor in Tetragon's)
    params = ARGUMENTS.get(name)
    if params is None:
        return name
    values = (_param(kind, pname, args[i] if i < len(args) else {}) for i, (kind, pname) in enumerate(params, 1))
    return f"{name}({', '.join(values)})"


def _syscall_id(arg: Json) -> tuple[str, int | None]:
    """The ABI and number of a syscall id argument (``syscall64``, or an ``int64``/``uint64``)."""
    value = arg.get("syscall_id")
    if isinstance(value, dict):
        return str(value.get("abi") or MACHINE_ABI), _int(value.get("id", 0))
    return MACHINE_ABI, _int(arg.get("long_arg", arg.get("size_arg")))


def _param(kind: str, name: str, arg: Json) -> str:
    value = _int(arg.get("size_arg"))
    if value is None:
        return f"{kind} {name}=?"
    if kind.endswith("*"):
        return f"{kind}{name}=0x{value:x}"
    return f"{kind} {name}={value}"


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _lsm(body: Json, paint: _Paint, node: str) -> str | None:
    process = body.get("process")
    if not isinstance(process, dict):
        return None
    return _generic(body, paint, process, node, _head(paint, "🔒", "LSM"), _clean(body.get("function_name", "")))


def _uprobe(body: Json, paint: _Paint, node: str) -> str | None:
    process = body.get("process")
    if not isinstance(process, dict):
        return None
    details = (_user(body.get("path", "")), _user(body.get("symbol", "")))
    return _generic(body, paint, process, node, _head(paint, "🕵️", "uprobe"), *details)


def _usdt(body: Json, paint: _Paint, node: str) -> str | None:
    process = body.get("process")
    if not isinstance(process, dict):
        return None
    details = (_user(body.get(k, "")) for k in ("path", "provider", "name"))
    return _generic(body, paint, process, node, _head(paint, "🕵️", "usdt"), *details)


def _generic(body: Json, paint: _Paint, process: Json, node: str, head: str, *what: str) -> str:
    """A policy event without a rendering of its own: what was hooked, its first arguments
    (the path, address or number that tells one call from another), the policy, the action."""
    args = [a for a in body.get("args") or [] if isinstance(a, dict)][:_GENERIC_ARGS]
    shown = (paint(CYAN, _arg_text(arg)) for arg in args)
    policy = body.get("policy_name")
    return _line(paint, head, process, node, *what,
                 extras=(*shown, f"(policy {_clean(policy)})" if policy else "", _action(body, paint)))


def _action(body: Json, paint: _Paint) -> str:
    """What the hook did, unless a plain Post; in monitor mode, what it did not do."""
    action = str(body.get("action", ""))
    word = _ACTION_WORDS.get(action, action)
    if not action or word == "Post":
        return ""
    if body.get("policy_mode") == "monitor":
        return paint(YELLOW, f"[monitor: {word} not done]")
    if body.get("protected_process"):
        return paint(YELLOW, f"[{word} withheld: protected process]")
    return paint(RED, f"[{word}]")


def _loader(body: Json, paint: _Paint, node: str) -> str | None:
    process = body.get("process")
    if not isinstance(process, dict):
        return None
    try:
        buildid = base64.b64decode(body.get("buildid", ""), validate=True).hex()
    except (TypeError, ValueError):
        buildid = ""
    path = paint(YELLOW, _user(body.get("path", "")))
    return _line(paint, _head(paint, "🧬", "loader"), process, node, f"{buildid} {path}" if buildid else path)


def _throttle(body: Json, paint: _Paint, node: str) -> str | None:
    kind = {"THROTTLE_START": paint(RED, "START"), "THROTTLE_STOP": paint(GREEN, "STOP ")}
    state = kind.get(str(body.get("type")), "")
    return f"{paint(RED, '🧬 throttle')} {state} {_user(body.get('cgroup', ''))}"


def _rate_limit(body: Json, paint: _Paint, node: str) -> str | None:
    dropped = _clean(body.get("number_of_dropped_process_events", 0))
    return f"{paint(RED, '🚦 rate_limit')} {dropped} events dropped"


_EVENTS: dict[str, Render] = {
    PROCESS_EXEC.key: _exec,
    PROCESS_EXIT.key: _exit,
    PROCESS_KPROBE.key: _kprobe,
    PROCESS_TRACEPOINT.key: _tracepoint,
    PROCESS_LSM.key: _lsm,
    PROCESS_UPROBE.key: _uprobe,
    PROCESS_USDT.key: _usdt,
    PROCESS_LOADER.key: _loader,
    PROCESS_THROTTLE.key: _throttle,
    RATE_LIMIT_INFO.key: _rate_limit,
}


# -- kprobe functions: args -> (emoji, word, details) --------------------------
# Details come out escaped (user fields quoted by _user); _kprobe paints them.

Rendered = tuple[str, str, tuple[str, ...]]


def _get(args: list[Json], index: int, kind: str) -> Any:
    """``args[index][kind]``, or None when the policy did not capture it."""
    return args[index].get(kind) if index < len(args) else None


def _path(args: list[Json], index: int, kind: str = "file_arg") -> str:
    """The path of a file (or path) argument, quoted as a user field; "" when not captured."""
    value = _get(args, index, kind)
    return _user(value.get("path", "")) if isinstance(value, dict) else ""


def _string(args: list[Json], index: int) -> str:
    return _user(_get(args, index, "string_arg") or "")


def _first_string(args: list[Json]) -> str:
    """The path of open(2)/openat(2): whichever argument is a string."""
    return next((_user(a["string_arg"]) for a in args if "string_arg" in a), "")


def _sock(args: list[Json]) -> str:
    sock = _get(args, 0, "sock_arg")
    return f"tcp {_clean(_flow(sock))}" if isinstance(sock, dict) else ""


def _flow(sock: Json) -> str:
    """A socket's or packet's "source -> destination"."""
    return f"{_endpoint(sock.get('saddr', ''), sock.get('sport', 0))} -> " \
           f"{_endpoint(sock.get('daddr', ''), sock.get('dport', 0))}"


def _endpoint(addr: object, port: object) -> str:
    """``addr:port``, IPv6 addresses without brackets too, as Tetragon prints them."""
    return f"{addr}:{port}"


def _arg_text(arg: Json) -> str:
    """One argument of a generic line, by its type: a path, an address, a number."""
    for key, value in arg.items():
        render = _ARG_TEXT.get(key)
        if render is not None:
            return render(value)
    return ""


def _bytes_text(value: Any) -> str:
    try:
        return f"{len(base64.b64decode(str(value), validate=True))} bytes"
    except ValueError:
        return ""


def _field(name: str) -> Callable[[Any], str]:
    return lambda value: _user(value.get(name, "")) if isinstance(value, dict) else ""


def _plain(render: Callable[[Any], str]) -> Callable[[Any], str]:
    """A rendering of a field nobody but the kernel chooses, escaped without quotes."""
    return lambda value: _clean(render(value))


_ARG_TEXT: dict[str, Callable[[Any], str]] = {
    **dict.fromkeys(("int_arg", "uint_arg", "long_arg", "size_arg"), _plain(str)),
    "string_arg": lambda value: _user(value) if value else '""',
    **dict.fromkeys(("file_arg", "path_arg", "linux_binprm_arg"), _field("path")),
    "sock_arg": _plain(lambda value: _flow(value) if isinstance(value, dict) else ""),
    "skb_arg": _plain(lambda value: _flow(value) if isinstance(value, dict) else ""),
    "sockaddr_arg": _plain(lambda value: _endpoint(value.get("addr", ""), value.get("port", 0))
                           if isinstance(value, dict) else ""),
    "capability_arg": _plain(lambda value: str(value.get("name") or value.get("value", ""))
                             if isinstance(value, dict) else ""),
    **dict.fromkeys(("bytes_arg", "truncated_bytes_arg"), _bytes_text),
}


def _io(emoji: str, word: str) -> Callable[[list[Json]], Rendered]:
    """read and write: the file, then the byte count when captured."""

    def render(args: list[Json]) -> Rendered:
        size = f"{_clean(_get(args, 2, 'size_arg') or 0)} bytes" if len(args) > 2 else ""
        return emoji, word, (_path(args, 0), size)

    return render


def _two_strings(emoji: str, word: str) -> Callable[[list[Json]], Rendered]:
    """mount and pivot_root: source and target."""

    def render(args: list[Json]) -> Rendered:
        return emoji, word, (_string(args, 0), _string(args, 1))

    return render


def _file_permission(args: list[Json]) -> Rendered:
    if len(args) < 2:
        return "❓", "security_file_permission", ("",)
    mask = _get(args, 1, "int_arg")
    emoji, word = {2: ("📝", "write"), 4: ("📚", "read")}.get(mask, ("❓", "security_file_permission"))
    return emoji, word, (_path(args, 0),)


def _mmap_file(args: list[Json]) -> Rendered:
    if len(args) < 2:
        return "❓", "security_mmap_file", ("",)
    prot = _int(_get(args, 1, "uint_arg")) or 0
    flags = "".join(c for bit, c in ((1, "r"), (2, "w"), (4, "x")) if prot & bit)
    return "📝", f"mmap-{flags}", (_path(args, 0),)


def _truncate(function: str, kind: str) -> Callable[[list[Json]], Rendered]:
    """security_path_truncate (a path) and security_file_truncate (ftruncate's file)."""

    def render(args: list[Json]) -> Rendered:
        if not args:
            return "❓", function, ("",)
        return "📝", "truncate", (_path(args, 0, kind),)

    return render


def _bpf_check(args: list[Json]) -> Rendered:
    attr = _get(args, 0, "bpf_attr_arg")
    if not isinstance(attr, dict):
        return "🐝", "bpf_load", ("",)
    text = f"{attr.get('ProgType', '')} {attr.get('ProgName', '')}"
    text += f" instruction count {attr.get('InsnCnt', 0)}"
    return "🐝", "bpf_load", (_clean(text),)


def _perf_event(args: list[Json]) -> Rendered:
    ev = _get(args, 0, "perf_event_arg")
    text = f"{ev.get('Type', '')} {ev.get('KprobeFunc', '')}" if isinstance(ev, dict) else ""
    return "🐝", "perf_event_alloc", (_clean(text),)


def _bpf_map(args: list[Json]) -> Rendered:
    """security_bpf_map_alloc, called security_bpf_map_create since Linux 6.9."""
    m = _get(args, 0, "bpf_map_arg")
    if not isinstance(m, dict):
        return "🗺", "bpf_map_create", ("",)
    text = (
        f"{m.get('MapType', '')} {m.get('MapName', '')} key size {m.get('KeySize', 0)}"
        f" value size {m.get('ValueSize', 0)} max entries {m.get('MaxEntries', 0)}"
    )
    return "🗺", "bpf_map_create", (_clean(text),)


def _setns(args: list[Json]) -> Rendered:
    """setns(2): the namespace type asked for (its second argument)."""
    nstype = _NAMESPACES.get(_get(args, 1, "int_arg") or 0, "") if len(args) > 1 else ""
    return "🔧", "setns", (nstype,)


def _sendmsg(args: list[Json]) -> Rendered:
    return "📤", "sendmsg", (_sock(args), f"bytes {_clean(_get(args, 1, 'int_arg') or 0)}")


_KPROBES: dict[str, Callable[[list[Json]], Rendered]] = {
    "sys_write": _io("📝", "write"),
    "sys_read": _io("📚", "read"),
    "fd_install": lambda a: ("📬", "open", (_path(a, 1),)),
    "sys_open": lambda a: ("📬️", "open", (_first_string(a),)),
    "sys_openat": lambda a: ("📬️", "openat", (_first_string(a),)),
    "sys_close": lambda a: ("📪", "close", (_path(a, 0),)),
    "sys_mount": _two_strings("💾", "mount"),
    "sys_pivot_root": _two_strings("💾", "pivot_root"),
    "sys_setuid": lambda a: ("🔑", "setuid", (_clean(_get(a, 0, "int_arg") or 0) if a else "",)),
    "sys_setns": _setns,
    "sys_clock_settime": lambda a: ("⏰", "clock_settime", ()),
    "proc_exec_connector": lambda a: ("🔧", "proc_exec_connector", ()),
    "tcp_connect": lambda a: ("🔌", "connect", (_sock(a),)),
    "tcp_close": lambda a: ("🧹", "close", (_sock(a),)),
    "tcp_sendmsg": _sendmsg,
    "bpf_check": _bpf_check,
    "security_perf_event_alloc": _perf_event,
    "security_bpf_map_alloc": _bpf_map,
    "security_bpf_map_create": _bpf_map,
    "security_file_permission": _file_permission,
    "security_mmap_file": _mmap_file,
    "security_path_truncate": _truncate("security_path_truncate", "path_arg"),
    "security_file_truncate": _truncate("security_file_truncate", "file_arg"),
}


def render_stack_traces(event: Json, color: bool = False) -> str:
    """The kernel and user stack traces of a policy event, as the lines ``getevents --stack-traces``
    prints under its compact line (Tetragon's ``HumanStackTrace``); "" when it has none.

    Addresses and offsets are uint64, which protojson writes as strings; symbols and
    modules are cleaned like every other field, since a user binary names its own.
    """
    paint = _Paint(color)
    lines: list[str] = []
    for body in event.values():
        if not isinstance(body, dict):
            continue
        for key, title in (("kernel_stack_trace", "Kernel:"), ("user_stack_trace", "User:")):
            frames = body.get(key)
            if not isinstance(frames, list) or not frames:
                continue
            lines.append(title)
            for frame in frames:
                lines.append(_frame(frame, paint, user=key == "user_stack_trace"))
    return "".join(f"{line}\n" for line in lines)


def _frame(frame: Json, paint: _Paint, user: bool) -> str:
    address = paint(GREEN, f"   0x{_uint(frame.get('address')):x}:")
    offset = f"0x{_uint(frame.get('offset')):x}"
    symbol = _clean(frame.get("symbol", ""))
    if not user:
        return f"{address} {paint(BLUE, symbol)}+{paint(YELLOW, offset)}"
    named = f" {paint(BLUE, symbol)}" if symbol else ""
    module = _clean(frame.get("module", ""))
    return f"{address}{named} {paint(YELLOW, f'({module}+{offset})')}"


def _uint(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
