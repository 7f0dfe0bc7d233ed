"""A USDT policy on a program of ours (tests/usdt_program.py): the probe's arguments arrive typed, and
matchArgs filters on them."""

import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import usdt_program
from tests.e2e.harness import RunningAgent, tetra


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return usdt_program.build(tmp_path_factory.mktemp("usdt"))


def _policy(path: Path, program: Path, probe: str = "marker", others: tuple[str, ...] = ()) -> Path:
    """A hook on ``probe`` that posts when its first argument is -42, and one on each of ``others``
    posting every call."""
    hooks = "".join(f'  - path: "{program}"\n    provider: "tetra"\n    name: "{name}"\n    args:\n'
                    '    - index: 0\n      type: "int32"\n    - index: 1\n      type: "string"\n'
                    for name in others)
    path.write_text(textwrap.dedent(f"""\
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {probe}-usdt
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
        """) + hooks)
    return path


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None, program: Path) -> Iterator[RunningAgent]:
    link = tmp_path_factory.mktemp("usdt-link") / "marker-link"
    link.symlink_to(program)  # named through a symlink: the probe is read and attached on its target
    policy = _policy(tmp_path_factory.mktemp("usdt-policy") / "usdt.yaml", link,
                     others=(usdt_program.GUARDED, usdt_program.STACKED))
    running = RunningAgent(tmp_path_factory.mktemp("agent"), "--tracing-policy", str(policy)).start(120)
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


def test_usdt_event_with_arguments(agent: RunningAgent, program: Path) -> None:
    subprocess.run([str(program), "7", "filtered-out"], check=True)  # code 7: matchArgs drops it
    subprocess.run([str(program), "-42", "hello-usdt"], check=True)
    events = agent.wait_for(lambda ev: sum("process_usdt" in e for e in ev) >= 5)
    found = [e["process_usdt"] for e in events if "process_usdt" in e]
    [event] = [e for e in found if e["name"] == "marker"]
    assert event["path"].endswith("/marker-link")  # as the policy names it, like Tetragon
    assert (event["provider"], event["name"]) == ("tetra", "marker")
    assert event["args"] == [{"int_arg": -42}, {"string_arg": "hello-usdt"}]
    assert event["process"]["binary"] == str(program)
    assert event["action"] == "KPROBE_ACTION_POST"
    assert (event["policy_name"], event["message"], event["tags"]) == ("marker-usdt", "marker fired", ["test"])


def test_missing_probe_is_refused_at_load(agent: RunningAgent, program: Path, tmp_path: Path) -> None:
    """Added to the running agent, a policy naming a probe the binary lacks fails with the binary's probes,
    located in the file; the agent goes on with what it had."""
    policy = _policy(tmp_path / "absent.yaml", program, probe="absent")
    done = tetra(agent, "tracingpolicy", "add", str(policy))
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    assert f"{policy}:7:5: spec.usdts[0]: {program} has no USDT probe tetra:absent (its probes: ".encode() \
        in done.stderr
    listed = tetra(agent, "tracingpolicy", "list")
    assert b"marker-usdt" in listed.stdout and agent.proc is not None and agent.proc.poll() is None


def test_semaphore_probe_fires_while_attached(agent: RunningAgent, program: Path) -> None:
    """The program prepares the guarded probe only when its semaphore is raised: the kernel raised it
    because the uprobe went in with the semaphore's file offset."""
    guarded = _of_probe(agent, usdt_program.GUARDED)
    assert sorted(e["args"][0]["int_arg"] for e in guarded) == [-42, 7]
    assert all(e["process"]["binary"] == str(program) for e in guarded)


def test_arguments_in_memory(agent: RunningAgent) -> None:
    """The stacked probe's note puts its arguments on the stack: read from the process's memory."""
    stacked = _of_probe(agent, usdt_program.STACKED)
    assert sorted((e["args"][0]["int_arg"], e["args"][1]["string_arg"]) for e in stacked) == [
        (-42, "hello-usdt"), (7, "filtered-out")]


def _of_probe(agent: RunningAgent, name: str) -> list[dict[str, Any]]:
    """The two events of probe ``name`` (one per run of the program in the first test)."""
    events = agent.wait_for(lambda ev: sum(e.get("process_usdt", {}).get("name") == name for e in ev) >= 2)
    return [e["process_usdt"] for e in events if e.get("process_usdt", {}).get("name") == name]
