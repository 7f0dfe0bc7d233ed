#!/usr/bin/env bash
# Build the compiled event path (tetra/_speed/*.pyx -> .so in place) with the virtualenv's
# Cython; needs gcc and python3-dev (scripts/setup.sh installs them). Idempotent: a module is
# rebuilt only when its .pyx is newer than its .so. Usage: scripts/build_speed.sh [PYTHON]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-"$here/.venv/bin/python"}
cd "$here"
for pyx in tetra/_speed/*.pyx; do
    so=$(ls "${pyx%.pyx}".cpython-*.so 2>/dev/null | head -n 1 || true)
    if [ -n "$so" ] && [ "$so" -nt "$pyx" ]; then
        continue
    fi
    echo "build_speed: compiling $pyx"
    "$python" -m Cython.Build.Cythonize -q -i -3 "$pyx" >/dev/null
    rm -rf tetra/_speed/build
done
