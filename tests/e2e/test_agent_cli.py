"""The agent's command line: clean stop, detached programs, clear errors."""

import signal
import subprocess
from pathlib import Path

from tests.e2e.harness import TETRA, RunningAgent, attachments, loaded_programs


def test_sigint_detaches_every_program(tmp_path: Path, root: None) -> None:
    agent = RunningAgent(tmp_path).start()
    assert agent.proc is not None
    try:
        ours = attachments(agent.proc.pid)
        assert {"sched_process_exec", "sched_process_fork", "sched_process_exit"} <= set(ours.values()), ours
    finally:
        agent.proc.send_signal(signal.SIGINT)
    assert agent.proc.wait(60) == 0
    assert not set(ours) & loaded_programs()


def test_agent_refuses_without_root(nobody: int) -> None:
    result = subprocess.run([*TETRA, "agent", "-o", "none"], capture_output=True, user=nobody)
    assert result.returncode == 1
    assert b"needs root" in result.stderr
    assert b"Traceback" not in result.stderr


def test_bad_flag_values_are_refused_clearly(tmp_path: Path) -> None:
    for args, message in (
        (["--export-file-rotation-interval", "soon"], b"is not a duration"),
        (["--export-file-max-size-mb", "0"], b"x>0"),
        (["--export-file-perm", "999"], b"invalid file permission"),
        (["--export-allowlist", '{"binary_regex": ["("]}'], b"is not a valid regular expression (RE2 syntax)"),
        (["--export-denylist", '{"event_set": ["PROCESS_EXECC"]}'], b"PROCESS_EXECC"),
        (["--export-denylist", '{bad json'], b"--export-denylist:1"),
    ):
        result = subprocess.run([*TETRA, "agent", "-o", "none", *args], capture_output=True)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert b"Traceback" not in result.stderr


def test_bad_regular_expressions_are_one_located_line() -> None:
    """RE2 refuses them; Python's re raised RecursionError (a traceback) on the nested one."""
    nested = "(a" * 3000
    refused = f"'{'(a' * 20}...' (6000 characters) is not a valid regular expression (RE2 syntax): missing )"
    for args, message in (
        (["agent", "-o", "none", "--export-allowlist", '{"pid": [1]}\n{"arguments_regex": ["' + nested + '"]}'],
         f"--export-allowlist:2: arguments_regex: {refused}"),
        (["agent", "-o", "none", "--redaction-filters", '{"redact": ["(?<=x)(y)"]}'],
         "--redaction-filters:1: redact: '(?<=x)(y)' is not a valid regular expression (RE2 syntax): invalid perl "
         "operator '(?<=' (RE2, like Go, has no lookaround or backreferences)"),
        (["getevents", "--process", nested, "--server-address", "unix:///nonexistent"], f"--process: {refused}"),
    ):
        result = subprocess.run([*TETRA, *args], capture_output=True, stdin=subprocess.DEVNULL)
        assert result.returncode == 1, args
        assert result.stderr.decode() == f"tetra: {message}\n"


def test_help_lists_tetragon_flag_names() -> None:
    out = subprocess.run([*TETRA, "agent", "--help"], capture_output=True, check=True).stdout.decode()
    for flag in ("--export-filename", "--export-file-max-size-mb", "--export-file-max-backups",
                 "--export-file-rotation-interval", "--export-file-compress", "--export-file-perm",
                 "--process-cache-size"):
        assert flag in out
