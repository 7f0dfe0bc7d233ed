"""Shared pytest setup: tests that load BPF programs need root and say so when skipped;
tests that need a kernel feature this kernel lacks skip naming it and the VM lane.

Every test that needs root carries the ``root`` marker without saying so: those
under tests/bpf, tests/e2e and tests/vm, and any that uses the ``root`` fixture,
directly or through another fixture. So ``-m "not root"`` is the fast lane:
what runs there runs as any user, in seconds.
"""

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tetra.kernel.override import ERROR_INJECTION_LIST, override_return_refusal


@pytest.fixture(scope="session")
def root() -> None:
    """Skip (with the reason printed by -ra) unless running as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root: loads BPF programs into the running kernel")


NOBODY = 65534
TESTS = Path(__file__).parent
ROOT_DIRS = {"bpf", "e2e", "vm"}  # real BPF, a real agent, a VM booted by QEMU


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark the tests that need root ``root``; runs before -m selects (pytest_collection_modifyitems)."""
    in_root_dir = item.path.is_relative_to(TESTS) and item.path.relative_to(TESTS).parts[0] in ROOT_DIRS
    if in_root_dir or "root" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.root)


@pytest.fixture(scope="session")
def nobody(root: None) -> int:
    """The uid of nobody, for checks that tetra refuses to run without root.

    Skips when nobody cannot even start this interpreter (a checkout under a
    directory only root may enter): then the refusal cannot be observed.
    """
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-c", "import tetra"], user=NOBODY, capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"uid {NOBODY} cannot run {sys.executable} here: {probe.stderr.decode().strip()[-200:]}")
    return NOBODY


# --- kernel features: kprobe, fentry, lsm, override_return markers -----------
#
# Tests marked with a feature this kernel lacks are skipped, saying where they
# do run: the VM lane (tests/vm) boots a stock kernel that has them. Measured at
# collection without compiling anything: a tracefs file, one `bpftool feature
# probe` per session, and one 4-instruction program loaded by hand.

FEATURES = {
    "kprobe": "kprobes",
    "fentry": "fentry",
    "lsm": "BPF LSM",
    "override_return": "bpf_override_return",
    "fmod_ret": "BPF fmod_ret on syscalls",
}
# Features the VM lane's kernel (Debian's stock one) lacks as well, and what runs them.
VM_LACKS = {
    "override_return": "Debian's kernel in the VM lane lacks it too (CONFIG_BPF_KPROBE_OVERRIDE)",
    "fmod_ret": "Debian's kernel in the VM lane lacks it too: needs CONFIG_FUNCTION_ERROR_INJECTION",
}
_KPROBE_EVENTS = (Path("/sys/kernel/tracing/kprobe_events"), Path("/sys/kernel/debug/tracing/kprobe_events"))
_ACTIVE_LSMS = Path("/sys/kernel/security/lsm")

def _bpftool_program_types() -> dict[str, bool] | str:
    """``program_types`` of ``bpftool feature probe kernel -j``, or why there is none."""
    bpftool = shutil.which("bpftool") or shutil.which("/usr/sbin/bpftool")
    if bpftool is None:
        return "bpftool not found: run scripts/setup.sh"
    probe = [bpftool, "feature", "probe", "kernel", "-j"]
    done = subprocess.run(probe, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"bpftool feature probe failed: {done.stderr.strip()[-200:]}"
    program_types: dict[str, bool] = json.loads(done.stdout)["program_types"]
    return program_types


def _lsm_refusal(program_types: dict[str, bool]) -> str | None:
    """Why BPF LSM programs cannot act here; None when they can."""
    if not program_types.get("have_lsm_prog_type"):
        return "bpftool feature probe: no lsm program type"
    if _ACTIVE_LSMS.exists() and "bpf" not in _ACTIVE_LSMS.read_text().split(","):
        return f"the bpf LSM is not active ({_ACTIVE_LSMS}); boot with lsm=...,bpf"
    return None


@functools.cache
def missing_kernel_features() -> dict[str, str]:
    """Marker name -> why this kernel lacks the feature; measured once per session."""
    if os.geteuid() != 0:
        return {marker: "measuring it needs root" for marker in FEATURES}
    missing: dict[str, str] = {}
    if not any(path.exists() for path in _KPROBE_EVENTS):
        missing["kprobe"] = "no kprobe_events in tracefs (CONFIG_KPROBES off, or tracefs not mounted)"
    program_types = _bpftool_program_types()
    if isinstance(program_types, str):
        missing["fentry"] = missing["lsm"] = program_types
    else:
        if not program_types.get("have_tracing_prog_type"):
            missing["fentry"] = "bpftool feature probe: no tracing program type (fentry/fexit)"
        if (lsm := _lsm_refusal(program_types)) is not None:
            missing["lsm"] = lsm
    if "fentry" in missing:
        missing["fmod_ret"] = missing["fentry"]
    elif not ERROR_INJECTION_LIST.exists():
        missing["fmod_ret"] = f"no {ERROR_INJECTION_LIST} (CONFIG_FUNCTION_ERROR_INJECTION)"
    if (refusal := override_return_refusal()) is not None:
        missing["override_return"] = refusal
    elif "kprobe" in missing:
        missing["override_return"] = missing["kprobe"]
    return missing


@pytest.hookimpl(trylast=True)  # after -m has deselected: measure only for tests that will run
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip tests marked with a kernel feature this kernel lacks, naming it and the VM lane."""
    marked = [(item, marker) for item in items for marker in FEATURES if item.get_closest_marker(marker)]
    if not marked:
        return
    missing = missing_kernel_features()
    for item, marker in marked:
        if marker in missing:
            why = f"{FEATURES[marker]} unavailable on this kernel ({missing[marker]})"
            where = VM_LACKS.get(marker, "runs in the VM lane (tests/vm)")
            item.add_marker(pytest.mark.skip(reason=f"{why}; {where}"))
