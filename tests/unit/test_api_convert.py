"""Events through tetra.proto and back: nothing lost, nothing added, and the fast path equals protobuf's.

The arguments are built by the decoders themselves (tetra.decode.generic) from
packed kernel layouts, with the awkward values: zeros, an empty address, a
file argument whose path failed, 64-bit extremes, truncated bytes.
"""

import base64
import ipaddress
from typing import Any

import pytest
from google.protobuf import json_format

from tetra.api import tg_events
from tetra.api.convert import ConvertError, to_bytes, to_dict, to_message
from tetra.compiler.argtypes import TYPES, Encoding
from tetra.decode import generic
from tetra.enrich.pods import pod_info
from tetra.process.events import exec_event, exit_event
from tetra.process.model import Process, make_exec_id
from tetra.wire import layouts
from tetra.wire.constants import ARG_ERROR, ARG_TRUNCATED

Json = dict[str, Any]
NODE = "node-a"


def process(pid: int, uid: int = 0, start: str = "2026-11-26T10:35:19.820924472Z", **extra: Any) -> Process:
    defaults: dict[str, Any] = dict(cwd="/root", binary="/usr/bin/curl", arguments="https://example.org",
                                    flags="execve clone", docker="", cgroup_id=0, parent_exec_id="")
    defaults.update(extra)
    return Process(exec_id=make_exec_id(NODE, pid * 1000, pid), pid=pid, tid=pid, uid=uid, auid=4294967295,
                   ktime=pid * 1000, start_time=start, **defaults)


def int_args() -> list[Json]:
    out = []
    for atype in TYPES.values():
        if atype.encoding is Encoding.INT:
            for raw in (0, 1, -1, 2**63 - 1, -(2**63)):
                out.append(generic.int_arg(raw, atype))
    return out


def _addr(text: str) -> bytes:
    return ipaddress.ip_address(text).packed.ljust(16, b"\0")


def struct_args() -> list[Json]:
    sockaddr = layouts.SOCKADDR.codec
    sock = layouts.SOCK.codec
    skb = layouts.SKB.codec
    cred = layouts.CRED_ARG.codec
    return [
        generic._sockaddr_arg(sockaddr.pack(2, 0, 0, _addr("127.0.0.1"))),  # port 0 survives
        generic._sockaddr_arg(sockaddr.pack(10, 443, 0, _addr("::1"))),
        generic._sockaddr_arg(sockaddr.pack(1, 0, 0, b"\0" * 16)),  # AF_UNIX: family only
        generic._sock_arg(sock.pack(2, 0, 80, 6, 2, _addr("0.0.0.0"), _addr("10.0.0.1"), 1, 0, 0)),
        generic._sock_arg(sock.pack(1, 0, 0, 0, 7, b"\0" * 16, b"\0" * 16, 1, 0, 0)),  # empty addresses
        generic._skb_arg(skb.pack(2, 5353, 53, 17, 0, _addr("10.0.0.2"), _addr("10.0.0.1"), 0, 0, 0, 0)),
        generic._cred_arg(cred.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 4026531837, 0, 0, 0, 0, 0, 0, 0)),  # root, no caps
        generic._cred_arg(cred.pack(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 3, 7, 1 << 21, 1 << 21, 0,
                                    1, 1000, 1000, 0)),  # in a user namespace a user made
    ]


def buffer_args() -> list[Json]:
    out = []
    for name in ("string", "char_buf", "fd", "path", "linux_binprm"):
        atype = TYPES[name]
        for head in (0, ARG_TRUNCATED):
            if atype.encoding is Encoding.PATH:
                out.append(generic._path_arg(b"/etc/passwd", head, atype))
            else:
                out.append(generic._bytes_arg(b"\x00\xffdata", head, atype))
    out.append(generic._path_arg(b"", ARG_ERROR, TYPES["file"]))  # {"file_arg": {}}
    return out


def kprobe_body(args: list[Json]) -> Json:
    labelled = [dict(a, label=f"arg{i}") if i % 2 else a for i, a in enumerate(args)]
    return {"process": dict(process(42).to_json(), tid=43), "parent": process(1).to_json(),
            "function_name": "__x64_sys_openat", "args": labelled, "return": {"int_arg": 0},
            "action": "KPROBE_ACTION_SIGKILL", "policy_name": "p", "message": "m", "tags": ["a", "b"],
            "kernel_stack_trace": [{"symbol": "do_sys_openat2", "offset": "31"}, {"symbol": "entry_SYSCALL_64"}],
            "user_stack_trace": [{"symbol": "[unknown]"}]}


def pod_process() -> Json:
    """A process in a pod, as tetra.enrich builds it (labels, annotations, workload, an exec probe)."""
    from tests.unit.enrich.test_pod_info import APP, POD

    pod = pod_info(POD, annotations=True).to_json(APP, binary="/usr/bin/cat", arguments="/tmp/healthy", pid=7)
    return dict(process(77, binary="/usr/bin/cat", arguments="/tmp/healthy").to_json(), pod=pod)


