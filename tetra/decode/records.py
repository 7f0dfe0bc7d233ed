"""Record arguments (tetra/compiler/records.py) as Tetragon renders them.

The names and shapes follow Tetragon's protobuf (tetra/api/tetra.proto:
KprobeBpfAttr, KprobePerfEvent, KprobeBpfMap, UserNamespace, KernelModule) in
protojson form: zero and empty values are left out, 64-bit integers are strings.
Program and map types are named from the kernel's UAPI enums, which only grow.
"""

import struct
from collections.abc import Callable
from typing import Any

from tetra.compiler.records import RECORDS
from tetra.errors import DecodeError

Json = dict[str, Any]

_PROG_TYPES = (
    "UNSPEC", "SOCKET_FILTER", "KPROBE", "SCHED_CLS", "SCHED_ACT", "TRACEPOINT", "XDP", "PERF_EVENT", "CGROUP_SKB",
    "CGROUP_SOCK", "LWT_IN", "LWT_OUT", "LWT_XMIT", "SOCK_OPS", "SK_SKB", "CGROUP_DEVICE", "SK_MSG",
    "RAW_TRACEPOINT", "CGROUP_SOCK_ADDR", "LWT_SEG6LOCAL", "LIRC_MODE2", "SK_REUSEPORT", "FLOW_DISSECTOR",
    "CGROUP_SYSCTL", "RAW_TRACEPOINT_WRITABLE", "CGROUP_SOCKOPT", "TRACING", "STRUCT_OPS", "EXT", "LSM",
    "SK_LOOKUP", "SYSCALL", "NETFILTER",
)
_MAP_TYPES = (
    "UNSPEC", "HASH", "ARRAY", "PROG_ARRAY", "PERF_EVENT_ARRAY", "PERCPU_HASH", "PERCPU_ARRAY", "STACK_TRACE",
    "CGROUP_ARRAY", "LRU_HASH", "LRU_PERCPU_HASH", "LPM_TRIE", "ARRAY_OF_MAPS", "HASH_OF_MAPS", "DEVMAP",
    "SOCKMAP", "CPUMAP", "XSKMAP", "SOCKHASH", "CGROUP_STORAGE", "REUSEPORT_SOCKARRAY", "PERCPU_CGROUP_STORAGE",
    "QUEUE", "STACK", "SK_STORAGE", "DEVMAP_HASH", "STRUCT_OPS", "RINGBUF", "INODE_STORAGE", "TASK_STORAGE",
    "BLOOM_FILTER", "USER_RINGBUF", "CGRP_STORAGE", "ARENA",
)
_PERF_TYPES = ("PERF_TYPE_HARDWARE", "PERF_TYPE_SOFTWARE", "PERF_TYPE_TRACEPOINT", "PERF_TYPE_HW_CACHE",
               "PERF_TYPE_RAW", "PERF_TYPE_BREAKPOINT")
# The kernel's module taint bits (include/linux/panic.h) with Tetragon's names (TaintedBitsType).
_TAINTS = {0: "TAINT_PROPRIETARY_MODULE", 1: "TAINT_FORCED_MODULE", 2: "TAINT_FORCED_UNLOAD_MODULE",
           10: "TAINT_STAGED_MODULE", 12: "TAINT_OUT_OF_TREE_MODULE", 13: "TAINT_UNSIGNED_MODULE",
           15: "TAINT_KERNEL_LIVE_PATCH_MODULE", 18: "TAINT_TEST_MODULE"}


def _name(table: tuple[str, ...], prefix: str, value: int) -> str:
    return prefix + table[value] if value < len(table) else str(value)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


def _present(body: Json) -> Json:
    """protojson leaves zero numbers and empty strings and lists out."""
    return {key: value for key, value in body.items() if value not in (0, "", "0", [])}


def _bpf_attr(f: Json) -> Json:
    return {"bpf_attr_arg": _present({"ProgType": _name(_PROG_TYPES, "BPF_PROG_TYPE_", f["prog_type"]),
                                      "InsnCnt": f["insn_cnt"], "ProgName": _text(f["prog_name"])})}


def _bpf_map(f: Json) -> Json:
    return {"bpf_map_arg": _present({"MapType": _name(_MAP_TYPES, "BPF_MAP_TYPE_", f["map_type"]),
                                     "KeySize": f["key_size"], "ValueSize": f["value_size"],
                                     "MaxEntries": f["max_entries"], "MapName": _text(f["name"])})}


def _perf_event(f: Json) -> Json:
    kind = _PERF_TYPES[f["type"]] if f["type"] < len(_PERF_TYPES) else str(f["type"])  # dynamic PMUs: a number
    return {"perf_event_arg": _present({"KprobeFunc": _text(f["kprobe_func"]), "Type": kind,
                                        "Config": str(f["config"]), "ProbeOffset": str(f["probe_offset"])})}


def _user_namespace(f: Json) -> Json:
    return {"user_ns_arg": {"level": f["level"], "uid": f["uid"], "gid": f["gid"], "ns": {"inum": f["inum"]}}}


def _taints(mask: int) -> list[str]:
    return [name for bit, name in _TAINTS.items() if mask >> bit & 1]


def _module(f: Json) -> Json:
    return {"module_arg": _present({"name": _text(f["name"]), "tainted": _taints(f["taints"])})}


def _load_info(f: Json) -> Json:
    body = _present({"name": _text(f["name"])})
    body["signature_ok"] = bool(f["sig_ok"])
    return {"module_arg": body}


_RENDER: dict[str, Callable[[Json], Json]] = {
    "bpf_attr": _bpf_attr, "bpf_map": _bpf_map, "perf_event": _perf_event,
    "user_namespace": _user_namespace, "module": _module, "load_info": _load_info,
}


def record_json(type_name: str, data: bytes) -> Json:
    """One record argument's bytes (without its length prefix) as Tetragon's argument object."""
    record = RECORDS[type_name]
    layout = record.layout
    if len(data) < layout.size:
        raise DecodeError(f"{type_name} argument of {len(data)} bytes, its record has {layout.size}")
    try:
        values = layout.unpack_from(data)
    except struct.error as err:
        raise DecodeError(f"{type_name} argument: {err}") from None
    return _RENDER[type_name](dict(zip((f.name for f in record.fields), values)))
