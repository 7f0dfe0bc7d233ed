"""--field-filters and getevents -f/-F: which fields stay, per event type, without touching the input."""

import copy
from typing import Any

import pytest
from filter_samples import TIME, event, exec_of, kprobe

from tetra.filters import FilterError, apply_fields, parse_field_filters

Event = dict[str, Any]


def apply(text: str, ev: Event) -> Event:
    original = copy.deepcopy(ev)
    out = parse_field_filters(text, "ff").apply(ev)
    assert ev == original  # the input is never modified: sinks share it
    return out


def test_include_keeps_only_the_paths_and_the_envelope() -> None:
    out = apply('{"fields": "process.binary,process.arguments,parent.binary", "action": "INCLUDE"}', exec_of())
    assert out == {"process_exec": {"process": {"binary": "/usr/bin/curl", "arguments": "https://ebpf.io"},
                                    "parent": {"binary": "/bin/bash"}},
                   "node_name": "node", "time": TIME}


def test_include_is_the_default_action() -> None:
    assert apply('{"fields": "parent"}', exec_of()) == {"process_exec": {"parent": exec_of()["process_exec"]["parent"]},
                                                         "node_name": "node", "time": TIME}


def test_exclude_drops_the_paths() -> None:
    out = apply('{"fields": "parent,process.exec_id,process.flags", "action": "EXCLUDE"}', exec_of())
    assert out["process_exec"] == {"process": {"pid": 100, "uid": 0, "binary": "/usr/bin/curl",
                                               "arguments": "https://ebpf.io"}}


def test_paths_into_lists_apply_to_each_item() -> None:
    ev = kprobe(args=[{"file_arg": {"path": "/a", "flags": ""}, "label": "f"}, {"int_arg": 3}])
    out = apply('{"fields": "args.file_arg.path,function_name"}', ev)
    assert out["process_kprobe"] == {"function_name": "security_file_open",
                                     "args": [{"file_arg": {"path": "/a"}}, {}]}


def test_a_whole_field_covers_its_parts_in_either_order() -> None:
    expected = {"process": exec_of()["process_exec"]["process"]}
    assert apply('{"fields": "process.binary,process"}', exec_of())["process_exec"] == expected
    assert apply('{"fields": "process,process.binary"}', exec_of())["process_exec"] == expected


def test_missing_paths_and_paths_below_scalars() -> None:
    out = apply('{"fields": "process.pod.name,process.pid.value,nothing"}', exec_of())
    assert out["process_exec"] == {"process": {"pid": 100}}  # the scalar is kept whole, as fieldmask-utils does


def test_event_set_and_invert() -> None:
    only_exec = '{"fields": "process.binary", "event_set": ["PROCESS_EXEC"]}'
    assert apply(only_exec, exec_of())["process_exec"] == {"process": {"binary": "/usr/bin/curl"}}
    assert apply(only_exec, kprobe()) == kprobe()
    all_but_exec = ('{"fields": "process.exec_id,process.parent_exec_id", "event_set": ["PROCESS_EXEC"], '
                    '"invert_event_set": true, "action": "INCLUDE"}')
    assert apply(all_but_exec, exec_of()) == exec_of()
    assert apply(all_but_exec, kprobe())["process_kprobe"] == {"process": {"exec_id": "aG9zdDox100"}}


def test_invert_without_event_set_applies_everywhere() -> None:
    assert apply('{"fields": "time", "invert_event_set": true, "action": "EXCLUDE"}', exec_of()) == exec_of()
    assert "process" not in apply('{"fields": "process", "invert_event_set": true, "action": "EXCLUDE"}',
                                  exec_of())["process_exec"]


def test_filters_chain_and_exclusion_wins() -> None:
    text = ('{"fields": "process", "action": "INCLUDE"}\n'
            '{"fields": "process.arguments", "action": "EXCLUDE"}\n'
            '{"fields": "process.arguments,process.binary", "action": "INCLUDE"}')
    assert apply(text, exec_of())["process_exec"] == {"process": {"binary": "/usr/bin/curl"}}


def test_camel_case_paths_and_numeric_actions() -> None:
    out = apply('{"fields": "process.execId, process.parentExecId", "action": 0}', exec_of())
    assert out["process_exec"] == {"process": {"exec_id": "aG9zdDox100"}}
    assert "parent" not in apply('{"fields": "parent", "action": 1}', exec_of())["process_exec"]


def test_an_unfiltered_event_is_returned_as_it_is() -> None:
    ev = exec_of()
    assert parse_field_filters('{"fields": "x", "event_set": ["PROCESS_KPROBE"]}', "ff").apply(ev) is ev
    assert parse_field_filters("", "ff").apply(ev) is ev
    odd = {"unknown_kind": {}, "time": TIME}
    assert parse_field_filters('{"fields": "x"}', "ff").apply(odd) is odd


def test_apply_fields_as_getevents_does() -> None:
    ev = exec_of()
    assert apply_fields(ev, ["process.binary,process.pid", "parent.binary"], None)["process_exec"] == {
        "process": {"pid": 100, "binary": "/usr/bin/curl"}, "parent": {"binary": "/bin/bash"}}
    assert apply_fields(ev, ["process"], ["process.arguments"])["process_exec"]["process"] == {
        k: v for k, v in ev["process_exec"]["process"].items() if k != "arguments"}
    assert apply_fields(ev, None, ["parent"])["process_exec"] == {"process": ev["process_exec"]["process"]}
    assert apply_fields(ev, None, None) is ev
    assert apply_fields(event("rate_limit_info", number_of_dropped_process_events=1), ["x"], None)[
        "rate_limit_info"] == {}


def test_apply_fields_rejects_bad_paths() -> None:
    with pytest.raises(FilterError) as caught:
        apply_fields(exec_of(), ["process..binary"], ["parent.", "ok"])
    assert caught.value.issues == ["--include-fields: invalid field path 'process..binary'",
                                   "--exclude-fields: invalid field path 'parent.'"]


@pytest.mark.parametrize("text, message", [
    ('{"event_set": ["PROCESS_EXEC"]}',
     'ff:1: a field filter needs \'fields\' (comma-separated paths such as "process.binary")'),
    ('{"fields": ["process"]}', 'ff:1: fields: expected a string of comma-separated paths, got ["process"]'),
    ('{"fields": "process.bin-ary"}', "ff:1: fields: invalid field path 'process.bin-ary': bad part 'bin-ary'"),
    ('{"fields": ""}', "ff:1: fields: invalid field path ''"),
    ('{"fields": "process", "action": "DROP"}', 'ff:1: action: expected "INCLUDE" or "EXCLUDE", got "DROP"'),
    ('{"fields": "process", "action": true}', 'ff:1: action: expected "INCLUDE" or "EXCLUDE", got true'),
    ('{"fields": "process", "action": []}', 'ff:1: action: expected "INCLUDE" or "EXCLUDE", got []'),
    ('{"fields": "process", "invert_event_set": 1}', "ff:1: invert_event_set: expected true or false, got 1"),
    ('{"fields": "process", "event_set": ["PROCESS_EXCE"]}',
     "ff:1: event_set: unknown event type 'PROCESS_EXCE' (did you mean 'PROCESS_EXEC'?)"),
    ('{"field": "process"}\n', "ff:1: unknown key 'field' (did you mean 'fields'?)\n"
                               "ff:1: a field filter needs 'fields' (comma-separated paths such as \"process.binary\")"),
])
def test_messages(text: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_field_filters(text, "ff")
    assert str(caught.value) == message
