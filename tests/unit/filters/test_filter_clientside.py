"""tetra getevents options over a JSON-lines stream, as Tetragon's getevents filters stdin."""

import json

import pytest
from filter_samples import event, exec_of, kprobe, pod, process

from tetra.filters import ClientFilter, FilterError

IN_POD = exec_of(process("/usr/bin/curl", pod=pod("default", "xwing")))
HOST = exec_of(process("/usr/bin/wget"))


def test_no_option_passes_everything() -> None:
    f = ClientFilter()
    assert f.apply(HOST) is HOST
    assert f.apply(event("rate_limit_info", number_of_dropped_process_events=1)) is not None


@pytest.mark.parametrize("options, passed", [
    ({"event_types": ["PROCESS_EXEC"]}, [IN_POD, HOST]),
    ({"event_types": ["process_kprobe"]}, [kprobe()]),  # any case
    ({"namespaces": ["default"]}, [IN_POD]),
    ({"namespaces": ["default"], "host": True}, [IN_POD, HOST, kprobe()]),
    ({"host": True}, [HOST, kprobe()]),
    ({"pods": ["^xw"]}, [IN_POD]),
    ({"namespace_regexes": ["^def"]}, [IN_POD]),
    ({"namespace_regexes": ["^kube-"]}, []),
    ({"processes": ["wget", "^/usr/bin/curl$"]}, [IN_POD, HOST, kprobe()]),  # values OR
    ({"processes": ["curl"], "namespaces": ["default"]}, [IN_POD]),  # options AND
    ({"policy_names": ["files"]}, [kprobe()]),
])
def test_options(options: dict[str, object], passed: list[object]) -> None:
    f = ClientFilter(**options)  # type: ignore[arg-type]
    assert [e for e in (IN_POD, HOST, kprobe()) if f.apply(e) is not None] == passed


def test_fields() -> None:
    f = ClientFilter(processes=["curl"], include_fields=["process.binary,parent"], exclude_fields=["parent.pid"])
    out = f.apply(IN_POD)
    assert out is not None and out["process_exec"]["process"] == {"binary": "/usr/bin/curl"}
    assert "pid" not in out["process_exec"]["parent"] and "binary" in out["process_exec"]["parent"]


def test_stream_skips_and_counts_lines_that_are_not_events() -> None:
    lines = [json.dumps(IN_POD).encode(), b"", b"not json\n", b"[1]\n", json.dumps(HOST) + "\n", "  \n"]
    f = ClientFilter(event_types=["PROCESS_EXEC"], namespaces=["default"])
    assert list(f.stream(lines)) == [IN_POD]
    assert f.invalid_lines == 2


def test_every_bad_option_is_named() -> None:
    with pytest.raises(FilterError) as caught:
        ClientFilter(event_types=["PROCES_EXEC"], processes=["("], pods=["["], include_fields=["a..b"])
    assert caught.value.issues == [
        "--event-types: unknown event type 'PROCES_EXEC' (did you mean 'PROCESS_EXEC'?)",
        "--process: '(' is not a valid regular expression (RE2 syntax): missing )",
        "--pod: '[' is not a valid regular expression (RE2 syntax): missing ]",
        "--include-fields: invalid field path 'a..b'",
    ]
