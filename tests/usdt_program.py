"""A program with USDT probes, compiled with gcc, for the tests of USDT hooks.

Its probe notes are written by hand, as <sys/sdt.h> writes them (that header is
not on every machine): a ``nop`` and a ``.note.stapsdt`` entry saying the first
argument is a signed 32-bit register and the second an 8-byte one (the string's
address). ``tetra:marker`` fires once per run with ``argv[1]`` (as a number) and
``argv[2]``; ``tetra:guarded`` has a semaphore (an is-enabled counter) and
fires, with the same arguments, only while a tracer has raised it;
``tetra:stacked`` has them in memory (``-4@8(%rsp)``) rather than in registers.
"""

import subprocess
from pathlib import Path

PROVIDER = "tetra"
PROBE = "marker"
GUARDED = "guarded"
STACKED = "stacked"

_SOURCE = r"""
#include <stdlib.h>
#define TETRA_PROBE(provider, name, semaphore, where, a1, a2) __asm__ __volatile__( \
    "990: nop\n" \
    ".pushsection .note.stapsdt,\"?\",\"note\"\n" \
    ".balign 4\n" \
    ".4byte 992f-991f, 994f-993f, 3\n" \
    "991: .asciz \"stapsdt\"\n" \
    "992: .balign 4\n" \
    "993: .8byte 990b\n" \
    ".8byte _.stapsdt.base\n" \
    ".8byte " semaphore "\n" \
    ".asciz \"" #provider "\"\n" \
    ".asciz \"" #name "\"\n" \
    ".asciz \"-4@%k[arg1] 8@%q[arg2]\"\n" \
    "994: .balign 4\n" \
    ".popsection\n" \
    ".ifndef _.stapsdt.base\n" \
    ".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n" \
    ".weak _.stapsdt.base\n" \
    ".hidden _.stapsdt.base\n" \
    "_.stapsdt.base: .space 1\n" \
    ".size _.stapsdt.base, 1\n" \
    ".popsection\n" \
    ".endif\n" \
    :: [arg1] where (a1), [arg2] where (a2))

__attribute__((section(".probes"), used)) unsigned short tetra_guarded_semaphore;

int main(int argc, char **argv)
{
    int code = argc > 1 ? atoi(argv[1]) : 0;
    const char *word = argc > 2 ? argv[2] : "none";
    TETRA_PROBE(tetra, marker, "0", "r", code, word);
    if (tetra_guarded_semaphore)
        TETRA_PROBE(tetra, guarded, "tetra_guarded_semaphore", "r", code, word);
    TETRA_PROBE(tetra, stacked, "0", "m", code, word);
    return 0;
}
"""


def build(workdir: Path) -> Path:
    """The program, compiled into ``workdir``."""
    source = workdir / "marker.c"
    source.write_text(_SOURCE)
    binary = workdir / "marker"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary
