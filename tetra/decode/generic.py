"""Decoding policy hook events: the fixed part here, the arguments per hook.

The fixed part (struct tetra_generic) says which policy and hook; the
argument blob is only meaningful with that hook's plan, so ``decode_args``
takes it: integers, length-prefixed bytes and paths, and socket addresses,
in the kernel's order (returnCopy arguments last), returned in the policy's.
"""

import base64
from collections.abc import Callable
import ipaddress
import struct
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from tetra.compiler.argtypes import ArgType, Encoding
from tetra.compiler.names import CAPABILITIES, FAMILY_NAMES, PROTOCOL_NAMES, SOCK_TYPE_NAMES, TCP_STATE_NAMES
from tetra.compiler.plan import ArgPlan, HookPlan
from tetra.decode.credentials import SECUREBITS, bit_names, capabilities_json
from tetra.decode.process import text
from tetra.decode.records import record_json
from tetra.decode.registry import register
from tetra.errors import DecodeError
from tetra.export.encode import fragment
from tetra.kernel.syscall_abi import MACHINE_ABI
from tetra.wire import layouts
from tetra.wire.constants import ARG_ERROR, ARG_LEN_MASK, ARG_TRUNCATED, Op

_GENERIC = layouts.GENERIC.codec
_SOCKADDR = layouts.SOCKADDR.codec
_SOCK = layouts.SOCK.codec
_SKB = layouts.SKB.codec
_CRED_ARG = layouts.CRED_ARG.codec
_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")

Json = dict[str, Any]


@dataclass(slots=True)
class GenericRecord:
    ktime: int
    pid: int
    tid: int
    policy_id: int
    hook_id: int
    action: int
    kernel_stack_id: int
    user_stack_id: int
    selector: int
    flags: int
    ret: int
    blob: bytes


@register(Op.GENERIC)
def decode_generic(raw: bytes) -> GenericRecord:
    if len(raw) < _GENERIC.size:
        raise DecodeError(f"policy event record of {len(raw)} bytes, need {_GENERIC.size}")
    (_, _, _, _, ktime, pid, tid, policy_id, hook_id, action, kstack, ustack, args_len, selector, flags,
     ret) = _GENERIC.unpack_from(raw)
    blob = raw[_GENERIC.size:_GENERIC.size + args_len]
    if len(blob) != args_len:
        raise DecodeError(f"policy event says {args_len} argument bytes, has {len(blob)}")
    return GenericRecord(ktime, pid, tid, policy_id, hook_id, action, kstack, ustack, selector, flags, ret, blob)


_CAST_BITS = {"__s8": 8, "__u8": 8, "__s16": 16, "__u16": 16, "__s32": 32, "__u32": 32}


def int_width(atype: ArgType) -> int:
    """How many bits of the raw 64-bit value the type keeps."""
    return _CAST_BITS.get(atype.cast, 64)


def _int_value(raw: int, atype: ArgType) -> int:
    bits = int_width(atype)
    value = raw & ((1 << bits) - 1)
    if not atype.unsigned and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def int_arg(raw: int, atype: ArgType) -> Json:
    """Tetragon's JSON: 64-bit integers are strings (protobuf JSON), 32-bit ones numbers."""
    value = _int_value(raw, atype)
    if atype.json_key == "capability_arg":
        if 0 <= value < len(CAPABILITIES):
            return {"capability_arg": {"value": value, "name": CAPABILITIES[value]}}
        return {"capability_arg": {"value": value}}  # no name: left out, as protojson does
    if atype.json_key in TEXT_INT_KEYS:
        return {atype.json_key: str(value)}
    if atype.json_key == "syscall_id":
        return {"syscall_id": _syscall_id(value)}
    return {atype.json_key: value}


def _syscall_id(value: int) -> Json:
    """Tetragon's SyscallId: the number and the ABI; protojson leaves a zero id out (read(2) is 0)."""
    number = value & 0xFFFFFFFF
    body: Json = {"id": number} if number else {}
    body["abi"] = MACHINE_ABI
    return body


def _bytes_arg(data: bytes, head: int, atype: ArgType) -> Json:
    if atype.json_key == "bytes_arg":
        encoded = base64.b64encode(data).decode()
        if head & ARG_TRUNCATED:
            return {"truncated_bytes_arg": {"bytes_arg": encoded, "orig_size": str(len(data))}}
        return {"bytes_arg": encoded}
    return {atype.json_key: text(data)}


def _path_arg(data: bytes, head: int, atype: ArgType) -> Json:
    body: Json = {"path": text(data)} if not head & ARG_ERROR else {}
    if head & ARG_TRUNCATED:
        body["flags"] = "truncated"
    return {atype.json_key: body}


