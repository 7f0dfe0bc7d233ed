"""tetra/api/tetragon/*.proto against Tetragon's documented API (github.com/cilium/tetragon,
api/v1/tetragon): message, field and enum names, field numbers and types, the service's methods.

A client generated from Tetragon's .proto files reads tetra's bytes only while every number here
holds, so the table is written out by hand rather than read from our .proto: renumbering, renaming
or retyping a field fails this test. Fields numbered 10000 to 19999 are tetra's additions and are
not in the table; every other field of a message in the table must be.
"""

from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from tetra.api import tg_events, tg_sensors, tg_tetragon

TETRA_ADDITIONS = range(10000, 20000)  # Tetragon numbers nothing there

# Field types, as the table writes them: a scalar's .proto name, or the message or enum name.
_SCALARS = {FieldDescriptor.TYPE_STRING: "string", FieldDescriptor.TYPE_BOOL: "bool",
            FieldDescriptor.TYPE_UINT32: "uint32", FieldDescriptor.TYPE_UINT64: "uint64",
            FieldDescriptor.TYPE_INT32: "int32", FieldDescriptor.TYPE_INT64: "int64",
            FieldDescriptor.TYPE_BYTES: "bytes"}

U32, I32, BOOLV, TS = "UInt32Value", "Int32Value", "BoolValue", "Timestamp"

# message -> {field: (number, type)}; "[]" before a type: repeated.
MESSAGES: dict[str, dict[str, tuple[int, str]]] = {
    "GetEventsRequest": {"allow_list": (1, "[]Filter"), "deny_list": (2, "[]Filter"),
                         "aggregation_options": (3, "AggregationOptions"), "field_filters": (4, "[]FieldFilter")},
    "GetEventsResponse": {"process_exec": (1, "ProcessExec"), "process_exit": (5, "ProcessExit"),
                          "process_kprobe": (9, "ProcessKprobe"), "process_tracepoint": (10, "ProcessTracepoint"),
                          "process_loader": (11, "ProcessLoader"), "process_uprobe": (12, "ProcessUprobe"),
                          "process_throttle": (27, "ProcessThrottle"), "process_lsm": (28, "ProcessLsm"),
                          "process_usdt": (29, "ProcessUsdt"),  # EventType's PROCESS_USDT number, as for the others
                          "test": (40000, "Test"), "rate_limit_info": (40001, "RateLimitInfo"),
                          "node_name": (1000, "string"), "time": (1001, TS),
                          "aggregation_info": (1002, "AggregationInfo"), "cluster_name": (1003, "string"),
                          "node_labels": (1004, "[]NodeLabelsEntry")},
    "Filter": {"binary_regex": (1, "[]string"), "namespace": (2, "[]string"), "health_check": (3, BOOLV),
               "pid": (4, "[]uint32"), "pid_set": (5, "[]uint32"), "event_set": (6, "[]EventType"),
               "pod_regex": (7, "[]string"), "arguments_regex": (8, "[]string"), "labels": (9, "[]string"),
               "policy_names": (10, "[]string"), "capabilities": (11, "CapFilter"),
               "parent_binary_regex": (12, "[]string"), "cel_expression": (13, "[]string"),
               "parent_arguments_regex": (14, "[]string"), "container_id": (15, "[]string"),
               "in_init_tree": (16, BOOLV), "ancestor_binary_regex": (17, "[]string")},
    "CapFilter": {"permitted": (1, "CapFilterSet"), "effective": (2, "CapFilterSet"),
                  "inheritable": (3, "CapFilterSet")},
    "CapFilterSet": {"any": (1, "[]CapabilitiesType"), "all": (2, "[]CapabilitiesType"),
                     "exactly": (3, "[]CapabilitiesType"), "none": (4, "[]CapabilitiesType")},
    "FieldFilter": {"event_set": (1, "[]EventType"), "fields": (2, "FieldMask"),
                    "action": (3, "FieldFilterAction"), "invert_event_set": (4, BOOLV)},
    "AggregationOptions": {"window_size": (1, "Duration"), "channel_buffer_size": (2, "uint64")},
    "RateLimitInfo": {"number_of_dropped_process_events": (1, "uint64")},
    "Process": {"exec_id": (1, "string"), "pid": (2, U32), "uid": (3, U32), "cwd": (4, "string"),
                "binary": (5, "string"), "arguments": (6, "string"), "flags": (7, "string"),
                "start_time": (8, TS), "auid": (9, U32), "pod": (10, "Pod"), "docker": (11, "string"),
                "parent_exec_id": (12, "string"), "refcnt": (13, "uint32"), "cap": (14, "Capabilities"),
                "ns": (15, "Namespaces"), "tid": (16, U32), "process_credentials": (17, "ProcessCredentials"),
                "binary_properties": (18, "BinaryProperties"), "user": (19, "UserRecord"),
                "in_init_tree": (20, BOOLV), "environment_variables": (21, "[]EnvVar")},
    "EnvVar": {"Key": (1, "string"), "Value": (2, "string")},
    "Pod": {"namespace": (1, "string"), "name": (2, "string"), "container": (4, "Container"),
            "pod_labels": (5, "[]PodLabelsEntry"), "workload": (6, "string"), "workload_kind": (7, "string"),
            "pod_annotations": (8, "[]PodAnnotationsEntry")},
    "Container": {"id": (1, "string"), "name": (2, "string"), "image": (3, "Image"), "start_time": (4, TS),
                  "pid": (5, U32), "maybe_exec_probe": (13, "bool"), "security_context": (14, "SecurityContext")},
    "Capabilities": {"permitted": (1, "[]CapabilitiesType"), "effective": (2, "[]CapabilitiesType"),
                     "inheritable": (3, "[]CapabilitiesType")},
    "ProcessCredentials": {"uid": (1, U32), "gid": (2, U32), "euid": (3, U32), "egid": (4, U32), "suid": (5, U32),
                           "sgid": (6, U32), "fsuid": (7, U32), "fsgid": (8, U32),
                           "securebits": (9, "[]SecureBitsType"), "caps": (10, "Capabilities"),
                           "user_ns": (11, "UserNamespace")},
    "BinaryProperties": {"setuid": (1, U32), "setgid": (2, U32),
                         "privileges_changed": (3, "[]ProcessPrivilegesChanged"), "file": (4, "FileProperties")},
    "ProcessExec": {"process": (1, "Process"), "parent": (2, "Process"), "ancestors": (3, "[]Process"),
                    "environment_variables": (4, "string")},
    "ProcessExit": {"process": (1, "Process"), "parent": (2, "Process"), "signal": (3, "string"),
                    "status": (4, "uint32"), "time": (5, TS), "ancestors": (6, "[]Process")},
    "ProcessKprobe": {"process": (1, "Process"), "parent": (2, "Process"), "function_name": (3, "string"),
                      "args": (4, "[]KprobeArgument"), "return": (5, "KprobeArgument"),
                      "action": (6, "KprobeAction"), "kernel_stack_trace": (7, "[]StackTraceEntry"),
                      "policy_name": (8, "string"), "return_action": (9, "KprobeAction"), "message": (10, "string"),
                      "tags": (11, "[]string"), "user_stack_trace": (12, "[]StackTraceEntry"),
                      "ancestors": (13, "[]Process")},
    "ProcessTracepoint": {"process": (1, "Process"), "parent": (2, "Process"), "subsys": (4, "string"),
                          "event": (5, "string"), "args": (6, "[]KprobeArgument"), "policy_name": (7, "string"),
                          "action": (8, "KprobeAction"), "message": (9, "string"), "tags": (10, "[]string"),
                          "ancestors": (11, "[]Process")},
    "ProcessUprobe": {"process": (1, "Process"), "parent": (2, "Process"), "path": (3, "string"),
                      "symbol": (4, "string"), "policy_name": (5, "string"), "message": (6, "string"),
                      "args": (7, "[]KprobeArgument"), "tags": (8, "[]string"), "ancestors": (9, "[]Process"),
                      "offset": (10, "uint64"), "ref_ctr_offset": (11, "uint64")},
    "ProcessLsm": {"process": (1, "Process"), "parent": (2, "Process"), "function_name": (3, "string"),
                   "policy_name": (5, "string"), "message": (6, "string"), "args": (7, "[]KprobeArgument"),
                   "action": (8, "KprobeAction"), "tags": (9, "[]string"), "ancestors": (10, "[]Process"),
                   "ima_hash": (11, "string")},
    "KprobeArgument": {"string_arg": (1, "string"), "int_arg": (2, "int32"), "skb_arg": (3, "KprobeSkb"),
                       "size_arg": (4, "uint64"), "bytes_arg": (5, "bytes"), "path_arg": (6, "KprobePath"),
                       "file_arg": (7, "KprobeFile"), "truncated_bytes_arg": (8, "KprobeTruncatedBytes"),
                       "sock_arg": (9, "KprobeSock"), "cred_arg": (10, "KprobeCred"), "long_arg": (11, "int64"),
                       "bpf_attr_arg": (12, "KprobeBpfAttr"), "perf_event_arg": (13, "KprobePerfEvent"),
                       "bpf_map_arg": (14, "KprobeBpfMap"), "uint_arg": (15, "uint32"),
                       "user_namespace_arg": (16, "KprobeUserNamespace"), "capability_arg": (17, "KprobeCapability"),
                       "label": (18, "string"), "process_credentials_arg": (19, "ProcessCredentials"),
                       "user_ns_arg": (20, "UserNamespace"), "module_arg": (21, "KernelModule"),
                       "kernel_cap_t_arg": (22, "string"), "cap_inheritable_arg": (23, "string"),
                       "cap_permitted_arg": (24, "string"), "cap_effective_arg": (25, "string"),
                       "linux_binprm_arg": (26, "KprobeLinuxBinprm"), "net_dev_arg": (27, "KprobeNetDev"),
                       "bpf_cmd_arg": (28, "BpfCmd"), "syscall_id": (29, "SyscallId"),
                       "sockaddr_arg": (30, "KprobeSockaddr")},
    "KprobeSock": {"family": (1, "string"), "type": (2, "string"), "protocol": (3, "string"), "mark": (4, "uint32"),
                   "priority": (5, "uint32"), "saddr": (6, "string"), "daddr": (7, "string"), "sport": (8, "uint32"),
                   "dport": (9, "uint32"), "cookie": (10, "uint64"), "state": (11, "string")},
    "KprobePath": {"mount": (1, "string"), "path": (2, "string"), "flags": (3, "string"), "permission": (4, "string")},
    "KprobeFile": {"mount": (1, "string"), "path": (2, "string"), "flags": (3, "string"), "permission": (4, "string")},
    "KprobeCred": {"permitted": (1, "[]CapabilitiesType"), "effective": (2, "[]CapabilitiesType"),
                   "inheritable": (3, "[]CapabilitiesType")},
    "KernelModule": {"name": (1, "string"), "signature_ok": (2, BOOLV), "tainted": (3, "[]TaintedBitsType")},
    "StackTraceEntry": {"address": (1, "uint64"), "offset": (2, "uint64"), "symbol": (3, "string"),
                        "module": (4, "string")},
    "GetHealthStatusRequest": {"event_set": (1, "[]HealthStatusType")},
    "HealthStatus": {"event": (1, "HealthStatusType"), "status": (2, "HealthStatusResult"), "details": (3, "string")},
    "GetHealthStatusResponse": {"health_status": (1, "[]HealthStatus")},
    "TracingPolicyStatus": {"id": (1, "uint64"), "name": (2, "string"), "namespace": (3, "string"),
                            "info": (4, "string"), "sensors": (5, "[]string"), "enabled": (6, "bool"),
                            "filter_id": (7, "uint64"), "error": (8, "string"), "state": (9, "TracingPolicyState"),
                            "kernel_memory_bytes": (10, "uint64"), "mode": (11, "TracingPolicyMode"),
                            "stats": (12, "TracingPolicyStats")},
    "TracingPolicyStats": {"action_counters": (1, "TracingPolicyActionCounters")},
    "TracingPolicyActionCounters": {"post": (1, "uint64"), "signal": (2, "uint64"), "monitor_signal": (3, "uint64"),
                                    "override": (4, "uint64"), "monitor_override": (5, "uint64"),
                                    "notify_enforcer": (6, "uint64"), "monitor_notify_enforcer": (7, "uint64"),
                                    "set": (8, "uint64"), "monitor_set": (9, "uint64")},
    "ListTracingPoliciesResponse": {"policies": (1, "[]TracingPolicyStatus")},
    "AddTracingPolicyRequest": {"yaml": (1, "string")},
    "DeleteTracingPolicyRequest": {"name": (1, "string"), "namespace": (2, "string")},
    "EnableTracingPolicyRequest": {"name": (1, "string"), "namespace": (2, "string")},
    "DisableTracingPolicyRequest": {"name": (1, "string"), "namespace": (2, "string")},
    "ConfigureTracingPolicyRequest": {"name": (1, "string"), "namespace": (2, "string"), "enable": (3, "bool"),
                                      "mode": (4, "TracingPolicyMode")},
    "SensorStatus": {"name": (1, "string"), "enabled": (2, "bool"), "collection": (3, "string")},
    "ListSensorsResponse": {"sensors": (1, "[]SensorStatus")},
    "EnableSensorRequest": {"name": (1, "string")},
    "DisableSensorRequest": {"name": (1, "string")},
    "RemoveSensorRequest": {"name": (1, "string")},
    "RuntimeHookRequest": {"createContainer": (1, "CreateContainer")},
    "CreateContainer": {"cgroupsPath": (1, "string"), "rootDir": (2, "string"),
                        "annotations": (3, "[]AnnotationsEntry"), "containerName": (4, "string"),
                        "containerID": (5, "string"), "podName": (6, "string"), "podUID": (7, "string"),
                        "podNamespace": (8, "string"), "containerImage": (9, "string")},
    "GetVersionResponse": {"version": (1, "string")},
    "GetInfoResponse": {"version": (1, "string"), "name": (2, "string"), "probes": (3, "[]Probe"),
                        "conf": (4, "[]ConfVal"), "build": (5, "BuildInfo")},
    "GetDebugRequest": {"flag": (1, "ConfigFlag"), "dump": (2, "DumpProcessCacheReqArgs")},
    "GetDebugResponse": {"flag": (1, "ConfigFlag"), "level": (2, "LogLevel"),
                         "processes": (3, "DumpProcessCacheResArgs")},
    "SetDebugRequest": {"flag": (1, "ConfigFlag"), "level": (2, "LogLevel")},
    "SetDebugResponse": {"flag": (1, "ConfigFlag"), "level": (2, "LogLevel")},
}

