"""Golden tests: the recorded corpus replayed without root is what the live agent exported, byte for byte.

tests/replay/record.py recorded tests/replay/corpus/ on a real kernel: the ring
records a live agent read, and the JSON lines and compact lines it wrote at the
same time. Replaying the records with the same flags through ``tetra replay``
(the agent's pipeline, filters and exporters) must give the same bytes; so the
event path can be rebuilt and checked against what tetra exports today.
"""

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from tetra._speed import PURE_PYTHON_ENV, lines_module
from tetra.cli.replay_cmd import replay

CORPUS = Path(__file__).parents[1] / "replay" / "corpus"
NAME = "corpus"


def _flags() -> list[str]:
    return json.loads((CORPUS / f"{NAME}.flags").read_text())


def _replay(*args: str) -> Any:
    result = CliRunner().invoke(replay, [str(CORPUS / f"{NAME}.rec"), *_flags(), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(autouse=True, params=["compiled", "pure"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test on both event paths: the compiled one (tetra/_speed) and pure Python."""
    monkeypatch.setenv(PURE_PYTHON_ENV, "1" if request.param == "pure" else "0")
    if request.param == "compiled" and lines_module() is None:
        pytest.skip("tetra/_speed is not built (scripts/build_speed.sh)")
    return str(request.param)


@pytest.fixture(scope="module")
def golden() -> list[bytes]:
    return (CORPUS / f"{NAME}.json").read_bytes().splitlines(keepends=True)


def test_json_lines_are_the_live_agents(tmp_path: Path, golden: list[bytes]) -> None:
    out = tmp_path / "events.json"
    _replay("-o", "none", "--export-filename", str(out))
    replayed = out.read_bytes().splitlines(keepends=True)
    assert len(replayed) == len(golden)
    for number, (got, want) in enumerate(zip(replayed, golden), 1):
        assert got == want, f"line {number} differs"


def test_compact_lines_are_the_live_agents() -> None:
    result = _replay("-o", "compact", "--color", "never")
    assert result.stdout == (CORPUS / f"{NAME}.compact").read_text()


def test_summary_counts_what_was_replayed() -> None:
    summary = json.loads(_replay("-o", "none").stderr.splitlines()[-1])["summary"]
    assert summary["diverged"] == 0
    assert summary["received"] == summary["pipeline"]["records"] > 0
    assert summary["pipeline"]["decode_errors"] == 0


def test_the_corpus_holds_every_case(golden: list[bytes]) -> None:
    """What the corpus was recorded for is in it (so a re-recording that misses a case fails here)."""
    events = [orjson.loads(line) for line in golden]
    kinds = {next(k for k in e if k not in ("node_name", "time")) for e in events}
    assert {"process_exec", "process_exit", "process_kprobe", "process_tracepoint", "process_uprobe"} <= kinds
    execs = [e["process_exec"]["process"] for e in events if "process_exec" in e]
    assert any("truncArgs" in p["flags"] for p in execs)
    assert any("\\xe9" in p.get("arguments", "") for p in execs)  # non-UTF-8 argv, escaped
    exits = [e["process_exit"] for e in events if "process_exit" in e]
    assert {"SIGTERM", "SIGKILL"} <= {x.get("signal") for x in exits}
    assert any(x.get("status") == 3 for x in exits)
    policy = [e[k] for e in events for k in ("process_kprobe", "process_tracepoint", "process_uprobe") if k in e]
    keys = {key for p in policy for arg in p.get("args", []) for key in arg}
    assert {"int_arg", "string_arg", "file_arg", "bytes_arg", "size_arg", "sockaddr_arg", "sock_arg",
            "label"} <= keys
    assert {p["action"] for p in policy} == {"KPROBE_ACTION_POST", "KPROBE_ACTION_SIGKILL"}
    assert any(p.get("policy_mode") == "monitor" for p in policy)
    assert any("return" in p for p in policy) and any("tags" in p and "message" in p for p in policy)


def test_grpc_conversion_round_trips_each_line(golden: list[bytes]) -> None:
    """What a GetEvents client receives of each line converts back to the same event (the same
    fields and values; protobuf orders keys by field number, the export by how events are built)."""
    from tetra.api import tg_events
    from tetra.api.convert import to_bytes, to_dict

    for number, line in enumerate(golden, 1):
        event = orjson.loads(line)
        assert to_dict(tg_events.GetEventsResponse.FromString(to_bytes(event))) == event, f"line {number}"


def test_cluster_name_is_the_last_top_level_field_of_every_line(tmp_path: Path) -> None:
    """--cluster-name: each line is the one without it with cluster_name after node_name and time
    (where Tetragon's GetEventsResponse has it), whether the line is spliced from the event's own
    line or encoded from the new dict a redaction filter made (the digits of arguments); without
    the flag the lines stay the golden ones (test_json_lines_are_the_live_agents)."""
    def lines(*args: str) -> list[bytes]:
        out = tmp_path / "events.json"
        out.unlink(missing_ok=True)
        _replay("-o", "none", "--export-filename", str(out), *args)
        return out.read_bytes().splitlines(keepends=True)

    for extra in ((), ("--redaction-filters", '{"redact": ["(\\\\d+)"]}')):
        plain, named = lines(*extra), lines("--cluster-name", 'c1 "east"', *extra)
        assert len(named) == len(plain) > 0
        for number, (got, want) in enumerate(zip(named, plain), 1):
            assert got == want[:-2] + b',"cluster_name":"c1 \\"east\\""}\n', f"line {number} differs"
            assert list(orjson.loads(got))[-3:] == ["node_name", "time", "cluster_name"]
    assert b"*****" in b"".join(plain)  # the redaction did change events
