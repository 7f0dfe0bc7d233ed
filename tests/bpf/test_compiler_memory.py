"""The compiler's memory is given back once programs are loaded (tetra/agent/memory.py).

bcc compiles in the agent's process; LLVM's pages and heap would otherwise stay
resident for the agent's life. Compiled and measured in a child process, so
that what this test process already holds does not blur the numbers.
"""

import subprocess
import sys

import pytest

from tetra.agent.memory import MADV_DONTNEED, MADV_PAGEOUT, _compiler_mappings

pytestmark = pytest.mark.usefixtures("root")

CHILD = r"""
from bcc import BPF
from tetra.agent.memory import release_compiler_memory

def rss_kib():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS"))

bpf = BPF(text="int hello(void *ctx) { return 0; }")
bpf.load_func("hello", BPF.TRACEPOINT)
before = rss_kib()
release_compiler_memory()
print(before, rss_kib())
"""


def test_release_gives_back_what_the_compile_took() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    before, after = (int(x) for x in done.stdout.split())
    assert before - after > 30 * 1024, (before, after)  # of ~100 MiB a compile leaves resident


def test_only_the_compiler_libraries_are_paged_out() -> None:
    maps = """\
7f0000000000-7f0000100000 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
7f0000100000-7f0000200000 r--p 00100000 08:01 1 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
7f0000300000-7f0000400000 r-xp 00000000 08:01 2 /usr/lib/llvm-14/lib/libclang-cpp.so.14
7f0000500000-7f0000600000 r-xp 00000000 08:01 3 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000600000-7f0000700000 rw-p 00000000 00:00 0
"""
    assert _compiler_mappings(maps) == [(0x7F0000000000, 0x7F0000100000, MADV_DONTNEED),  # code: as in the file
                                        (0x7F0000100000, 0x7F0000200000, MADV_PAGEOUT),  # may be relocated
                                        (0x7F0000300000, 0x7F0000400000, MADV_DONTNEED)]
