"""A USDT policy on a program of ours: the probe's arguments arrive typed, and matchArgs filters on them.

The program's probe note is written by hand, as <sys/sdt.h> writes one (that
header is not on every machine): a ``nop`` and a ``.note.stapsdt`` entry that
says the first argument is a signed 32-bit register and the second an 8-byte
one (the string's address).
"""

import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import TETRA, RunningAgent

PROGRAM = r"""
#include <stdlib.h>
#define TETRA_PROBE(provider, name, a1, a2) __asm__ __volatile__( \
    "990: nop\n" \
    ".pushsection .note.stapsdt,\"?\",\"note\"\n" \
    ".balign 4\n" \
    ".4byte 992f-991f, 994f-993f, 3\n" \
    "991: .asciz \"stapsdt\"\n" \
    "992: .balign 4\n" \
    "993: .8byte 990b\n" \
    ".8byte _.stapsdt.base\n" \
    ".8byte 0\n" \
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
    :: [arg1] "r" (a1), [arg2] "r" (a2))

int main(int argc, char **argv)
{
    int code = argc > 1 ? atoi(argv[1]) : 0;
    const char *word = argc > 2 ? argv[2] : "none";
    TETRA_PROBE(tetra, marker, code, word);
    return 0;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("usdt")
    (workdir / "marker.c").write_text(PROGRAM)
    binary = workdir / "marker"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(workdir / "marker.c")], check=True)
    return binary


def _policy(path: Path, program: Path, probe: str = "marker") -> Path:
    path.write_text(textwrap.dedent(f"""\
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: marker-usdt
        spec:
          usdts:
          - path: "{program}"
            provider: "tetra"
            name: "{probe}"
            message: "marker fired"
            tags: ["test"]
            args:
            - index: 0
              type: "int32"
            - index: 1
              type: "string"
            selectors:
            - matchArgs:
              - index: 0
                operator: "Equal"
                values: ["-42"]
        """))
    return path


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None, program: Path) -> Iterator[RunningAgent]:
    link = tmp_path_factory.mktemp("usdt-link") / "marker-link"
    link.symlink_to(program)  # named through a symlink: the probe is read and attached on its target
    policy = _policy(tmp_path_factory.mktemp("usdt-policy") / "usdt.yaml", link)
    running = RunningAgent(tmp_path_factory.mktemp("agent"), "--tracing-policy", str(policy)).start(120)
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


def test_usdt_event_with_arguments(agent: RunningAgent, program: Path) -> None:
    subprocess.run([str(program), "7", "filtered-out"], check=True)  # code 7: matchArgs drops it
    subprocess.run([str(program), "-42", "hello-usdt"], check=True)
    events = agent.wait_for(lambda ev: any("process_usdt" in e for e in ev))
    found = [e["process_usdt"] for e in events if "process_usdt" in e]
    assert len(found) == 1
    event = found[0]
    assert event["path"].endswith("/marker-link")  # as the policy names it, like Tetragon
    assert (event["provider"], event["name"]) == ("tetra", "marker")
    assert event["args"] == [{"int_arg": -42}, {"string_arg": "hello-usdt"}]
    assert event["process"]["binary"] == str(program)
    assert event["action"] == "KPROBE_ACTION_POST"
    assert (event["policy_name"], event["message"], event["tags"]) == ("marker-usdt", "marker fired", ["test"])


def test_missing_probe_is_a_located_error(tmp_path: Path, program: Path) -> None:
    policy = _policy(tmp_path / "usdt.yaml", program, probe="absent")
    done = subprocess.run([*TETRA, "tracingpolicy", "compile", str(policy)], capture_output=True, text=True)
    assert done.returncode != 0
    assert f"{policy}:7:" in done.stderr  # the usdts entry
    assert "has no USDT probe tetra:absent (its probes: tetra:marker)" in done.stderr
