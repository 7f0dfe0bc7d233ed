"""The compiled event path (Cython), and the switch back to pure Python.

``lines.pyx`` turns ring records into JSON lines for the common case (policy
events of hooks whose argument types it has encoders for, of processes the cache
knows) and hands every other record to the Python path, in order. It is built
from source by scripts/build_speed.sh (run by scripts/setup.sh); without it, or
with ``TETRA_PURE_PYTHON=1`` in the environment, the agent runs the pure-Python
path, which writes the same bytes (tests/unit/test_line_path.py checks both).
"""

import logging
import os
from types import ModuleType

from tetra.wire import layouts

log = logging.getLogger(__name__)
PURE_PYTHON_ENV = "TETRA_PURE_PYTHON"


def lines_module() -> ModuleType | None:
    """The compiled module, or None: forced off, not built, or built for another layout."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None
    try:
        from tetra._speed import lines  # type: ignore[attr-defined]
    except ImportError:
        return None
    offsets = layouts.GENERIC.offsets()
    if lines.GENERIC_SIZE != layouts.GENERIC.size or any(
            offsets[name] != at for name, at in lines.GENERIC_OFFSETS.items()):
        log.warning("tetra/_speed/lines was built for another record layout: using the pure-Python path "
                    "(run scripts/build_speed.sh)")
        return None
    return lines