ENUMS: dict[str, dict[str, int]] = {
    "EventType": {"UNDEF": 0, "PROCESS_EXEC": 1, "PROCESS_EXIT": 5, "PROCESS_KPROBE": 9, "PROCESS_TRACEPOINT": 10,
                  "PROCESS_LOADER": 11, "PROCESS_UPROBE": 12, "PROCESS_THROTTLE": 27, "PROCESS_LSM": 28,
                  "PROCESS_USDT": 29, "TEST": 40000, "RATE_LIMIT_INFO": 40001},
    "KprobeAction": {"KPROBE_ACTION_UNKNOWN": 0, "KPROBE_ACTION_POST": 1, "KPROBE_ACTION_FOLLOWFD": 2,
                     "KPROBE_ACTION_SIGKILL": 3, "KPROBE_ACTION_UNFOLLOWFD": 4, "KPROBE_ACTION_OVERRIDE": 5,
                     "KPROBE_ACTION_COPYFD": 6, "KPROBE_ACTION_GETURL": 7, "KPROBE_ACTION_DNSLOOKUP": 8,
                     "KPROBE_ACTION_NOPOST": 9, "KPROBE_ACTION_SIGNAL": 10, "KPROBE_ACTION_TRACKSOCK": 11,
                     "KPROBE_ACTION_UNTRACKSOCK": 12, "KPROBE_ACTION_NOTIFYENFORCER": 13,
                     "KPROBE_ACTION_CLEANUPENFORCERNOTIFICATION": 14},
    "TracingPolicyState": {"TP_STATE_UNKNOWN": 0, "TP_STATE_ENABLED": 1, "TP_STATE_DISABLED": 2,
                           "TP_STATE_LOAD_ERROR": 3, "TP_STATE_ERROR": 4, "TP_STATE_LOADING": 5,
                           "TP_STATE_UNLOADING": 6},
    "TracingPolicyMode": {"TP_MODE_UNKNOWN": 0, "TP_MODE_ENFORCE": 1, "TP_MODE_MONITOR": 2,
                          "TP_MODE_MONITOR_ONLY": 3},
    "HealthStatusResult": {"HEALTH_STATUS_UNDEF": 0, "HEALTH_STATUS_RUNNING": 1, "HEALTH_STATUS_STOPPED": 2,
                           "HEALTH_STATUS_ERROR": 3},
    "HealthStatusType": {"HEALTH_STATUS_TYPE_UNDEF": 0, "HEALTH_STATUS_TYPE_STATUS": 1},
    "FieldFilterAction": {"INCLUDE": 0, "EXCLUDE": 1},
    "LogLevel": {"LOG_LEVEL_PANIC": 0, "LOG_LEVEL_FATAL": 1, "LOG_LEVEL_ERROR": 2, "LOG_LEVEL_WARN": 3,
                 "LOG_LEVEL_INFO": 4, "LOG_LEVEL_DEBUG": 5, "LOG_LEVEL_TRACE": 6},
    "ConfigFlag": {"CONFIG_FLAG_LOG_LEVEL": 0, "CONFIG_FLAG_DUMP_PROCESS_CACHE": 1},
    "SecureBitsType": {"SecBitNotSet": 0, "SecBitNoRoot": 1, "SecBitNoRootLocked": 2, "SecBitNoSetUidFixup": 4,
                       "SecBitNoSetUidFixupLocked": 8, "SecBitKeepCaps": 16, "SecBitKeepCapsLocked": 32,
                       "SecBitNoCapAmbientRaise": 64, "SecBitNoCapAmbientRaiseLocked": 128},
    "ProcessPrivilegesChanged": {"PRIVILEGES_CHANGED_UNSET": 0, "PRIVILEGES_RAISED_EXEC_FILE_CAP": 1,
                                 "PRIVILEGES_RAISED_EXEC_FILE_SETUID": 2, "PRIVILEGES_RAISED_EXEC_FILE_SETGID": 3},
    "TaintedBitsType": {"TAINT_UNSET": 0, "TAINT_PROPRIETARY_MODULE": 1, "TAINT_FORCED_MODULE": 2,
                        "TAINT_FORCED_UNLOAD_MODULE": 4, "TAINT_STAGED_MODULE": 1024,
                        "TAINT_OUT_OF_TREE_MODULE": 4096, "TAINT_UNSIGNED_MODULE": 8192,
                        "TAINT_KERNEL_LIVE_PATCH_MODULE": 32768, "TAINT_TEST_MODULE": 262144},
}

