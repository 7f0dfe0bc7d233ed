"""Giving back the memory bcc's compiler used, once the programs are loaded.

Compiling a policy pulls LLVM and clang into the agent: ~80 MiB of their code
pages become resident and their heap grows by tens of MiB, and none of it is
used again until the next compile. glibc keeps freed heap for later unless
asked (``malloc_trim``), and touched library pages stay resident until the
kernel needs the memory. The compiler's code (``r-xp`` mappings: never
written, so always equal to the file) is dropped from this process with
``MADV_DONTNEED`` and read again from the file on the next compile; its other
mappings get ``MADV_PAGEOUT``, which reclaims only clean pages no other process
maps, and leaves anything the process changed (relocated data) where it is, so
nothing can be lost. Kernels before 5.4 refuse PAGEOUT; then the rest is done.
"""

import ctypes
import logging
from pathlib import Path

log = logging.getLogger(__name__)
MADV_DONTNEED = 4
MADV_PAGEOUT = 21
COMPILER_LIBRARIES = ("libLLVM", "libclang", "libbcc")


def _compiler_mappings(maps: str) -> list[tuple[int, int, int]]:
    """(start, end, advice) of the compiler's libraries in a /proc/PID/maps text."""
    ranges = []
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) >= 6 and any(lib in fields[5] for lib in COMPILER_LIBRARIES):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((start, end, MADV_DONTNEED if fields[1] == "r-xp" else MADV_PAGEOUT))
    return ranges


def release_compiler_memory() -> None:
    """Trim the heap and page out the compiler's libraries (best effort, never fatal)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.malloc_trim(0)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    refused = 0
    for start, end, advice in _compiler_mappings(Path("/proc/self/maps").read_text()):
        if libc.madvise(start, end - start, advice) != 0:
            refused += 1
    if refused:
        log.debug("madvise(MADV_PAGEOUT) refused for %d compiler mappings", refused)
