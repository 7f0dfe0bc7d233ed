"""ExportChain: the agent's filter flags together, in Tetragon's order, with their counters."""

import copy

import pytest
from filter_samples import exec_of, kprobe, process

from tetra.filters import ExportChain, FilterError

PASSWORD = r'{"redact": ["--password=(\\S+)"]}'


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_nothing_configured_passes_the_event_itself() -> None:
    chain = ExportChain.from_flags(node_name="n")
    ev = exec_of()
    assert chain.process(ev) is ev
    assert chain.ticks(1e9) == []
    assert (chain.filtered_out, chain.rate_limited) == (0, 0)


def test_allow_deny_count_what_they_drop() -> None:
    chain = ExportChain.from_flags(node_name="n", allowlist='{"event_set": ["PROCESS_EXEC"]}',
                                   denylist='{"binary_regex": ["wget"]}')
    assert chain.process(exec_of()) is not None
    assert chain.process(kprobe()) is None
    assert chain.process(exec_of(process("/usr/bin/wget"))) is None
    assert chain.filtered_out == 2


def test_filters_see_redacted_arguments_as_in_tetragon() -> None:
    """Tetragon redacts in its process cache, before any filter runs."""
    secret = exec_of(process("/usr/bin/mysql", "--password=hunter2"))
    chain = ExportChain.from_flags(node_name="n", redaction_filters=PASSWORD,
                                   allowlist='{"arguments_regex": ["hunter2"]}')
    assert chain.process(secret) is None
    chain = ExportChain.from_flags(node_name="n", redaction_filters=PASSWORD,
                                   allowlist='{"arguments_regex": ["=\\\\*{5}$"]}')
    assert chain.process(secret)["process_exec"]["process"]["arguments"] == "--password=*****"  # type: ignore[index]


def test_redaction_then_field_filters_on_a_copy() -> None:
    chain = ExportChain.from_flags(node_name="n", redaction_filters=PASSWORD, allowlist='{"binary_regex": ["mysql"]}',
                                   field_filters='{"fields": "process.arguments"}')
    ev = exec_of(process("/usr/bin/mysql", "-u me --password=hunter2"))
    original = copy.deepcopy(ev)
    assert chain.process(ev)["process_exec"] == {"process": {"arguments": "-u me --password=*****"}}  # type: ignore[index]
    assert ev == original


def test_rate_limit_counts_drops_and_reports_them_unfiltered() -> None:
    clock = Clock()
    chain = ExportChain.from_flags(node_name="node", rate_limit=2, allowlist='{"event_set": ["PROCESS_EXEC"]}',
                                   field_filters='{"fields": "process.pid"}', clock=clock)
    results = [chain.process(exec_of()) for _ in range(5)]
    assert [r is not None for r in results] == [True, True, False, False, False]
    assert chain.process(kprobe()) is None  # filtered out: does not take a token
    assert (chain.filtered_out, chain.rate_limited) == (1, 3)
    assert chain.ticks(159.0) == []
    (report,) = chain.ticks(160.0)
    assert report["rate_limit_info"] == {"number_of_dropped_process_events": 3}  # field filters not applied
    assert report["node_name"] == "node"
    clock.now = 130.0  # a token is back after 30 s
    assert chain.process(exec_of()) == {"process_exec": {"process": {"pid": 100}}, "node_name": "node",
                                        "time": exec_of()["time"]}


def test_negative_rate_limit_means_none() -> None:
    chain = ExportChain.from_flags(node_name="n", rate_limit=-1)
    assert all(chain.process(exec_of()) is not None for _ in range(1000))


def test_problems_in_every_flag_are_reported_together() -> None:
    with pytest.raises(FilterError) as caught:
        ExportChain.from_flags(node_name="n", allowlist='{"binary_regex": "x"}', denylist="{",
                               redaction_filters='{"redact": ["x"]}', field_filters='{"fields": 1}')
    assert caught.value.issues == [
        '--export-allowlist:1: binary_regex: expected a list of strings, got "x"',
        "--export-denylist:1: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
        "--redaction-filters:1: redact: 'x' has no capture group, so it would redact nothing",
        "--field-filters:1: fields: expected a string of comma-separated paths, got 1",
    ]


def test_pid_set_is_enabled_for_every_flag_at_once() -> None:
    with pytest.raises(FilterError, match="--export-denylist:1: pid_set: refused"):
        ExportChain.from_flags(node_name="n", denylist='{"pid_set": [1]}')
    chain = ExportChain.from_flags(node_name="n", denylist='{"pid_set": [1]}', enable_pid_set=True)
    assert chain.process(exec_of(process(pid=5), parent=process(pid=1))) is None
