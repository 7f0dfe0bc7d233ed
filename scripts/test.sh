#!/usr/bin/env bash
# Run the whole test suite as CI does: prepare the machine, then pytest.
# Tests that need a kernel feature this machine lacks skip with the reason.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"
cd "$here"
exec "$here/.venv/bin/python" -m pytest -ra "$@"
