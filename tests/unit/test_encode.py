"""encode(): one valid UTF-8 JSON line per event, whatever the strings hold."""

import json

import pytest

from tetra.errors import ExportError
from tetra.export.encode import encode

EXEC = {
    "process_exec": {
        "process": {
            "exec_id": "aG9zdDoxNzAwMDAwMDAwMDAwMDAwMDAwOjEyMw==",
            "pid": 123,
            "uid": 0,
            "cwd": "/root",
            "binary": "/usr/bin/curl",
            "arguments": "https://example.org",
            "flags": "execve clone",
            "start_time": "2026-11-26T10:00:00.123456789Z",
            "auid": 4294967295,
            "tid": 123,
        },
        "parent": {"pid": 1, "binary": "/sbin/init"},
    },
    "node_name": "host",
    "time": "2026-11-26T10:00:00.123456789Z",
}


def _one_line(data: bytes) -> object:
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    return json.loads(data.decode("utf-8"))


def test_round_trip_keeps_keys_and_order() -> None:
    data = encode(EXEC)
    assert _one_line(data) == EXEC
    assert data.startswith(b'{"process_exec":{"process":{"exec_id":')
    assert b" " not in data.split(b'"arguments"')[0]  # compact, no spaces between tokens


def test_non_ascii_is_written_as_utf8_not_escaped() -> None:
    event = {"process_exec": {"process": {"binary": "/usr/bin/ünï", "arguments": "日本語 🚀 café"}}}
    data = encode(event)
    assert "日本語 🚀 café".encode() in data
    assert b"\\u" not in data
    assert _one_line(data) == event


@pytest.mark.parametrize(
    "text",
    ["a\nb", "a\r\nb", "tab\there", "\x00nul", "\x1b[31mred", "quote\" and \\ backslash", "\u2028\u2029", "\x7f\x85"],
)
def test_weird_strings_stay_on_one_line_and_round_trip(text: str) -> None:
    event = {"process_exec": {"process": {"arguments": text}}}
    assert _one_line(encode(event)) == event


def test_bytes_become_base64_like_protojson() -> None:
    event = {"process_kprobe": {"args": [{"bytes_arg": b"\x00\xffhi"}]}}
    assert _one_line(encode(event)) == {"process_kprobe": {"args": [{"bytes_arg": "AP9oaQ=="}]}}


def test_lone_surrogates_are_replaced_not_fatal() -> None:
    # "\udcc3\udca9" is "é" escaped by surrogateescape; "\ud800" is a bare surrogate.
    event = {"process_exec": {"process": {"binary": "/tmp/caf\udcc3\udca9", "arguments": "x\ud800y"}}}
    decoded = _one_line(encode(event))
    assert decoded == {"process_exec": {"process": {"binary": "/tmp/café", "arguments": "x\ufffdy"}}}


def test_big_integers_become_strings() -> None:
    decoded = _one_line(encode({"n": 2**70, "ok": 2**64 - 1, "neg": -(2**63), "b": True, "s": "\ud800"}))
    assert decoded == {"n": str(2**70), "ok": 2**64 - 1, "neg": -(2**63), "b": True, "s": "\ufffd"}


def test_unserialisable_value_is_an_export_error() -> None:
    with pytest.raises(ExportError):
        encode({"bad": {1, 2}})
