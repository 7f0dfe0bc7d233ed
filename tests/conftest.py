"""Shared pytest setup: tests that load BPF programs need root and say so when skipped."""

import os

import pytest


@pytest.fixture(scope="session")
def root() -> None:
    """Skip (with the reason printed by -ra) unless running as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root: loads BPF programs into the running kernel")