# Capability 1 is Tetragon's one name without the CAP_ prefix; the others are the kernel's.
CAPABILITIES = {"CAP_CHOWN": 0, "DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_KILL": 5, "CAP_SETUID": 7,
                "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_MODULE": 16, "CAP_SYS_PTRACE": 19,
                "CAP_SYS_ADMIN": 21, "CAP_SETFCAP": 31, "CAP_PERFMON": 38, "CAP_BPF": 39,
                "CAP_CHECKPOINT_RESTORE": 40}

# method -> (request, response, server streaming)
METHODS = {
    "GetEvents": ("GetEventsRequest", "GetEventsResponse", True),
    "GetHealth": ("GetHealthStatusRequest", "GetHealthStatusResponse", False),
    "AddTracingPolicy": ("AddTracingPolicyRequest", "AddTracingPolicyResponse", False),
    "DeleteTracingPolicy": ("DeleteTracingPolicyRequest", "DeleteTracingPolicyResponse", False),
    "ListTracingPolicies": ("ListTracingPoliciesRequest", "ListTracingPoliciesResponse", False),
    "ConfigureTracingPolicy": ("ConfigureTracingPolicyRequest", "ConfigureTracingPolicyResponse", False),
    "EnableTracingPolicy": ("EnableTracingPolicyRequest", "EnableTracingPolicyResponse", False),
    "DisableTracingPolicy": ("DisableTracingPolicyRequest", "DisableTracingPolicyResponse", False),
    "ListSensors": ("ListSensorsRequest", "ListSensorsResponse", False),
    "EnableSensor": ("EnableSensorRequest", "EnableSensorResponse", False),
    "DisableSensor": ("DisableSensorRequest", "DisableSensorResponse", False),
    "RemoveSensor": ("RemoveSensorRequest", "RemoveSensorResponse", False),
    "GetVersion": ("GetVersionRequest", "GetVersionResponse", False),
    "GetInfo": ("GetInfoRequest", "GetInfoResponse", False),
    "RuntimeHook": ("RuntimeHookRequest", "RuntimeHookResponse", False),
    "GetDebug": ("GetDebugRequest", "GetDebugResponse", False),
    "SetDebug": ("SetDebugRequest", "SetDebugResponse", False),
}

