"""PidFile: the pid for logrotate's postrotate, locked while the agent runs, gone after."""

import os
import subprocess
from pathlib import Path

import pytest

from tetra.agent.pidfile import PidFile, PidFileError


def test_pid_is_written_locked_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "run" / "tetra.pid"
    with PidFile(str(path)):
        assert path.read_text() == f"{os.getpid()}\n"
        # what the example logrotate config runs: -L finds the file locked by a live process
        found = subprocess.run(["pgrep", "-L", "-F", str(path)], capture_output=True)
        assert found.returncode == 0 and found.stdout.decode().strip() == str(os.getpid())
        with pytest.raises(PidFileError, match=f"held by another agent \\(pid {os.getpid()}\\)"):
            PidFile(str(path)).__enter__()
    assert not path.exists()


def test_a_stale_pid_file_is_taken_over_and_a_link_refused(tmp_path: Path) -> None:
    path = tmp_path / "tetra.pid"
    path.write_text("999999\n")  # left by a killed agent: not locked
    assert subprocess.run(["pgrep", "-L", "-F", str(path)], capture_output=True).returncode != 0
    with PidFile(str(path)):
        assert path.read_text() == f"{os.getpid()}\n"
    link = tmp_path / "link.pid"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PidFileError, match="symbolic link"):
        PidFile(str(link)).__enter__()
    assert not (tmp_path / "elsewhere").exists()
