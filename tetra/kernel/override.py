"""Can a kprobe program change what a kernel function returns (bpf_override_return)?

Measured by loading a 4-instruction kprobe program that calls the helper,
through the bpf() system call directly: no compiler, a few microseconds. The
helper exists only with CONFIG_BPF_KPROBE_OVERRIDE, and then only for
functions the kernel marks as error-injectable (ALLOW_ERROR_INJECTION), listed
in debugfs.
"""

import ctypes
import os
import struct
from pathlib import Path

_SYS_BPF = 321  # x86-64
_BPF_PROG_LOAD = 5
_BPF_PROG_TYPE_KPROBE = 2
_CALLS_OVERRIDE_RETURN = bytes.fromhex(
    "b702000000000000"  # r2 = 0: the return value to force (r1 is still the context)
    "850000003a000000"  # call bpf_override_return (helper 58)
    "b700000000000000"  # r0 = 0
    "9500000000000000"  # exit
)

ERROR_INJECTION_LIST = Path("/sys/kernel/debug/error_injection/list")


def override_return_refusal() -> str | None:
    """Why the verifier refuses a kprobe program calling bpf_override_return; None when it loads.

    Loaded by hand rather than read from bpftool: bpftool 7.1 (libbpf 1.1)
    takes newer kernels' refusal ("program of this type cannot use helper")
    for support and lists the helper on kernels without CONFIG_BPF_KPROBE_OVERRIDE.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    insns = ctypes.create_string_buffer(_CALLS_OVERRIDE_RETURN, len(_CALLS_OVERRIDE_RETURN))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(4096)
    attr = ctypes.create_string_buffer(
        struct.pack(
            "<IIQQIIQ",
            _BPF_PROG_TYPE_KPROBE,
            len(_CALLS_OVERRIDE_RETURN) // 8,
            ctypes.addressof(insns),
            ctypes.addressof(license_),
            1,  # log_level: the verifier says why
            len(log),
            ctypes.addressof(log),
        )
    )
    fd = libc.syscall(_SYS_BPF, _BPF_PROG_LOAD, attr, len(attr.raw))
    if fd >= 0:
        os.close(fd)
        return None
    lines = [line for line in log.value.decode(errors="replace").splitlines() if line.strip()]
    verdicts = [line for line in lines if not line.startswith("processed ")]
    return f"verifier: {verdicts[-1]}" if verdicts else os.strerror(ctypes.get_errno())


def error_injectable() -> frozenset[str]:
    """Functions whose return value bpf_override_return may replace."""
    try:
        text = ERROR_INJECTION_LIST.read_text()
    except OSError:
        return frozenset()
    return frozenset(line.split()[0] for line in text.splitlines() if line.strip())
