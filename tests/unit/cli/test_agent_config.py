"""`tetra agent`'s flags from --config-dir and --config-file, as Tetragon takes them, and the
flags that map onto tetra's (--rb-size*, --log-format).

The real command is invoked with click's CliRunner; the composition root (build_agent) is
replaced by one that records the AgentConfig the flags made and stops there: what is under
test is the command line, and nothing is loaded into the kernel.
"""

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import tetra.app.build
from tetra.agent.config import AgentConfig
from tetra.cli.main import _register, cli


class _Built(Exception):
    """Raised by the stand-in build_agent to stop the command once its config is made."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config


def _stop(config: AgentConfig) -> None:
    raise _Built(config)


@pytest.fixture(autouse=True)
def _no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    _register()
    monkeypatch.setattr(tetra.app.build, "build_agent", _stop)
    if os.geteuid() != 0:
        monkeypatch.setattr(os, "geteuid", lambda: 0)


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["agent", *args])


def _config(*args: str) -> AgentConfig:
    done = _run(*args)
    assert isinstance(done.exception, _Built), done.output
    return done.exception.config


def _config_dir(tmp_path: Path, **flags: str) -> Path:
    """A directory laid out as a mounted ConfigMap: per-key symlinks into a ..data directory."""
    root = tmp_path / "conf"
    data = root / "..2026_12_02_00_00_00.1"
    data.mkdir(parents=True)
    (root / "..data").symlink_to(data.name)
    for name, value in flags.items():
        (data / name.replace("_", "-")).write_text(value + "\n")
        (root / name.replace("_", "-")).symlink_to(Path("..data") / name.replace("_", "-"))
    return root


def test_defaults_without_config() -> None:
    config = _config()
    assert config.process_cache_size == 65536 and config.export_filename is None
    assert config.health_server_address == "" and config.cluster_name == ""


def test_config_dir_one_file_per_flag(tmp_path: Path) -> None:
    conf = _config_dir(tmp_path, process_cache_size="1234", export_filename="/tmp/x.log",
                       enable_process_cred="true", enable_tracing_policy_crd="false",
                       tracing_policy="/etc/p.yaml", cluster_name="prod", health_server_address=":6789",
                       enable_ancestors="base,kprobe")
    config = _config("--config-dir", str(conf))
    assert config.process_cache_size == 1234 and config.export_filename == "/tmp/x.log"
    assert config.enable_process_cred is True and config.enable_tracing_policy_crd is False
    assert config.tracing_policies == ("/etc/p.yaml",)
    assert config.cluster_name == "prod" and config.health_server_address == ":6789"
    assert config.enable_ancestors == ("base", "kprobe")


def test_command_line_wins_over_config_dir_which_wins_over_config_file(tmp_path: Path) -> None:
    conf = _config_dir(tmp_path, process_cache_size="1234", node_name="from-dir")
    file = tmp_path / "tetra.yaml"
    file.write_text("process-cache-size: 99\nnode-name: from-file\nexport-file-perm: 0640\n"
                    "tracing-policy: [/a.yaml, /b.yaml]\n")
    for order in (["--config-dir", str(conf), "--config-file", str(file)],
                  ["--config-file", str(file), "--config-dir", str(conf)]):
        config = _config(*order)
        assert config.process_cache_size == 1234 and config.node_name == "from-dir"
        assert config.export_file_perm == 0o640  # YAML's 0640 kept as the text the flag takes
        assert config.tracing_policies == ("/a.yaml", "/b.yaml")
        config = _config(*order, "--process-cache-size", "7")
        assert config.process_cache_size == 7 and config.node_name == "from-dir"


def test_unknown_flag_in_config_dir_is_an_error_naming_the_file(tmp_path: Path) -> None:
    conf = _config_dir(tmp_path, export_filname="/tmp/x.log")
    done = _run("--config-dir", str(conf))
    assert done.exit_code == 2 and not isinstance(done.exception, _Built)
    assert f"{conf / 'export-filname'}: 'export-filname' is not a flag of `tetra agent`" in done.output


def test_bad_value_in_config_file_names_file_line_and_column(tmp_path: Path) -> None:
    file = tmp_path / "tetra.yaml"
    file.write_text("# settings\nnode-name: n\nprocess-cache-size: lots\n")
    done = _run("--config-file", str(file))
    assert done.exit_code == 2
    assert f"{file}:3:1: --process-cache-size: 'lots' is not a valid integer" in done.output.replace("\n", " ")


@pytest.mark.parametrize("text,message", [
    ("export-filname: /x\n", ":1:1: 'export-filname' is not a flag of `tetra agent`"),
    ("config-dir: /etc\n", ":1:1: 'config-dir' is not a flag of `tetra agent`"),
    ("node-name: a\nnode-name: b\n", ":2:1: node-name is set twice"),
    ("- node-name\n", ":1:1: expected a mapping of flag names to values"),
    ("node-name: [a, b]\n", "--node-name: takes one value, not a list"),
    ("node-name: {a: b}\n", ":1:12: expected a value or a list of values"),
])
def test_config_file_errors(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "tetra.yaml"
    file.write_text(text)
    done = _run("--config-file", str(file))
    assert done.exit_code == 2 and message in " ".join(done.output.split()), done.output


def test_missing_config_dir_is_an_error(tmp_path: Path) -> None:
    done = _run("--config-dir", str(tmp_path / "nope"))
    assert done.exit_code == 2 and "not a directory" in done.output


def test_rb_size_aliases_map_to_pages() -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    assert _config("--rb-size-total", "8M").ringbuf_pages == (8 << 20) // page
    assert _config("--rb-size-total", str(5 * page)).ringbuf_pages == 8  # rounded up to a power of two
    per_cpu = _config("--rb-size", "64k").ringbuf_pages * page
    assert per_cpu >= 64 * 1024 * (os.cpu_count() or 1) and per_cpu & (per_cpu - 1) == 0
    assert _config("--rb-size", "0").ringbuf_pages == _config().ringbuf_pages  # Tetragon's "0": the default


def test_rb_size_conflicts_and_bad_sizes_are_refused() -> None:
    for args, message in ((["--rb-size", "64k", "--rb-size-total", "8M"], "give one of them"),
                          (["--ringbuf-pages", "64", "--rb-size-total", "8M"], "give one of them"),
                          (["--rb-size-total", "lots"], "is not a size")):
        done = _run(*args)
        assert done.exit_code == 2 and message in done.output, done.output


def test_environment_variable_names_comma_separated_repeated_or_from_a_configmap(tmp_path: Path) -> None:
    config = _config("--enable-process-environment-variables", "--filter-environment-variables", "LD_PRELOAD, PATH",
                     "--filter-environment-variables", "HOME")
    assert config.enable_process_environment_variables is True
    assert config.filter_environment_variables == ("LD_PRELOAD", "PATH", "HOME")
    conf = _config_dir(tmp_path, enable_process_environment_variables="true",
                       filter_environment_variables="OTEL_SERVICE_NAME,OTEL_RESOURCE_ATTRIBUTES")
    assert _config("--config-dir", str(conf)).filter_environment_variables == (
        "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES")
    done = _run("--filter-environment-variables", "PATH")
    assert done.exit_code == 2 and "needs --enable-process-environment-variables" in done.output, done.output
