"""A live agent's compact lines for a raw_syscalls/sys_enter policy: the syscall id as the call it names.

The policy hooks every syscall entry but keeps only one binary's (a copy of
true(1) under the test's own directory), so the stream is a handful of lines;
each must read as Tetragon's encoder writes it: ``☎  syscall <node> <binary>
<call>(<arguments>)``, the node standing where a pod would be.
"""

import re
import shutil
import subprocess
from pathlib import Path

from tests.e2e.harness import RunningAgent
from tetra.kernel.syscall_abi import MACHINE_ABI
from tetra.kernel.syscall_table import ARM64, X64
from tetra.node import node_name

EXIT_GROUP = str(next(nr for nr, name in {"x64": X64, "arm64": ARM64}[MACHINE_ABI].items() if name == "exit_group"))

POLICY = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: raw-syscalls-one-binary
spec:
  tracepoints:
  - subsystem: "raw_syscalls"
    event: "sys_enter"
    args:
    - index: 4
      type: "int64"
    selectors:
    - matchBinaries:
      - operator: "In"
        values: ["{binary}"]
"""


def test_raw_syscall_enter_is_a_phone_line_naming_the_call(tmp_path: Path) -> None:
    binary = tmp_path / "rawsys-true"
    shutil.copy("/usr/bin/true", binary)
    policy = tmp_path / "raw.yaml"
    policy.write_text(POLICY.format(binary=binary))
    out = tmp_path / "stdout"
    with out.open("wb") as stdout:
        agent = RunningAgent(tmp_path, "-o", "compact", "--color", "never", "--tracing-policy", str(policy))
        agent.start_with(stdout)
        try:
            done = subprocess.run([str(binary)], check=True)
            assert done.returncode == 0
            agent.wait_for(lambda events: any(
                e.get("process_tracepoint", {}).get("process", {}).get("binary") == str(binary)
                and e["process_tracepoint"]["args"][0].get("long_arg") == EXIT_GROUP for e in events))
        finally:
            agent.stop()
    head = f"☎  syscall {node_name()} {binary} "
    calls = [line.removeprefix(head) for line in out.read_text().splitlines() if line.startswith("☎")]
    assert "exit_group(int error_code=?)" in calls, calls
    # every line of the binary names a call from the table, with its arguments' types and names
    assert calls and all(re.fullmatch(r"\w+(\(.*\))?", call) and call != "unknown" for call in calls), calls
    assert any(call.startswith("mmap(unsigned long addr=?, unsigned long len=?,") for call in calls), calls
