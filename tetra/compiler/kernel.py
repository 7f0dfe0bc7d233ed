"""Which hook mechanisms the running kernel offers, measured cheaply at start.

kprobes: the kernel exposes ``kprobe_events`` in tracefs only with
CONFIG_KPROBES. fentry (BPF "tracing" programs) and BPF LSM: ``bpftool feature
probe`` loads a tiny program of each type, which is the measurement itself
(70 ms, no compiler). Every missing feature carries the reason a user can act
on, and policies name it when a hook cannot be placed.
"""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field

from tetra.kernel.override import ERROR_INJECTION_LIST, error_injectable, override_return_refusal
from tetra.kernel.tracefs import TRACEFS_ROOTS


@dataclass(frozen=True)
class KernelSupport:
    """What can be attached here; ``reasons`` explains each missing mechanism."""

    kprobe: bool
    fentry: bool
    lsm: bool
    override: bool = False  # bpf_override_return on error-injectable functions
    fmod_ret: bool = False  # BPF fmod_ret programs on error-injectable functions (NotifyEnforcer)
    injectable: frozenset[str] | None = None  # those functions; None: not known (assume any)
    reasons: dict[str, str] = field(default_factory=dict)

    @classmethod
    def detect(cls) -> "KernelSupport":
        reasons: dict[str, str] = {}
        kprobe = any((root / "kprobe_events").exists() for root in TRACEFS_ROOTS)
        if not kprobe:
            reasons["kprobe"] = "no kprobe_events in tracefs (CONFIG_KPROBES is not set)"
        types = _bpftool_program_types()
        fentry = bool(types.get("have_tracing_prog_type"))
        lsm = bool(types.get("have_lsm_prog_type"))
        if not fentry:
            reasons["fentry"] = "the kernel refuses BPF tracing (fentry) programs"
        if not lsm:
            reasons["lsm"] = "the kernel refuses BPF LSM programs (is 'bpf' in the lsm= boot parameter?)"
        if not types:
            reasons["fentry"] = reasons["lsm"] = "bpftool is not installed: fentry and BPF LSM were not probed"
        refusal = override_return_refusal() if kprobe else "no kprobes"
        if refusal:
            reasons["override"] = f"bpf_override_return is unavailable ({refusal}; CONFIG_BPF_KPROBE_OVERRIDE)"
        # fmod_ret may only modify functions on the error injection list, which
        # exists with CONFIG_FUNCTION_ERROR_INJECTION (Debian's kernels lack it).
        injection = ERROR_INJECTION_LIST.exists()
        fmod_ret = fentry and injection
        if not fentry:
            reasons["fmod_ret"] = reasons["fentry"]
        elif not injection:
            reasons["fmod_ret"] = (f"the kernel has no function error injection list ({ERROR_INJECTION_LIST}; "
                                   "CONFIG_FUNCTION_ERROR_INJECTION), so no syscall may be modified")
        return cls(kprobe=kprobe, fentry=fentry, lsm=lsm, override=refusal is None, fmod_ret=fmod_ret,
                   injectable=error_injectable() if refusal is None or fmod_ret else None, reasons=reasons)

    def may_inject(self, symbol: str) -> bool:
        """Whether bpf_override_return or fmod_ret may change what ``symbol`` returns (list unknown: assume so)."""
        return self.injectable is None or symbol in self.injectable

    def kprobe_overrides(self, symbol: str) -> bool:
        """Whether a kprobe on ``symbol`` can replace its result (Override through bpf_override_return)."""
        return self.kprobe and self.override and self.may_inject(symbol)

    @classmethod
    def everything(cls) -> "KernelSupport":
        """For compiling C to look at (--emit-c) as a kernel with every mechanism would run it."""
        return cls(kprobe=True, fentry=True, lsm=True, override=True, fmod_ret=True)


_BPFTOOLS = ("/usr/sbin/bpftool", "/sbin/bpftool")  # root's PATH may lack sbin under sudo


def _bpftool_program_types() -> dict[str, bool]:
    bpftool = shutil.which("bpftool") or next((p for p in _BPFTOOLS if os.path.exists(p)), None)
    if bpftool is None:
        return {}
    try:
        out = subprocess.run([bpftool, "feature", "probe", "kernel", "-j"], capture_output=True,
                             timeout=30, check=True).stdout
        return dict(json.loads(out).get("program_types", {}))
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
