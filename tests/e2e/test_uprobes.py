"""A uprobe policy on a program of ours: the symbol's arguments arrive typed."""

import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import RunningAgent

PROGRAM = r"""
#include <stdio.h>
__attribute__((noinline)) int tetra_marker(int code, const char *word)
{
    return printf("%d %s\n", code, word) > 0 ? code : -1;
}
__attribute__((noinline)) const char *tetra_word(int code)
{
    static char word[32];
    snprintf(word, sizeof(word), code == 42 ? "secret-%d" : "plain-%d", code);
    return word;
}
int main(int argc, char **argv)
{
    int code = argc > 1 ? 42 : 7;
    tetra_marker(code, argc > 1 ? argv[1] : "none");
    puts(tetra_word(code));
    return 0;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("uprobe")
    (workdir / "marker.c").write_text(PROGRAM)
    binary = workdir / "marker"
    subprocess.run(["gcc", "-O1", "-o", str(binary), str(workdir / "marker.c")], check=True)
    return binary


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None, program: Path) -> Iterator[RunningAgent]:
    policy = tmp_path_factory.mktemp("uprobe-policy") / "uprobe.yaml"
    policy.write_text(textwrap.dedent(f"""\
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: marker-uprobe
        spec:
          uprobes:
          - path: "{program}"
            symbols:
            - "tetra_marker"
            args:
            - index: 0
              type: "int"
            - index: 1
              type: "string"
            selectors:
            - matchArgs:
              - index: 0
                operator: "Equal"
                values: ["42"]
          - path: "{program}"
            symbols:
            - "tetra_word"
            return: true
            returnArg:
              type: "string"
            selectors:
            - matchReturnArgs:
              - operator: "Prefix"
                values: ["secret-"]
        """))
    running = RunningAgent(tmp_path_factory.mktemp("agent"), "--tracing-policy", str(policy)).start(120)
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


def test_uprobe_event_with_arguments(agent: RunningAgent, program: Path) -> None:
    subprocess.run([str(program)], check=True, capture_output=True)  # code 7: filtered out
    done = subprocess.run([str(program), "hello-uprobe"], check=True, capture_output=True)
    events = agent.wait_for(lambda ev: any("process_uprobe" in e for e in ev))
    found = [e["process_uprobe"] for e in events if "process_uprobe" in e and e["process_uprobe"]["symbol"] ==
             "tetra_marker"]
    assert len(found) == 1
    event = found[0]
    assert event["path"] == str(program) and event["symbol"] == "tetra_marker"
    assert event["args"] == [{"int_arg": 42}, {"string_arg": "hello-uprobe"}]
    assert event["process"]["binary"] == str(program)
    assert event["policy_name"] == "marker-uprobe"
    assert done.stdout == b"42 hello-uprobe\nsecret-42\n"


def test_a_returned_string_is_reported_and_matched(agent: RunningAgent, program: Path) -> None:
    """returnArg string: the text the returned pointer points to, compared by matchReturnArgs (Prefix
    "secret-"): "plain-7" is filtered out in the kernel, and no address is ever printed."""
    pids = []
    for argv in ([str(program)], [str(program), "again"]):  # "plain-7", then "secret-42"
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        assert proc.wait() == 0
        pids.append(proc.pid)

    def returns(events: list[dict], pid: int) -> list[dict]:  # type: ignore[type-arg]
        return [e["process_uprobe"] for e in events if e.get("process_uprobe", {}).get("symbol") == "tetra_word"
                and e["process_uprobe"]["process"]["pid"] == pid]

    events = agent.wait_for(lambda ev: bool(returns(ev, pids[1])))
    assert returns(events, pids[0]) == []  # ran first: its event would be there by now
    [event] = returns(events, pids[1])
    assert event["return"] == {"string_arg": "secret-42"}
    assert "args" not in event
