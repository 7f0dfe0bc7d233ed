"""The VM lane, as the host runs it: Debian's stock kernel under QEMU.

The host's kernel skips every test marked kprobe, fentry, lsm or
override_return (tests/conftest.py). These tests carry none of those markers,
so they run on the host, boot the VM (tests/vm/runner.py) and run there what
the host cannot: ``tetra probe`` (its report printed into this run's output, so
the log shows what each kernel offered) and the marked tests of the repo. A
missing QEMU or kernel image fails here with what to install: a lane that
skipped itself would hide that nothing ran.

Both Debian kernel series of bookworm are booted, each for the probe report and
the marked tests: 6.1 (linux-image-amd64) and 6.12 (linux-image-6.12-amd64,
from bookworm-security), so a program that one verifier takes and the other
refuses fails here.

Cost: two to four minutes per kernel, most of it bcc compiling under emulation.
"""

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.vm import runner

FEATURE_MARKERS = "kprobe or fentry or lsm or override_return or fmod_ret"
# tetra probe lines the VM kernel must offer, each with the name tests/conftest.py
# gives the feature in a skip reason ("<name> unavailable on this kernel ...").
REQUIRED = {"kprobe": "kprobes", "kretprobe": "kprobes", "fentry": "fentry", "BPF LSM": "BPF LSM"}
# Per boot: what was measured inside, with room for a busier machine.
PROBE_TIMEOUT = 180.0  # tetra probe: 40 to 80 s
TESTS_TIMEOUT = 600.0  # the marked tests: 120 to 320 s (measured; TCG on 2 busy cores is slow)
HANG_TIMEOUT = 20.0
KERNELS = ("6.1", "6.12")  # Debian bookworm's kernel series; scripts/setup.sh installs both  # 3x a boot (5 to 8 s here); the hung attempt costs this much
_SUMMARY_COUNT = re.compile(r"(\d+) (passed|failed|skipped|deselected|errors?)\b")


def _teeing(lines: list[str]) -> Callable[[str], None]:
    """An echo that keeps each guest line and prints it live, marked as the guest's."""

    def echo(line: str) -> None:
        lines.append(line)
        print(f"vm| {line}", flush=True)

    return echo


def _json_document(lines: list[str]) -> dict[str, list[dict[str, object]]]:
    """The JSON document the guest printed, from the line that opens it."""
    start = lines.index("{")
    document, _ = json.JSONDecoder().raw_decode("\n".join(lines[start:]))
    return document


@pytest.mark.timeout(2 * PROBE_TIMEOUT + 60)  # both attempts
@pytest.mark.parametrize("series", KERNELS)
def test_vm_kernel_offers_kprobe_fentry_and_lsm(series: str, capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    probe = [sys.executable, "-m", "tetra", "probe", "-o", "json"]
    with capsys.disabled():
        result = runner.run(probe, echo=lines.append, timeout=PROBE_TIMEOUT, kernel_series=series)
        assert result.status == 0, "\n".join(lines)
        report = {feature["name"]: feature for feature in _json_document(lines)["features"]}
        print(f"\ntetra probe in the VM ({runner.find_guest_kernel(series).release}):")
        for name, feature in report.items():
            print(f"  {'✔' if feature['available'] else '✘'} {name:<26} {feature['detail']}")
    for name in REQUIRED:
        assert report[name]["available"], report[name]


@pytest.mark.timeout(2 * TESTS_TIMEOUT + 60)  # both attempts
@pytest.mark.parametrize("series", KERNELS)
def test_feature_marked_tests_pass_in_vm(series: str, capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    tests = [sys.executable, "-m", "pytest", "-m", FEATURE_MARKERS, "tests", "-q", "-rA"]
    tests += ["-p", "no:cacheprovider"]  # nothing written into the shared repo but bytecode
    with capsys.disabled():
        result = runner.run(tests, cwd=runner.REPO, echo=_teeing(lines), timeout=TESTS_TIMEOUT,
                            kernel_series=series)
    summary = lines[-1] if lines else ""
    counts = {kind: int(number) for number, kind in _SUMMARY_COUNT.findall(summary)}
    assert result.status == 0, f"pytest in the VM exited {result.status}: {summary}"
    assert counts.get("passed", 0) > 0, summary
    wrongly_skipped = [
        line
        for line in lines
        if line.startswith("SKIPPED") and any(f"{name} unavailable" in line for name in REQUIRED.values())
    ]
    assert wrongly_skipped == [], "the VM kernel has these features"


def test_a_vm_without_exit_status_is_booted_once_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first boot hangs in its command; the second must run it and report."""
    (tmp_path / "hang-once").touch()
    hang_once = "if [ -e hang-once ]; then rm hang-once; sleep 600; fi; echo second boot ran"
    lines: list[str] = []
    with capsys.disabled():
        result = runner.run(
            ["sh", "-c", hang_once], workdir=tmp_path, cwd=tmp_path, echo=lines.append, timeout=HANG_TIMEOUT
        )
    assert (result.status, result.attempts) == (0, 2)
    assert "second boot ran" in lines


def test_missing_qemu_is_named_with_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "QEMU", "qemu-system-x86_64-absent")
    with pytest.raises(runner.VmUnavailable, match=re.escape(runner.INSTALL_HINT)):
        runner.run(["true"])