_FILES = (tg_events.DESCRIPTOR, tg_sensors.DESCRIPTOR, tg_tetragon.DESCRIPTOR)


def _message(name: str) -> Descriptor:
    found = [f.message_types_by_name[name] for f in _FILES if name in f.message_types_by_name]
    assert len(found) == 1, f"message {name}: {len(found)} definitions"
    return found[0]


def _enum(name: str) -> EnumDescriptor:
    for file in (*_FILES, *(d for f in _FILES for d in f.dependencies)):
        if name in file.enum_types_by_name:
            return file.enum_types_by_name[name]
    raise AssertionError(f"no enum {name}")


def _type(field: FieldDescriptor) -> str:
    kind = (field.message_type.name if field.message_type is not None
            else field.enum_type.name if field.enum_type is not None else _SCALARS[field.type])
    repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
    return f"[]{kind}" if repeated else kind


def test_every_file_is_package_tetragon_under_tetragons_file_names() -> None:
    """The descriptors name the files as Tetragon's do, for reflection clients that fetch them."""
    assert {f.name for f in _FILES} == {"tetragon/events.proto", "tetragon/sensors.proto", "tetragon/tetragon.proto"}
    assert {f.package for f in _FILES} == {"tetragon"}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_message_fields_are_tetragons(name: str) -> None:
    descriptor = _message(name)
    ours = {f.name: (f.number, _type(f)) for f in descriptor.fields if f.number not in TETRA_ADDITIONS}
    assert ours == MESSAGES[name]


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enum_values_are_tetragons(name: str) -> None:
    assert {v.name: v.number for v in _enum(name).values} == ENUMS[name]


