"""tetra's events as Tetragon's messages: every line of the recorded corpus (tests/replay/corpus,
what a live agent exported) is the protojson form of Tetragon's GetEventsResponse, field for field.

Parsing with ``ignore_unknown_fields=False`` proves the .proto covers every field tetra writes (a
field the messages lack fails the parse); printing the message back proves nothing is lost or
reshaped (enum names, wrappers, zeros that must stay). The policy status, log level and field
filter conversions of FineGuidanceSensors are checked here too, without an agent.
"""

import json
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.protobuf import json_format

from tetra.api import tg_events, tg_sensors
from tetra.api.convert import to_bytes, to_dict, to_message
from tetra.api.status import tracing_policy_status
from tetra.api.tetragon_service import _field_filter_json, log_level
from tetra.filters.fields import parse_field_filters
from tetra.decode.credentials import TETRAGON_CAPABILITIES
from tetra.status.model import HookStatus, PolicyLoadState, PolicyStatus

CORPUS = Path(__file__).parents[1] / "replay" / "corpus" / "corpus.json"


def _corpus() -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in CORPUS.read_bytes().splitlines() if line.strip()]


def test_the_corpus_has_every_event_type_tetra_records() -> None:
    kinds = {next(key for key in event if key.startswith("process_")) for event in _corpus()}
    assert {"process_exec", "process_exit", "process_kprobe", "process_tracepoint", "process_uprobe"} <= kinds


def test_every_corpus_line_parses_strictly_and_prints_back_the_same() -> None:
    for number, event in enumerate(_corpus(), 1):
        message = json_format.ParseDict(event, tg_events.GetEventsResponse(), ignore_unknown_fields=False)
        printed = json.loads(json_format.MessageToJson(message, preserving_proto_field_name=True))
        assert printed == event, f"line {number}"


def test_the_fast_conversion_equals_protobufs_and_survives_the_wire() -> None:
    """What the Broadcaster sends a FineGuidanceSensors client (convert.to_bytes) is ParseDict's message."""
    for number, event in enumerate(_corpus(), 1):
        expected = json_format.ParseDict(event, tg_events.GetEventsResponse())
        assert to_message(event) == expected, f"line {number}"
        received = tg_events.GetEventsResponse.FromString(to_bytes(event))
        assert to_dict(received) == event, f"line {number}"


def test_capabilities_go_out_as_tetragons_enum() -> None:
    """Every capability name tetra writes is a CapabilitiesType value, at the kernel's number."""
    event = {"process_exec": {"process": {"cap": {"effective": list(TETRAGON_CAPABILITIES)}}}}
    effective = to_message(event).process_exec.process.cap.effective
    assert list(effective) == list(range(len(TETRAGON_CAPABILITIES)))
    assert to_dict(to_message(event)) == event  # "DAC_OVERRIDE" and all


def test_a_policy_status_in_tetragons_terms() -> None:
    policy = PolicyStatus(7, "watch-open", "api", PolicyLoadState.ENABLED, "monitor",
                          (HookStatus("do_sys_openat2", "kprobe", "fentry", False, seen=9, posted=4),
                           HookStatus("sys_exit", "tracepoint", "raw", True, seen=3, posted=2)), namespace="ns")
    status = tracing_policy_status(policy)
    assert (status.id, status.name, status.namespace, status.info) == (7, "watch-open", "ns", "api")
    assert status.state == tg_sensors.TP_STATE_ENABLED and status.enabled
    assert status.mode == tg_sensors.TP_MODE_MONITOR
    assert list(status.sensors) == ["do_sys_openat2", "sys_exit"]
    assert status.stats.action_counters.post == 6
    assert [(h.hook, h.mechanism, h.seen, h.posted) for h in status.tetra_hooks] == [
        ("do_sys_openat2", "kprobe", 9, 4), ("sys_exit", "tracepoint", 3, 2)]
    actions = {("watch-open", "monitor", "KPROBE_ACTION_SIGKILL"): 2, ("watch-open", "enforce", "KPROBE_ACTION_SIGNAL"): 1,
               ("watch-open", "monitor", "KPROBE_ACTION_OVERRIDE"): 5, ("watch-open", "enforce", "KPROBE_ACTION_POST"): 6,
               ("other", "enforce", "KPROBE_ACTION_SIGKILL"): 9}
    counters = tracing_policy_status(policy, actions).stats.action_counters
    assert (counters.post, counters.signal, counters.monitor_signal, counters.override, counters.monitor_override) == (
        6, 1, 2, 0, 5)
    failed = tracing_policy_status(PolicyStatus(8, "bad", "api", PolicyLoadState.LOAD_ERROR, "enforce", error="no BTF"))
    assert failed.state == tg_sensors.TP_STATE_LOAD_ERROR and failed.error == "no BTF" and not failed.enabled


@pytest.mark.parametrize(("python", "tetragon"), [
    (logging.CRITICAL, "LOG_LEVEL_FATAL"), (logging.ERROR, "LOG_LEVEL_ERROR"), (logging.WARNING, "LOG_LEVEL_WARN"),
    (logging.INFO, "LOG_LEVEL_INFO"), (logging.DEBUG, "LOG_LEVEL_DEBUG"), (5, "LOG_LEVEL_TRACE")])
def test_log_levels_map_to_tetragons(python: int, tetragon: str) -> None:
    assert tg_sensors.LogLevel.Name(log_level(python)) == tetragon


def test_a_field_mask_becomes_the_paths_tetra_filters_read() -> None:
    message = tg_events.FieldFilter(event_set=["PROCESS_EXEC"], action="EXCLUDE")
    message.fields.paths.extend(["process.arguments", "parent"])
    as_json = _field_filter_json(message)
    assert as_json == {"event_set": ["PROCESS_EXEC"], "fields": "process.arguments,parent", "action": "EXCLUDE"}
    filters = parse_field_filters(orjson.dumps(as_json).decode(), "field_filters")
    event = {"process_exec": {"process": {"binary": "/bin/ls", "arguments": "-l"}, "parent": {"pid": 1}}}
    assert filters.apply(event) == {"process_exec": {"process": {"binary": "/bin/ls"}}}