def events() -> list[Json]:
    child = process(42, uid=1000, docker="0123456789abcdef0123456789abcde",
                    parent_exec_id=make_exec_id(NODE, 1000, 1))
    parent = process(1, start="2026-11-26T10:00:00Z")
    time = "2026-11-26T10:35:20.500Z"
    out = [
        exec_event(child, parent, NODE, "2026-11-26T10:35:19.820924Z").data,
        exec_event(parent, None, NODE, time).data,
        exit_event(child, parent, 9, NODE, time).data,  # SIGKILL
        exit_event(child, parent, 3 << 8, NODE, "2026-11-26T10:35:20.123Z").data,  # status 3
        exit_event(child, None, 0, NODE, time).data,
        {"process_kprobe": kprobe_body(int_args()), "node_name": NODE, "time": time},
        {"process_kprobe": kprobe_body(struct_args()), "node_name": NODE, "time": time},
        {"process_kprobe": kprobe_body(buffer_args()), "node_name": NODE, "time": time},
        {"process_kprobe": {"process": {"pid": 7, "tid": 7}, "function_name": "security_file_open",
                            "action": "KPROBE_ACTION_UNKNOWN", "policy_name": "p"}, "node_name": NODE, "time": time},
        {"process_tracepoint": {"process": child.to_json(), "subsys": "syscalls", "event": "sys_enter_unlinkat",
                                "args": [{"string_arg": "/tmp/x"}], "action": "KPROBE_ACTION_POST",
                                "policy_name": "t", "kernel_stack_trace": [{"symbol": "x", "offset": "1"}]},
         "node_name": NODE, "time": time},
        {"process_uprobe": {"process": child.to_json(), "path": "/bin/bash", "symbol": "readline",
                            "args": [{"size_arg": "18446744073709551615"}], "action": "KPROBE_ACTION_POST",
                            "policy_name": "u", "return": {"long_arg": "-1"}}, "node_name": NODE, "time": time},
        {"process_lsm": {"process": child.to_json(), "function_name": "file_open",
                         "args": [{"file_arg": {"path": "/etc/shadow"}}], "action": "KPROBE_ACTION_OVERRIDE",
                         "policy_name": "l"}, "node_name": NODE, "time": time},
        {"process_usdt": {"process": child.to_json(), "path": "/usr/bin/marker", "provider": "tetra",
                          "name": "marker", "args": [{"int_arg": -42}, {"string_arg": "hi"}],
                          "action": "KPROBE_ACTION_POST", "policy_name": "s", "message": "m", "tags": ["t"]},
         "node_name": NODE, "time": time},
        {"rate_limit_info": {"number_of_dropped_process_events": "17"}, "node_name": NODE, "time": time},
        {"process_exec": {"process": pod_process()}, "node_name": NODE, "time": time},
        {"process_loader": {"process": child.to_json(), "path": "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
                            "buildid": "H5XVSY0oO3lQWGFSPiCz2yr99Rg="}, "node_name": NODE, "time": time},
        {"process_exec": {"process": process(43, context={"environment_variables": [
            {"Key": "HOME", "Value": "/root"}, {"Key": "EMPTY"}]}).to_json()},
         "node_name": NODE, "time": time},
    ]
    return out


@pytest.mark.parametrize("event", events(), ids=lambda e: next(iter(e)))
def test_round_trip_is_exact_and_matches_protobuf(event: Json) -> None:
    reference = json_format.ParseDict(event, tg_events.GetEventsResponse(), ignore_unknown_fields=False)
    message = to_message(event)
    assert message == reference
    assert to_dict(message) == event
    assert json_format.MessageToDict(message, preserving_proto_field_name=True) == event
    assert to_dict(tg_events.GetEventsResponse.FromString(to_bytes(event))) == event


def test_bytes_are_base64_both_ways() -> None:
    event = {"process_kprobe": {"process": {"pid": 1}, "args": [{"bytes_arg": base64.b64encode(b"\0\1").decode()}]},
             "node_name": NODE}
    assert to_message(event).process_kprobe.args[0].bytes_arg == b"\0\1"
    assert to_dict(to_message(event)) == event


@pytest.mark.parametrize("event", [
    {"process_exec": {"process": {"pid": 1, "no_such_field": 1}}},
    {"process_dns": {}},
    {"process_exec": {"process": {"pid": "one"}}},
    {"process_exec": {"process": {"start_time": "yesterday"}}},
    {"process_kprobe": {"action": "KPROBE_ACTION_TELEPORT"}},
])
def test_what_does_not_fit_is_an_error(event: Json) -> None:
    with pytest.raises(ConvertError):
        to_message(event)


@pytest.mark.parametrize("stamp", ["2026-11-26T10:35:19Z", "2026-11-26T10:35:19.1Z", "2026-11-26T10:35:19.000001Z",
                                   "1970-01-01T00:00:00Z", "2026-11-26T10:35:19.123456789Z"])
def test_times_parse_as_protobuf_does(stamp: str) -> None:
    event = {"node_name": NODE, "time": stamp}
    assert to_message(event) == json_format.ParseDict(event, tg_events.GetEventsResponse())