def test_capability_names_and_numbers_are_tetragons() -> None:
    values = {v.name: v.number for v in _enum("CapabilitiesType").values}
    assert {name: values.get(name) for name in CAPABILITIES} == CAPABILITIES
    assert sorted(values.values()) == list(range(41))


def test_service_methods_are_tetragons() -> None:
    service = tg_sensors.DESCRIPTOR.services_by_name["FineGuidanceSensors"]
    assert service.full_name == "tetragon.FineGuidanceSensors"
    ours = {m.name: (m.input_type.name, m.output_type.name, m.server_streaming) for m in service.methods}
    assert ours == METHODS
    assert not any(m.client_streaming for m in service.methods)


def test_event_types_match_the_response_oneof() -> None:
    """Tetragon keeps EventType's numbers equal to GetEventsResponse's oneof field numbers."""
    oneof = {f.name.upper(): f.number for f in tg_events.GetEventsResponse.DESCRIPTOR.oneofs_by_name["event"].fields}
    types = {v.name: v.number for v in tg_events.EventType.DESCRIPTOR.values if v.name in oneof}
    assert types == oneof


def _wire(message: Any) -> bytes:
    return message.SerializeToString(deterministic=True)


def test_a_known_encoding_decodes() -> None:
    """An exec of pid 42 on node "n", encoded by hand from Tetragon's numbers (process_exec 1 >
    process 1 > pid 2, a UInt32Value; node_name 1000), decodes here: the numbers hold on the wire."""
    data = bytes([0x0A, 0x06, 0x0A, 0x04, 0x12, 0x02, 0x08, 0x2A]) + b"\xc2\x3e\x01n"
    event = tg_events.GetEventsResponse.FromString(data)
    assert event.process_exec.process.pid.value == 42 and event.node_name == "n"
    assert _wire(event) == data
