"""``tetra probe`` run for real, its lines checked against facts measured here.

Each cross-check looks at the kernel on its own (a file exists or not), so a
report that merely echoes config or version would fail where it guesses wrong.
The command runs in a subprocess, as a user runs it: no bcc state is shared
with pytest, and the exit code is the real one.
"""

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tetra.kernel.feature_advice import ADVICE

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: tetra probe loads BPF programs"),
]

_RUN_PROBE = "from tetra.cli.probe_cmd import probe; probe()"


def _probe(*args: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _RUN_PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        user=user,
        check=False,
    )


@pytest.fixture(scope="module")
def report() -> dict[str, dict[str, object]]:
    """The JSON report, keyed by feature name."""
    done = _probe("-o", "json")
    assert done.returncode == 0, done.stderr
    features = orjson.loads(done.stdout)["features"]
    return {feature["name"]: feature for feature in features}


def test_json_has_every_field_and_group(report: dict[str, dict[str, object]]) -> None:
    assert {feature["group"] for feature in report.values()} == {"kernel", "attach", "helpers"}
    for feature in report.values():
        explained = {"missing", "effect", "remedy"} if not feature["available"] else set()
        assert set(feature) == {"name", "group", "available", "detail"} | explained, feature
        assert isinstance(feature["available"], bool)
        assert feature["detail"]


def test_tracepoint_and_ring_buffer_work(report: dict[str, dict[str, object]]) -> None:
    assert report["tracepoint"]["available"], report["tracepoint"]
    assert report["ring buffer"]["available"], report["ring buffer"]


def test_btf_matches_the_file(report: dict[str, dict[str, object]]) -> None:
    assert report["BTF"]["available"] == Path("/sys/kernel/btf/vmlinux").exists()


def test_kprobe_matches_kprobe_events(report: dict[str, dict[str, object]]) -> None:
    has_kprobe_events = Path("/sys/kernel/tracing/kprobe_events").exists()
    assert report["kprobe"]["available"] == has_kprobe_events, report["kprobe"]


def test_cgroup_sock_addr_attaches_and_leaves_nothing(
    report: dict[str, dict[str, object]],
) -> None:
    assert report["cgroup sock_addr"]["available"], report["cgroup sock_addr"]
    leftovers = [
        path
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[2] == "cgroup2"
        for path in Path(line.split()[1]).glob("tetra-probe-*")
    ]
    assert leftovers == []


def test_table_is_the_default_output() -> None:
    done = _probe()
    assert done.returncode == 0, done.stderr
    for word in ("kernel", "attach", "helpers", "tracepoint", "✔"):
        assert word in done.stdout


def test_every_cross_is_explained(report: dict[str, dict[str, object]]) -> None:
    """A ✘ says what is missing, what tetra refuses or does instead, and what the operator can do."""
    assert set(ADVICE) == set(report) - {"release"}, "every feature that can be missing has its advice"
    done = _probe()
    missing = [name for name, feature in report.items() if not feature["available"]]
    if not missing:
        assert "What the ✘ lines mean" not in done.stdout
    for name in missing:
        advice = ADVICE[name]
        assert f"✘ {name}: missing {advice.missing}" in done.stdout
        assert f"without it: {advice.effect}" in done.stdout and f"to do: {advice.remedy}" in done.stdout


def test_refuses_without_root(nobody: int) -> None:
    done = _probe(user=nobody)
    assert done.returncode == 1
    assert "needs root" in done.stderr
