"""`tetra agent --cgroup-rate EVENTS,INTERVAL`, from the command line and from --config-dir (the
file Tetragon's ConfigMap names ``cgroup-rate``): what it sets, and a clear refusal of what it cannot.

As tests/unit/cli/test_agent_config.py: the real command, with build_agent replaced by one that
records the AgentConfig and stops.
"""

from pathlib import Path

import pytest

from tests.unit.cli.test_agent_config import _config, _config_dir, _no_agent, _run  # noqa: F401 (autouse)
from tetra.process.throttle import CgroupRate


def test_unset_or_empty_is_no_limit() -> None:
    assert _config().cgroup_rate is None
    assert _config("--cgroup-rate", "").cgroup_rate is None


@pytest.mark.parametrize(("value", "events", "interval_ns"), [
    ("1000,1s", 1000, 10**9),
    ("20,1s", 20, 10**9),
    ("5,250ms", 5, 250_000_000),
    ("100,1m30s", 100, 90 * 10**9),
    ("7, 2", 7, 2 * 10**9),  # bare seconds, as tetra's other durations
])
def test_events_and_interval(value: str, events: int, interval_ns: int) -> None:
    assert _config("--cgroup-rate", value).cgroup_rate == CgroupRate(events, interval_ns)


@pytest.mark.parametrize(("value", "message"), [
    ("1000", "'1000': expected EVENTS,INTERVAL such as 1000,1s"),
    ("1s,1000", "'1s,1000': expected EVENTS,INTERVAL such as 1000,1s"),
    ("-5,1s", "'-5,1s': expected EVENTS,INTERVAL such as 1000,1s"),
    ("10,", "'' is not a duration such as 30s, 15m or 1h"),
    ("10,1x", "'1x' is not a duration such as 30s, 15m or 1h"),
    ("10,1s,2s", "'1s,2s' is not a duration such as 30s, 15m or 1h"),
    ("0,1s", "'0,1s': 0 events: the limit must be at least 1 (leave the flag out to disable)"),
    ("10,500us", "'500us' is not a duration such as 30s, 15m or 1h"),
    ("10,0.5ms", "'10,0.5ms': the interval must be between 1ms and 1h"),
    ("10,2h", "'10,2h': the interval must be between 1ms and 1h"),
])
def test_a_bad_value_is_refused_with_why(value: str, message: str) -> None:
    result = _run("--cgroup-rate", value)
    assert result.exit_code == 2
    assert f"Invalid value for '--cgroup-rate': {message}" in result.output


def test_from_config_dir(tmp_path: Path) -> None:
    assert _config("--config-dir", str(_config_dir(tmp_path, cgroup_rate="50,2s"))).cgroup_rate == \
        CgroupRate(50, 2 * 10**9)


def test_a_bad_config_dir_value_names_its_file(tmp_path: Path) -> None:
    root = _config_dir(tmp_path, cgroup_rate="fast")
    result = _run("--config-dir", str(root))
    assert result.exit_code == 2
    assert "cgroup-rate" in result.output and "expected EVENTS,INTERVAL" in result.output

