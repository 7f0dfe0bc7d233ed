"""probes/lib/wire.h and tetra/wire/layouts.py must agree on every offset and size.

gcc compiles a program that prints offsetof/sizeof of each C struct member; the
Python layouts must place each field at the same offset.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

from tetra.wire.layouts import CRED, CRED_FIELDS, HEADER, HEADER_FIELDS, LAYOUTS, TUPLE, TUPLE_FIELDS, Layout

WIRE_H = Path(__file__).resolve().parents[2] / "probes" / "lib" / "wire.h"
# Structs embedded as the first member of others, and that member's name in C.
EMBEDDED = ((HEADER, HEADER_FIELDS, "h."), (TUPLE, TUPLE_FIELDS, "t."), (CRED, CRED_FIELDS, "cred."))


def _c_members(layout: Layout) -> list[tuple[str, str]]:
    """(Python field, C member expression): embedded fields are reached through their member."""
    for inner, fields, prefix in EMBEDDED:
        if layout is not inner and layout.fields[:len(fields)] == fields:
            return [(name, prefix + name if i < len(fields) else name) for i, (name, _) in enumerate(layout.fields)]
    return [(name, name) for name, _ in layout.fields]


def _program() -> str:
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/types.h>", f'#include "{WIRE_H}"',
             "int main(void) {"]
    for layout in LAYOUTS:
        lines.append(f'printf("{layout.c_name} sizeof %zu\\n", sizeof(struct {layout.c_name}));')
        for name, member in _c_members(layout):
            lines.append(f'printf("{layout.c_name} {name} %zu\\n", offsetof(struct {layout.c_name}, {member}));')
    lines += ["return 0; }"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def c_offsets(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], int]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot compile probes/lib/wire.h")
    tmp = tmp_path_factory.mktemp("wire")
    (tmp / "check.c").write_text(_program())
    subprocess.run(["gcc", "-o", str(tmp / "check"), str(tmp / "check.c")], check=True)
    out = subprocess.run([str(tmp / "check")], check=True, capture_output=True, text=True).stdout
    result = {}
    for line in out.splitlines():
        struct_name, field, value = line.split()
        result[(struct_name, field)] = int(value)
    return result


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.c_name)
def test_python_layout_matches_c(layout: Layout, c_offsets: dict[tuple[str, str], int]) -> None:
    assert layout.size == c_offsets[(layout.c_name, "sizeof")]
    for name, offset in layout.offsets().items():
        assert offset == c_offsets[(layout.c_name, name)], f"{layout.c_name}.{name}"
