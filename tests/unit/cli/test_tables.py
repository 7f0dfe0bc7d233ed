"""Tables never cut a name: what `tracingpolicy list`, `status` and `compile` print is pasteable."""

from pathlib import Path

from click.testing import CliRunner

from tetra.cli import tables
from tetra.cli.main import _register, cli
from tetra.cli.policy_api_cmd import policy_table

LONG = "sensitive-file-read-with-a-rather-long-name"
HOOKS = [{"hook": "__x64_sys_openat_and_then_some", "mechanism": "kprobe", "attach": "x", "seen": 3, "posted": 1},
         {"hook": "security_file_permission", "mechanism": "fentry", "attach": "y", "seen": 0, "posted": 0}]
POLICY = {"id": "1", "name": LONG, "namespace": "", "state": "TP_STATE_ENABLED", "mode": "TP_MODE_ENFORCE",
          "tetra_hooks": HOOKS, "info": "/etc/tetra/policies/" + LONG + ".yaml", "tetra_load_seconds": 0.05,
          "tetra_origin": "cache"}


def test_a_policy_table_piped_keeps_every_name_whole(capsys) -> None:  # type: ignore[no-untyped-def]
    tables.echo(policy_table([POLICY]))
    out = capsys.readouterr().out
    assert "…" not in out
    row = out.splitlines()[1]
    for whole in (LONG, "__x64_sys_openat_and_then_some (kprobe)", "security_file_permission (fentry)",
                  POLICY["info"]):
        assert whole in row, out
    assert len(out.splitlines()) == 2, "one line per policy, however wide"


def test_compile_emit_c_prints_the_c_alone_on_stdout(tmp_path: Path) -> None:
    _register()
    template = CliRunner().invoke(cli, ["tracingpolicy", "generate", "file-monitoring"]).output
    path = tmp_path / "p.yaml"
    path.write_text(template)
    done = CliRunner().invoke(cli, ["tracingpolicy", "compile", "--kernel", "all", "--emit-c", str(path)])
    assert done.exit_code == 0, done.output
    assert done.stdout.lstrip().startswith(("#", "/*")), done.stdout[:200]
    assert "MECHANISM" not in done.stdout
    assert "MECHANISM" in done.stderr and "policy " in done.stderr
    plain = CliRunner().invoke(cli, ["tracingpolicy", "compile", "--kernel", "all", str(path)])
    assert "MECHANISM" in plain.stdout and "#include" not in plain.stdout
    assert "…" not in plain.stdout
