"""Selectors on what a process became since it exec'd, in the real kernel: matchCapabilityChanges,
matchNamespaceChanges, and matchCapabilities with isNamespaceCapability.

Real processes change for real: a Python child drops its capabilities with setresuid or enters a
new mount namespace with unshare(2) between two mkdirs, a command runs under ``unshare -Ur``. Each
hook is mkdir (a syscall: a tracepoint on this kernel), filtered to its own directory.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Event, RunningAgent

pytestmark = pytest.mark.usefixtures("root")

POLICIES = {
    "cap-changes": """
        - matchArgs:
          - index: 0
            operator: "Prefix"
            values: ["{root}/caps/"]
          matchCapabilityChanges:
          - type: Effective
            operator: In
            values: ["CAP_SYS_ADMIN"]
        """,
    "ns-changes": """
        - matchArgs:
          - index: 0
            operator: "Prefix"
            values: ["{root}/ns/"]
          matchNamespaceChanges:
          - operator: In
            values: ["Mnt"]
        """,
    "userns-caps": """
        - matchArgs:
          - index: 0
            operator: "Prefix"
            values: ["{root}/userns/"]
          matchCapabilities:
          - type: Effective
            operator: In
            isNamespaceCapability: true
            values: ["CAP_SYS_ADMIN"]
        """,
}

HOOK = """\
kprobes:
- call: "sys_mkdir"
  syscall: true
  args:
  - index: 0
    type: "string"
  selectors:
"""

# A child of this test that mkdirs, changes one thing, and mkdirs twice more: the first mkdir after
# the change matches, the second finds the change already reported (its baseline moved on).
CHANGER = """
import ctypes, os, sys
where, change = sys.argv[1], sys.argv[2]
os.mkdir(os.path.join(where, "before"))
if change == "drop-caps":
    os.setresuid(65534, 65534, 65534)  # leaving uid 0 clears the effective set
else:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "unshare")
os.mkdir(os.path.join(where, "after"))
os.mkdir(os.path.join(where, "again"))
"""


@pytest.fixture(scope="module")
def root_dir() -> Iterator[Path]:
    """Outside pytest's 0700 temporary tree: the child that gave up root still mkdirs here."""
    root = Path(tempfile.mkdtemp(prefix="tetra-changes-"))
    root.chmod(0o755)
    for sub in ("caps", "ns", "userns"):
        (root / sub).mkdir()
        (root / sub).chmod(0o777)
    yield root
    shutil.rmtree(root)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None, root_dir: Path) -> Iterator[RunningAgent]:
    policy_dir = tmp_path_factory.mktemp("policies")
    for name, selectors in POLICIES.items():
        spec = HOOK + textwrap.indent(textwrap.dedent(selectors).format(root=root_dir), "  ")
        (policy_dir / f"{name}.yaml").write_text("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n"
                                                 f"  name: {name}\nspec:\n" + textwrap.indent(spec, "  "))
    running = RunningAgent(tmp_path_factory.mktemp("agent"), "--tracing-policy-dir", str(policy_dir)).start(180)
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


def made(events: list[Event], policy: str) -> list[str]:
    """The directories the policy's events report, in order."""
    return [e["process_kprobe"]["args"][0]["string_arg"] for e in events
            if e.get("process_kprobe", {}).get("policy_name") == policy]


def settled(agent: RunningAgent, policy: str) -> list[Event]:
    """The events once the policy's first one is exported and a later one would have been too (the agent
    flushes every second)."""
    agent.wait_for(lambda ev: bool(made(ev, policy)))
    time.sleep(2)
    return agent.events()


def run_changer(where: Path, change: str) -> None:
    subprocess.run([sys.executable, "-c", CHANGER, str(where), change], check=True, timeout=30)


def test_a_capability_lost_since_exec_is_reported_once(agent: RunningAgent, root_dir: Path) -> None:
    run_changer(root_dir / "caps", "drop-caps")
    assert made(settled(agent, "cap-changes"), "cap-changes") == [str(root_dir / "caps" / "after")]
    assert (root_dir / "caps" / "again").stat().st_uid == 65534  # the child did give up root


def test_a_namespace_entered_since_exec_is_reported_once(agent: RunningAgent, root_dir: Path) -> None:
    run_changer(root_dir / "ns", "unshare-mnt")
    assert made(settled(agent, "ns-changes"), "ns-changes") == [str(root_dir / "ns" / "after")]


def test_namespace_capability_only_outside_the_host_user_namespace(agent: RunningAgent, root_dir: Path) -> None:
    host, inside = root_dir / "userns" / "host", root_dir / "userns" / "inside"
    subprocess.run(["mkdir", str(host)], check=True)  # root's CAP_SYS_ADMIN, in the host's user namespace
    subprocess.run(["unshare", "-Ur", "mkdir", str(inside)], check=True)
    assert made(settled(agent, "userns-caps"), "userns-caps") == [str(inside)]
    assert os.path.isdir(host)
