#!/usr/bin/env bash
# Run the whole test suite as CI does: prepare the machine, then pytest.
# Tests that need a kernel feature this machine lacks skip with the reason; the
# VM lane (tests/vm/test_lane.py, about two minutes) runs those on Debian's
# stock kernel under QEMU as part of this same pytest run.
# Arguments go to pytest: `scripts/test.sh -m "not root"` is the fast lane (no
# BPF, no agent, no VM: tests/conftest.py marks every test that needs root).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"
cd "$here"
exec "$here/.venv/bin/python" -m pytest -ra "$@"
