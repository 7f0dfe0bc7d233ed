"""Every bad policy is rejected, and every policy with warnings loaded, with exactly the lines its
``.expected`` file holds.

Each ``bad/NAME.yaml`` sits beside ``bad/NAME.expected``: the complete report,
one ``file:line:col: path: message`` line per issue (warnings say
``warning:``), in file order. ``warn/NAME.yaml`` and ``warn/NAME.expected`` are
the same for policies Tetragon accepts but that are probably not what their
author meant: they load, and say why. Inputs too large to commit are generated
here.
"""

from pathlib import Path

import pytest

from tetra.policy import PolicyErrors, PolicyIssue, load_policies, load_policies_report, load_policies_text
from tetra.policy.limits import MAX_DOCUMENTS, MAX_FILE_BYTES, MAX_HOOKS, MAX_URL
from tetra.policy.values import check_url

HERE = Path(__file__).parent
BAD = sorted((HERE / "bad").glob("*.yaml"))
WARN = sorted((HERE / "warn").glob("*.yaml"))


def report(err: PolicyErrors) -> list[str]:
    return lines(err.errors + err.warnings)


def lines(issues: list[PolicyIssue]) -> list[str]:
    return [str(issue) for issue in sorted(issues, key=lambda issue: (issue.loc.line, issue.loc.column))]


@pytest.mark.parametrize(("fixtures", "at_least"), [(BAD, 30), (WARN, 5)], ids=("bad", "warn"))
def test_every_fixture_has_its_expected_report(fixtures: list[Path], at_least: int) -> None:
    assert len(fixtures) >= at_least
    expected = sorted(fixtures[0].parent.glob("*.expected"))
    assert [path.stem for path in expected] == [path.stem for path in fixtures]


@pytest.mark.parametrize("fixture", BAD, ids=lambda path: path.stem)
def test_bad_policy_reports_exactly_the_expected_lines(fixture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)
    with pytest.raises(PolicyErrors) as caught:
        load_policies(f"bad/{fixture.name}")
    assert report(caught.value) == fixture.with_suffix(".expected").read_text().splitlines()
    assert str(caught.value).splitlines() == [str(issue) for issue in caught.value.errors]


@pytest.mark.parametrize("fixture", WARN, ids=lambda path: path.stem)
def test_policy_with_warnings_loads_and_reports_exactly_the_expected_lines(
        fixture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)
    policies, warnings = load_policies_report(f"warn/{fixture.name}")
    assert len(policies) == 1
    assert lines(warnings) == fixture.with_suffix(".expected").read_text().splitlines()


def test_a_file_over_the_size_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"# padding\n" * (MAX_FILE_BYTES // 5))  # twice the cap: only the cap is read
    with pytest.raises(PolicyErrors) as caught:
        load_policies(huge)
    assert report(caught.value) == [f"{huge}:1:1: file is larger than the {MAX_FILE_BYTES} bytes (4 MiB) a "
                                    "policy file may have"]


def _policy(name: str, spec: str = "{}") -> str:
    return f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec: {spec}\n"


def test_more_documents_than_the_limit_is_an_error() -> None:
    text = "---\n".join(_policy(f"p{i}") for i in range(MAX_DOCUMENTS + 1))
    with pytest.raises(PolicyErrors) as caught:
        load_policies_text(text, "many.yaml")
    assert report(caught.value) == [f"many.yaml:{6 * MAX_DOCUMENTS + 1}:1: {MAX_DOCUMENTS + 1} documents, "
                                    f"at most {MAX_DOCUMENTS} are supported in one file"]


def test_more_hooks_than_the_limit_is_an_error() -> None:
    kprobes = ", ".join('{call: "sys_read"}' for _ in range(MAX_HOOKS // 2 + 1))
    tracepoints = ", ".join('{subsystem: sched, event: sched_switch}' for _ in range(MAX_HOOKS // 2 + 1))
    text = _policy("hooks", f"{{kprobes: [{kprobes}], tracepoints: [{tracepoints}]}}")
    with pytest.raises(PolicyErrors) as caught:
        load_policies_text(text, "hooks.yaml")
    assert report(caught.value) == [f"hooks.yaml:5:7: spec: {MAX_HOOKS + 2} hooks, at most {MAX_HOOKS} are "
                                    "supported in one policy (split it into several policies)"]
    too_many = ", ".join('{call: "sys_read"}' for _ in range(MAX_HOOKS + 1))
    with pytest.raises(PolicyErrors) as caught:
        load_policies_text(_policy("hooks", f"{{kprobes: [{too_many}]}}"), "hooks.yaml")
    assert report(caught.value) == [f"hooks.yaml:5:17: spec.kprobes: {MAX_HOOKS + 1} kprobes, at most "
                                    f"{MAX_HOOKS} are supported (none is dropped silently: remove some or split "
                                    "them up)"]


def test_text_that_is_not_utf8_is_reported_where_it_breaks() -> None:
    with pytest.raises(PolicyErrors) as caught:
        load_policies_text("apiVersion: x\nkind: \udcff\n", "odd.yaml")
    assert report(caught.value) == ["odd.yaml:2:7: not UTF-8 text: byte 0xff cannot start or continue a "
                                    "character (is this a binary file?)"]


def test_a_geturl_url_is_bounded_in_bytes() -> None:
    url = "http://example.com/" + "a" * (MAX_URL - len("http://example.com/"))
    assert check_url(url) is None
    assert check_url(url + "a") == f"the URL is {MAX_URL + 1} bytes long, at most {MAX_URL}"
