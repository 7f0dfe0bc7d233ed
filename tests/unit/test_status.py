"""One status, three readings: GetStatus's StatusResponse and the exit summary (metrics: test_metrics.py).

The agent fills tetra/status/model.py with numbers; each reader formats them.
These pin the formats the clients and scripts read: counters as JSON numbers,
policy states in Tetragon's words.
"""

import io
from typing import Any

from tetra.agent.runner import Summary
from tetra.api import tg_sensors
from tetra.api.plainjson import message_json
from tetra.api.status import status_message_of
from tetra.status.model import (AgentStatus, ExporterStatus, HookStatus, KernelCount, PolicyLoadState, PolicyStatus,
                                SensorStatus, StreamStatus, SubscriberStatus)
from tetra.cli.policy_api_cmd import state_word
from tetra.cli.status_cmd import render
from tetra.cli.tables import echo

LOADED = PolicyStatus(1, "open", "file:/p/open.yaml", PolicyLoadState.ENABLED, "monitor",
                      (HookStatus("security_file_open", "kprobe", "fentry", True, seen=12, posted=4),),
                      load_seconds=0.1234, origin="cache")
FAILED = PolicyStatus(2, "bad", "api", PolicyLoadState.LOAD_ERROR, "enforce",
                      (HookStatus("no_such_fn", "kprobe", "kprobe", False),), namespace="ns", error="no such function")


def _status(streams: StreamStatus | None) -> AgentStatus:
    return AgentStatus(
        node_name="node-1", uptime_seconds=12.34567,
        sensors=(SensorStatus("process", {"sched_process_exec": "tracepoint"}),),
        policies=(LOADED, FAILED),
        events={"process_exit": 3, "process_exec": 5}, rates={"process_exec": 0.26},
        pipeline={"records": 9, "decode_errors": 1, "sink_errors": 0},
        kernel=(KernelCount("exec", 5, 1), KernelCount("exit", 3, 2)), ringbuf_received=8,
        cache_size=4, cache_capacity=100, cache_evictions=0,
        exporters=(ExporterStatus("json", "/var/log/t.log", "ok", {"write_errors": 2, "lines_dropped": 3,
                                                                   "dropped_queue_full": 5, "queued": 7}, lines=True),
                   ExporterStatus("otlp", "collector:4317", "failing", {"send_errors": 9, "dropped_queue_full": 11}),
                   ExporterStatus("export-filters", "json, stdout, otlp", "ok", {"filtered_out": 6})),
        streams=streams,
        user_actions={("GetUrl", "done"): 2, ("GetUrl", "dropped_queue_full"): 1},
    )


def _printed(status: AgentStatus) -> dict[str, Any]:
    """What `tetra status -o json` prints: the agent's StatusResponse, through protobuf, as the CLI renders it."""
    return message_json(status_message_of(status))


def test_status_json_has_numbers_for_counters() -> None:
    streams = StreamStatus(dropped=4, convert_errors=1, subscribers=(SubscriberStatus(7, "unix:", 2, 10, 4, 3),),
                           cel_errors=5)
    out = _printed(_status(streams))
    assert out["uptime_seconds"] == 12.346
    assert [s["name"] for s in out["sensors"]] == ["process", "policy open"]  # enabled policies only
    loaded, failed = out["policies"]
    assert (loaded["id"], loaded["state"], loaded["mode"], loaded["tetra_load_seconds"], loaded["tetra_origin"]) == \
        ("1", "TP_STATE_ENABLED", "TP_MODE_MONITOR", 0.123, "cache")  # the id: Tetragon's uint64, a string there too
    assert loaded["tetra_hooks"] == [{"hook": "security_file_open", "mechanism": "kprobe", "attach": "fentry",
                                "return": True, "seen": 12, "posted": 4}]
    assert (failed["state"], failed["namespace"], failed["error"]) == ("TP_STATE_LOAD_ERROR", "ns", "no such function")
    assert failed["tetra_hooks"][0]["seen"] == 0  # not in the kernel: nothing counted
    assert out["events"] == [{"type": "process_exec", "total": 5, "rate": 0.3},
                             {"type": "process_exit", "total": 3, "rate": 0.0}]
    losses = out["losses"]
    assert losses["kernel"] == [{"opcode": "exec", "sent": 5, "lost": 1}, {"opcode": "exit", "sent": 3, "lost": 2}]
    assert (losses["kernel_lost"], losses["ringbuf_received"], losses["decode_errors"]) == (3, 8, 1)
    assert losses["pipeline"] == {"records": 9, "decode_errors": 1, "sink_errors": 0}
    assert (losses["subscriber_dropped"], losses["convert_errors"], losses["cel_errors"]) == (4, 1, 5)
    assert losses["exporter_errors"] == 2 + 3 + 5 + 11  # write errors and drops, never queued or sent
    assert out["exporters"][0]["counters"]["queued"] == 7
    assert out["process_cache"] == {"size": 4, "capacity": 100, "evictions": 0}
    assert out["subscribers"] == [{"id": 7, "peer": "unix:", "queued": 2, "sent": 10, "dropped": 4, "cel_errors": 3}]
    assert out["user_actions"] == [{"action": "GetUrl", "done": 2, "failed": 0, "rate_limited": 0,
                                    "dropped_queue_full": 1, "dropped_at_close": 0}]


def test_status_text_shows_user_action_requests_not_made_as_losses() -> None:
    out = io.StringIO()
    echo(render(_printed(_status(None))), out)
    lines = out.getvalue()
    assert "GetUrl requests failed (of 2 made)" in lines
    assert "GetUrl requests not made: dropped_queue_full" in lines


def test_without_an_api_server_the_streams_are_zero() -> None:
    out = _printed(_status(None))
    assert (out["losses"]["subscriber_dropped"], out["subscribers"]) == (0, [])


def test_one_state_vocabulary() -> None:
    """The summary's word is the enum's name without TP_STATE_, lower case: what Tetragon's list shows."""
    for state in PolicyLoadState:
        assert state.api_name in tg_sensors.TracingPolicyState.keys()
        assert state_word(state.api_name) == state.value
    assert [state.value for state in PolicyLoadState] == ["loading", "enabled", "disabled", "load_error"]


def test_the_exit_summary_counts_the_line_exporters() -> None:
    summary = Summary.of(_status(None)).as_dict()
    assert summary["pipeline"] == {"events": {"process_exit": 3, "process_exec": 5}, "records": 9,
                                   "decode_errors": 1, "sink_errors": 0}
    assert (summary["kernel_sent"], summary["kernel_lost"], summary["received"]) == (8, 3, 8)
    assert summary["kernel"] == {"exec": {"sent": 5, "lost": 1}, "exit": {"sent": 3, "lost": 2}}
    assert (summary["export_write_errors"], summary["export_lines_dropped"]) == (2, 3 + 5)
    loaded, failed = summary["policies"]
    assert loaded == {"id": 1, "name": "open", "source": "file:/p/open.yaml", "state": "enabled", "mode": "monitor",
                      "load_seconds": 0.123, "origin": "cache",
                      "hooks": [{"hook": "security_file_open", "mechanism": "kprobe", "attach": "fentry",
                                 "return": True, "seen": 12, "posted": 4}]}
    assert failed["hooks"] == [{"hook": "no_such_fn", "mechanism": "kprobe", "attach": "kprobe", "return": False}]
    assert (failed["namespace"], failed["error"]) == ("ns", "no such function")
