"""``tetra tracingpolicy validate`` as a user runs it: reports, exit codes, JSON."""

from pathlib import Path

import orjson
from click.testing import CliRunner

from tetra.cli.main import _register, cli

HERE = Path(__file__).parent


def run(*args: str) -> tuple[int, str]:
    _register()
    result = CliRunner().invoke(cli, ["tracingpolicy", "validate", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_valid_files_print_ok_with_their_policies_and_exit_0(monkeypatch: object) -> None:
    code, output = run(str(HERE / "good" / "multi_document.yaml"), str(HERE / "good" / "fd_install.yaml"))
    assert code == 0
    assert output.splitlines() == [
        f"{HERE / 'good' / 'multi_document.yaml'}: ok (2 policies: mount-example, web-exec)",
        f"{HERE / 'good' / 'fd_install.yaml'}: ok (1 policy: fd-install)",
    ]
    assert "\x1b[" not in output  # colors only on a terminal


def test_an_invalid_file_prints_every_issue_and_exits_1(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(HERE)
    code, output = run("bad/rate_limit.yaml", "good/fd_install.yaml")
    assert code == 1
    assert output.splitlines() == [
        *(HERE / "bad" / "rate_limit.expected").read_text().splitlines(),
        "bad/rate_limit.yaml: invalid (3 errors, 1 warning)",
        "good/fd_install.yaml: ok (1 policy: fd-install)",
    ]


def test_json_report(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(HERE)
    code, output = run("-o", "json", "bad/duplicate_key.yaml", "good/fd_install.yaml")
    assert code == 1
    assert orjson.loads(output) == {"files": [
        {"file": "bad/duplicate_key.yaml", "valid": False, "policies": [], "warnings": [], "errors": [
            {"file": "bad/duplicate_key.yaml", "line": 9, "column": 5, "path": "spec.kprobes[0]",
             "message": "duplicate key 'call' (first at line 7)", "severity": "error"}]},
        {"file": "good/fd_install.yaml", "valid": True, "policies": ["fd-install"], "errors": [], "warnings": []},
    ]}


def test_an_unreadable_file_is_a_report_not_a_traceback(tmp_path: Path) -> None:
    code, output = run(str(tmp_path / "nope.yaml"))
    assert code == 1
    assert output.splitlines() == [f"{tmp_path / 'nope.yaml'}:1:1: cannot read: No such file or directory",
                                   f"{tmp_path / 'nope.yaml'}: invalid (1 error)"]
