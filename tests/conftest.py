"""Shared pytest setup: tests that load BPF programs need root and say so when skipped."""

import os

import pytest


@pytest.fixture(scope="session")
def root() -> None:
    """Skip (with the reason printed by -ra) unless running as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root: loads BPF programs into the running kernel")


NOBODY = 65534


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