def _sockaddr_arg(raw: bytes) -> Json:
    family, port, _, addr = _SOCKADDR.unpack(raw)
    body: Json = {"family": FAMILY_NAMES.get(family, str(family))}
    if family == 2:
        body["addr"] = str(ipaddress.IPv4Address(addr[:4]))
        body["port"] = port
    elif family == 10:
        body["addr"] = str(ipaddress.IPv6Address(addr))
        body["port"] = port
    return {"sockaddr_arg": body}


def _address(family: int, raw: bytes) -> str:
    if family == 2:
        return str(ipaddress.IPv4Address(raw[:4]))
    if family == 10:
        return str(ipaddress.IPv6Address(raw))
    return ""


def _tuple(family: int, sport: int, dport: int, protocol: int, saddr: bytes, daddr: bytes) -> Json:
    return {"family": FAMILY_NAMES.get(family, str(family)),
            "protocol": PROTOCOL_NAMES.get(protocol, str(protocol)),
            "saddr": _address(family, saddr), "daddr": _address(family, daddr), "sport": sport, "dport": dport}


def _sock_arg(raw: bytes) -> Json:
    family, sport, dport, protocol, state, saddr, daddr, sock_type, _, _ = _SOCK.unpack(raw)
    body = _tuple(family, sport, dport, protocol, saddr, daddr)
    body["type"] = SOCK_TYPE_NAMES.get(sock_type, str(sock_type))
    body["state"] = TCP_STATE_NAMES.get(state, str(state))
    return {"sock_arg": body}


def _skb_arg(raw: bytes) -> Json:
    family, sport, dport, protocol, _, saddr, daddr, length, priority, mark, _ = _SKB.unpack(raw)
    body = _tuple(family, sport, dport, protocol, saddr, daddr)
    body.update({"len": length, "priority": priority, "mark": mark, "proto": protocol})
    return {"skb_arg": body}


def _cred_arg(raw: bytes) -> Json:
    """Tetragon's process_credentials_arg (ProcessCredentials): its user namespace is the host's when it
    is the initial one (level 0), as Tetragon decides."""
    (uid, gid, suid, sgid, euid, egid, fsuid, fsgid, securebits, user_ns,
     permitted, effective, inheritable, level, owner, group, _) = _CRED_ARG.unpack(raw)
    body: Json = {"uid": uid, "gid": gid, "euid": euid, "egid": egid, "suid": suid, "sgid": sgid,
                  "fsuid": fsuid, "fsgid": fsgid}
    names = bit_names(securebits, SECUREBITS)
    if names:  # protojson leaves out an empty list
        body["securebits"] = names
    body["caps"] = capabilities_json(permitted, effective, inheritable)
    namespace: Json = {"inum": user_ns} if user_ns else {}
    if level == 0:
        namespace["is_host"] = True
    body["user_ns"] = {"level": level, "uid": owner, "gid": group, "ns": namespace}
    return {"process_credentials_arg": body}


# Fixed-size encodings: (layout size, decoder).
_FIXED = {
    Encoding.SOCKADDR: (_SOCKADDR.size, _sockaddr_arg),
    Encoding.SOCK: (_SOCK.size, _sock_arg),
    Encoding.SKB: (_SKB.size, _skb_arg),
    Encoding.CRED: (_CRED_ARG.size, _cred_arg),
}


Reader = Callable[[bytes, int], tuple[Json, int]]
# The same argument as JSON bytes, what orjson makes of the Reader's object (tetra/export/encode.py)
LineReader = Callable[[bytes, int], tuple[bytes, int]]


def label_json(label: str | None) -> bytes:
    return b',"label":' + fragment(label) if label else b""


# The integer arguments protojson writes as strings (64-bit); the others are numbers.
TEXT_INT_KEYS = frozenset({"long_arg", "size_arg"})


def int_json_ends(atype: ArgType, label: str | None) -> tuple[bytes, bytes]:
    """The JSON before and after a plain integer argument's digits (its key, a 64-bit one's
    quotes, its label): for this module's line readers and the compiled path's (agent/line_path.py)."""
    quote = b'"' if atype.json_key in TEXT_INT_KEYS else b""
    return b"{" + fragment(atype.json_key) + b":" + quote, quote + label_json(label) + b"}"


def is_text(atype: ArgType) -> bool:
    """A length-prefixed argument written as a JSON string (the rest: paths, base64 bytes)."""
    return atype.encoding is Encoding.BYTES and atype.json_key != "bytes_arg"


