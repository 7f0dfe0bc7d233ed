#!/usr/bin/env bash
# Build the compiled event path (tetra/_speed/*.pyx -> .so beside it) with the virtualenv's
# Cython; needs gcc and python3-dev (scripts/setup.sh installs them). Idempotent: a module is
# rebuilt only when its .pyx is newer than its .so. Built in a temp dir and renamed into place,
# so an agent running the old module keeps its (unlinked) file instead of crashing on a rewrite.
# Usage: scripts/build_speed.sh [PYTHON]
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
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/tetra/_speed"
    touch "$tmp/tetra/__init__.py" "$tmp/tetra/_speed/__init__.py"  # the module's full name: tetra._speed.X
    cp "$pyx" "$tmp/$pyx"
    (cd "$tmp" && "$python" -m Cython.Build.Cythonize -q -i -3 "$pyx" >/dev/null)
    built=$(ls "$tmp/${pyx%.pyx}".cpython-*.so)
    mv -f "$built" "tetra/_speed/$(basename "$built")"
    rm -rf "$tmp"
    trap - EXIT
done
