"""Tetragon's client flags: before or after the command, from TETRA_* variables, durations; `tp`; version -s."""

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from tetra.cli.main import _register, cli
from tetra.cli.options import client_options, global_options


@click.group()
@global_options
def root(**_flags: Any) -> None:
    """A group with tetra's global flags, around a command that shows what it was given."""


@root.command()
@client_options(timeout=60)
def show(client: Any) -> None:
    click.echo(repr(client))


def _client(*args: str, env: dict[str, str] | None = None) -> str:
    done = CliRunner().invoke(root, list(args), env=env or {}, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.output


def test_defaults_and_a_command_default_timeout() -> None:
    shown = _client("show")
    assert "address='unix:///var/run/tetra/tetra.sock'" in shown and "timeout=60" in shown and "retries=1" in shown


def test_flags_before_or_after_the_command_and_from_the_environment() -> None:
    assert "address='unix:///before'" in _client("--server-address", "unix:///before", "show")
    assert "address='unix:///after'" in _client("show", "--server-address", "unix:///after")
    env = {"TETRA_SERVER_ADDRESS": "unix:///env", "TETRA_TIMEOUT": "1m30s", "TETRA_RETRIES": "3",
           "TETRA_TLS_CA_CERT_FILES": "a.pem,b.pem"}
    shown = _client("show", env=env)
    assert "address='unix:///env'" in shown and "timeout=90.0" in shown and "retries=3" in shown
    assert "tls_ca_files=('a.pem', 'b.pem')" in shown
    assert "address='unix:///before'" in _client("--server-address", "unix:///before", "show", env=env)
    assert "address='unix:///after'" in _client("--server-address", "unix:///before", "show",
                                                "--server-address", "unix:///after", env=env)


def test_durations_and_tetragons_tls_spelling() -> None:
    assert "timeout=30.0" in _client("--timeout", "30s", "show")
    assert "timeout=0.5" in _client("show", "--timeout", "500ms")
    assert "tls_ca_files=('ca.pem',)" in _client("--tls-ca-cert-files", "ca.pem", "show")
    assert "tls_ca_files=('old.pem',)" in _client("show", "--tls-ca-file", "old.pem")
    done = CliRunner().invoke(root, ["--timeout", "soon", "show"])
    assert done.exit_code == 2 and "'soon' is not a duration such as 30s, 15m or 1h" in done.output


@pytest.fixture(scope="module")
def tetra() -> click.Group:
    _register()
    return cli


def test_tp_is_tracingpolicy(tetra: click.Group, tmp_path: Path) -> None:
    template = CliRunner().invoke(tetra, ["tp", "generate", "tracepoint"])
    assert template.exit_code == 0, template.output
    (tmp_path / "p.yaml").write_text(template.output)
    done = CliRunner().invoke(tetra, ["tp", "validate", str(tmp_path / "p.yaml")])
    assert done.exit_code == 0 and ": ok (1 policy" in done.output, done.output


def test_version_asks_the_agent_only_with_server(tetra: click.Group, tmp_path: Path) -> None:
    alone = CliRunner().invoke(tetra, ["version"], env={"TETRA_SERVER_ADDRESS": f"unix://{tmp_path}/none.sock"})
    assert alone.exit_code == 0 and alone.output.startswith("client "), alone.output
    asked = CliRunner().invoke(tetra, ["--retries", "0", "version", "-s"],
                               env={"TETRA_SERVER_ADDRESS": f"unix://{tmp_path}/none.sock"})
    assert asked.exit_code == 1
    assert f"no tetra agent at unix://{tmp_path}/none.sock" in asked.output


def test_retries_wait_for_an_agent_that_is_not_there(tetra: click.Group, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import tetra.api.client as client

    waits: list[float] = []
    monkeypatch.setattr(client.time, "sleep", waits.append)  # no agent will come: do not really wait
    done = CliRunner().invoke(tetra, ["status", "--retries", "3", "--server-address", f"unix://{tmp_path}/x.sock"])
    assert done.exit_code == 1 and "no tetra agent at" in done.output
    assert len(waits) == 3 and all(0 <= w <= 2.0 ** i for i, w in enumerate(waits)), waits
