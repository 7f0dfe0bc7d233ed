"""Tetragon's names for credentials: capability and securebits names, and its Capabilities message.

Shared by the process context (process.cap, process_credentials: tetra/process/context.py) and
by policy hooks' cred arguments (process_credentials_arg: tetra/decode/generic.py), so the two
spell a capability the same way.
"""

from typing import Any

from tetra.compiler.names import CAPABILITIES

# Tetragon's CapabilitiesType names: the kernel's, except that capability 1 is "DAC_OVERRIDE".
TETRAGON_CAPABILITIES = tuple("DAC_OVERRIDE" if name == "CAP_DAC_OVERRIDE" else name for name in CAPABILITIES)
# Tetragon's SecureBitsType names, by bit (include/uapi/linux/securebits.h).
SECUREBITS = ("SecBitNoRoot", "SecBitNoRootLocked", "SecBitNoSetUidFixup", "SecBitNoSetUidFixupLocked",
              "SecBitKeepCaps", "SecBitKeepCapsLocked", "SecBitNoCapAmbientRaise", "SecBitNoCapAmbientRaiseLocked")


def bit_names(mask: int, names: tuple[str, ...]) -> list[str]:
    return [name for bit, name in enumerate(names) if mask >> bit & 1]


def capabilities_json(permitted: int, effective: int, inheritable: int) -> dict[str, Any]:
    """Tetragon's Capabilities message; empty sets left out, as protojson leaves out empty lists."""
    sets = (("permitted", permitted), ("effective", effective), ("inheritable", inheritable))
    return {key: bit_names(mask, TETRAGON_CAPABILITIES) for key, mask in sets if mask}