def text_json_ends(atype: ArgType, label: str | None) -> tuple[bytes, bytes]:
    """The JSON before and after a string argument's text (``text_json``)."""
    return b"{" + fragment(atype.json_key) + b":", label_json(label) + b"}"


def text_json(data: bytes) -> bytes:
    """A string argument's text as JSON; backslashreplace leaves no lone surrogate, so orjson takes it."""
    return orjson.dumps(data.decode("utf-8", "backslashreplace"))


def _int_readers(atype: ArgType, label: str | None) -> tuple[Reader, LineReader]:
    """A plain integer argument: narrowing, sign and JSON key worked out once per hook."""
    bits = int_width(atype)
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    key, unsigned, as_text = atype.json_key, atype.unsigned, atype.json_key in TEXT_INT_KEYS
    unpack = _I64.unpack_from

    def value_at(blob: bytes, at: int) -> int:
        try:
            value = unpack(blob, at)[0] & mask
        except struct.error as err:
            raise DecodeError(f"integer argument: blob too short ({err})") from None
        return value - mask - 1 if not unsigned and value >= sign else value

    def read(blob: bytes, at: int) -> tuple[Json, int]:
        value = value_at(blob, at)
        obj: Json = {key: str(value) if as_text else value}
        if label:
            obj["label"] = label
        return obj, at + 8

    opening, closing = int_json_ends(atype, label)

    def line(blob: bytes, at: int) -> tuple[bytes, int]:
        return b"%s%d%s" % (opening, value_at(blob, at), closing), at + 8

    return read, line


def _sized_readers(arg: ArgPlan) -> tuple[Reader, LineReader]:
    """A length-prefixed argument (u32 length and flags, then the bytes): a string, bytes or a
    path, its JSON form picked once per hook."""
    atype, label, index = arg.atype, arg.label, arg.spec.index
    key = atype.json_key
    unpack = _U32.unpack_from
    as_text = is_text(atype)  # the hot one: strings

    def data_at(blob: bytes, at: int) -> tuple[bytes, int, int]:
        """(the argument's bytes, its head: length and flags, where the next one starts)"""
        try:
            head = unpack(blob, at)[0]
        except struct.error as err:
            raise DecodeError(f"argument {index} of {atype.name}: blob too short ({err})") from None
        length = head & ARG_LEN_MASK
        end = at + 4 + length
        data = blob[at + 4:end]
        if len(data) != length:
            raise DecodeError(f"argument {index}: {length} bytes announced, {len(data)} present")
        return data, head, end

    def read(blob: bytes, at: int) -> tuple[Json, int]:
        data, head, end = data_at(blob, at)
        if as_text:
            obj: Json = {key: data.decode("utf-8", "backslashreplace")}
        elif atype.encoding is Encoding.PATH:
            obj = _path_arg(data, head, atype)
        else:
            obj = _bytes_arg(data, head, atype)
        if label:
            obj["label"] = label
        return obj, end

    if not as_text:
        return read, _line_of(read)
    opening, closing = text_json_ends(atype, label)

    def line(blob: bytes, at: int) -> tuple[bytes, int]:
        data, _, end = data_at(blob, at)
        return b"%s%s%s" % (opening, text_json(data), closing), end

    return read, line


def _fixed_reader(arg: ArgPlan) -> Reader:
    """A fixed-size argument: a capability (an integer with a name) or a struct."""
    atype, label, index = arg.atype, arg.label, arg.spec.index
    size, decoder = _FIXED.get(atype.encoding, (8, None))

    def read(blob: bytes, at: int) -> tuple[Json, int]:
        if len(blob) < at + size:
            raise DecodeError(f"argument {index} of {atype.name}: blob too short ({len(blob) - at} of "
                              f"{size} bytes)")
        obj = int_arg(_I64.unpack_from(blob, at)[0], atype) if decoder is None else decoder(blob[at:at + size])
        if label:
            obj["label"] = label
        return obj, at + size

    return read


def _record_reader(arg: ArgPlan) -> Reader:
    """A record argument (tetra/compiler/records.py): its length-prefixed fields, rendered."""
    name, label, index = arg.atype.name, arg.label, arg.spec.index

    def read(blob: bytes, at: int) -> tuple[Json, int]:
        if len(blob) < at + 4:
            raise DecodeError(f"argument {index} of {name}: blob too short")
        end = at + 4 + (_U32.unpack_from(blob, at)[0] & ARG_LEN_MASK)
        if len(blob) < end:
            raise DecodeError(f"argument {index} of {name}: {end - at - 4} bytes announced, {len(blob) - at - 4} "
                              "present")
        obj = record_json(name, blob[at + 4:end])
        if label:
            obj["label"] = label
        return obj, end

    return read


