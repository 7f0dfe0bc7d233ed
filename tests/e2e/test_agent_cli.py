"""The agent's command line: clean stop, detached programs, clear errors."""

import signal
import socket
import subprocess
from pathlib import Path

from tests.e2e.harness import TETRA, RunningAgent, attachments, loaded_programs
from tetra.node import node_name


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


def test_start_up_lines_are_not_buried_under_the_proc_snapshot(tmp_path: Path) -> None:
    """On a terminal the agent's own lines (stderr) and the compact events (stdout) mix: the processes
    read from /proc at start are not printed as compact lines, live ones are; --metrics-server is said."""
    before = subprocess.Popen(["/usr/bin/sleep", "3600.4242"])  # running before the agent: in the snapshot
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    out = tmp_path / "stdout"
    try:
        with out.open("wb") as stdout:
            agent = RunningAgent(tmp_path, "-o", "compact", "--metrics-server", f"127.0.0.1:{port}")
            agent.start_with(stdout)
            subprocess.run(["/usr/bin/true", "after-ready-4242"], check=True)
            agent.wait_for(lambda events: any("after-ready-4242" in str(e) for e in events))
            snapshot = [e for e in agent.events() if "procFS" in str(e.get("process_exec", {}))]
            agent.stop()
    finally:
        before.kill()
    assert any("3600.4242" in str(e) for e in snapshot), "the JSON export keeps the /proc snapshot"
    lines = out.read_text().splitlines()
    assert f"🚀 process {node_name()} /usr/bin/true after-ready-4242" in lines
    assert not [line for line in lines if "3600.4242" in line], "a process from /proc printed as a compact line"
    assert f"tetra: INFO: metrics serving at http://127.0.0.1:{port}/metrics" in agent.stderr_lines
