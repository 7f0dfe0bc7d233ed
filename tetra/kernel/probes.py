"""The C sources under probes/, as bcc compiles them: quoted includes pasted in, -D defines.

Below both users: the sensors (tetra/sensors) build their programs from here,
and the feature probes (tetra/kernel/features.py) theirs.
"""

import os
import re
from collections.abc import Mapping
from pathlib import Path

from tetra.errors import SensorError

PROBES_DIR = Path(os.environ.get("TETRA_PROBES_DIR", Path(__file__).resolve().parents[2] / "probes"))

_QUOTED_INCLUDE = re.compile(r'^#include "([^"]+)"\s*$', re.MULTILINE)


def expand_includes(text: str, seen: set[Path] | None = None) -> str:
    """C text with its quoted includes (paths under probes/) pasted in.

    bcc rewrites map calls (``tetra_events.ringbuf_output(...)``) only in the
    main text, not in included headers, so probes/lib headers that use maps
    must be pasted in. Each file is expanded once; system (<...>) includes stay.
    """
    seen = set() if seen is None else seen

    def expand(path: Path) -> str:
        if path in seen:
            return ""
        seen.add(path)
        try:
            content = path.read_text()
        except OSError as err:
            raise SensorError(f"cannot read probe source {path}: {err.strerror}") from err
        return _QUOTED_INCLUDE.sub(lambda m: expand(PROBES_DIR / m.group(1)), content)

    return _QUOTED_INCLUDE.sub(lambda m: expand(PROBES_DIR / m.group(1)), text)


def probe_source(relative: str) -> str:
    """The text of a C file under probes/, with its quoted includes expanded."""
    return expand_includes(f'#include "{relative}"\n')


def cflags(defines: Mapping[str, int | str | None]) -> list[str]:
    """bcc cflags: the probes include path and -D defines (None = defined, no value)."""
    flags = [f"-I{PROBES_DIR}"]
    for name, value in defines.items():
        flags.append(f"-D{name}" if value is None else f"-D{name}={value}")
    return flags