def _line_of(read: Reader) -> LineReader:
    """The rarer arguments' JSON: their object, encoded."""
    def line(blob: bytes, at: int) -> tuple[bytes, int]:
        obj, end = read(blob, at)
        return fragment(obj), end

    return line


def _readers(arg: ArgPlan) -> tuple[Reader, LineReader]:
    encoding = arg.atype.encoding
    if encoding is Encoding.INT and arg.atype.json_key != "capability_arg":
        return _int_readers(arg.atype, arg.label)
    if encoding is Encoding.INT or encoding in _FIXED:
        read = _fixed_reader(arg)
        return read, _line_of(read)
    if encoding is Encoding.RECORD:
        read = _record_reader(arg)
        return read, _line_of(read)
    return _sized_readers(arg)


class ArgsDecoder:
    """The readers of one hook's arguments, built once: events of a hot hook skip
    every per-event decision about types, order and labels. Each argument has two: to
    Tetragon's argument object, and straight to its JSON (what a JSON line needs)."""

    def __init__(self, hook: HookPlan) -> None:
        position = {id(arg): i for i, arg in enumerate(hook.args)}
        self.count = len(hook.args)
        built = [(position[id(arg)], _readers(arg)) for arg in hook.blob_order]
        self.steps = tuple((index, read) for index, (read, _) in built)
        self.line_steps = tuple((index, line) for index, (_, line) in built)
        # The usual case: every argument in the blob, in the policy's order (no returnCopy)
        self.in_order = [index for index, _ in self.steps] == list(range(self.count))
        self.readers = tuple(read for _, read in self.steps)
        self.line_readers = tuple(line for _, line in self.line_steps)
        self.return_arg = hook.return_arg
        # A returned pointer's text: a field of the blob, at the offset the record's ret holds
        self.return_readers = _readers(hook.return_ptr) if hook.return_ptr is not None else None

    def decode(self, blob: bytes) -> list[Json]:
        return _read_all(blob, self.readers if self.in_order else None, self.steps, self.count)

    def returned(self, blob: bytes, ret: int) -> Json | None:
        """The hook's return value as Tetragon's argument object: the integer, or the text a returned
        pointer points to (``ret`` is then where its field starts in the blob); None without a returnArg."""
        if self.return_readers is not None:
            return self.return_readers[0](blob, _field_at(blob, ret))[0]
        return None if self.return_arg is None else int_arg(ret, self.return_arg)

    def returned_json(self, blob: bytes, ret: int) -> bytes:
        """``fragment(self.returned(blob, ret))``; b"" without a returnArg."""
        if self.return_readers is not None:
            return self.return_readers[1](blob, _field_at(blob, ret))[0]
        return b"" if self.return_arg is None else fragment(int_arg(ret, self.return_arg))

    def encode(self, blob: bytes) -> bytes:
        """``fragment(self.decode(blob))`` without the objects; b"" when there are none
        (protojson leaves out an empty list)."""
        objs = _read_all(blob, self.line_readers if self.in_order else None, self.line_steps, self.count)
        return b"[" + b",".join(objs) + b"]" if objs else b""


T = TypeVar("T")


def _field_at(blob: bytes, offset: int) -> int:
    """A blob offset from the kernel, checked before a reader trusts it."""
    if not 0 <= offset < len(blob):
        raise DecodeError(f"returned value at offset {offset} of a {len(blob)}-byte argument blob")
    return offset


def _read_all(blob: bytes, in_order: tuple[Callable[[bytes, int], tuple[T, int]], ...] | None,
              steps: tuple[tuple[int, Callable[[bytes, int], tuple[T, int]]], ...], count: int) -> list[T]:
    """Every argument, in the policy's order: ``in_order`` reads them one after the other;
    else ``steps`` (position, reader) in the blob's order."""
    at = 0
    objs: list[T] = []
    if in_order is not None:
        for read in in_order:
            obj, at = read(blob, at)
            objs.append(obj)
        return objs
    out: list[T | None] = [None] * count
    for index, read in steps:
        out[index], at = read(blob, at)
    return [obj for obj in out if obj is not None]


def decode_args(blob: bytes, hook: HookPlan) -> list[Json]:
    """The hook's arguments as Tetragon argument objects, in the policy's order (a one-off:
    the agent keeps an ``ArgsDecoder`` per loaded hook, tetra/agent/policy_events.py)."""
    return ArgsDecoder(hook).decode(blob)
