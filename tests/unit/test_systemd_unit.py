"""examples/systemd/tetra.service as systemd reads it: ``systemd-analyze verify`` (offline, no
systemd running needed) with no warning at all (an unknown or misspelt directive is only a
warning there, and would silently drop a hardening option), and ``systemd-analyze security``'s
exposure score kept where the unit's hardening puts it, so removing an option shows."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "examples" / "systemd" / "tetra.service"
EXPOSURE_AT_MOST = 60  # systemd-analyze's 0-100 scale; the unit scores 58 ("5.8 MEDIUM"): root, BPF, tracefs

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is not installed (apt-get install systemd)")


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's tetra (verify checks it is executable)."""
    tetra = Path(sys.executable).with_name("tetra")
    assert tetra.exists(), f"{tetra}: the tetra console script is not installed"
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/tetra agent " in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace("/usr/local/bin/tetra", str(tetra)))
    return copy


def test_unit_verifies_without_a_warning(unit: Path) -> None:
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr + done.stdout


def test_unit_hardening_keeps_its_exposure_score(unit: Path) -> None:
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--threshold={EXPOSURE_AT_MOST}",
                           str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr


def test_unit_runs_the_agent_on_its_config_dir() -> None:
    text = UNIT.read_text()
    assert "--config-dir=/etc/tetra/tetra.conf.d" in text and "ConfigurationDirectory=tetra/tetra.conf.d" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text  # SIGHUP: the export file is reopened
