"""``tetra agent --record-ring`` on a live agent, then ``tetra replay`` as nobody: the same JSON lines.

The corpus tests (tests/unit/test_replay_golden.py) pin a recording made once;
this one proves the recorder on today's agent and kernel, including a policy,
the /proc seeds and lookups, and the recording's permissions. The live agent
runs the compiled line path (tetra/_speed) when it is built, the replay pure
Python: the two paths write the same lines from the same kernel records.
"""

import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

from tests.e2e.harness import TETRA, RunningAgent
from tetra._speed import PURE_PYTHON_ENV, lines_module

POLICY = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: replay-unlink
spec:
  tracepoints:
  - subsystem: "syscalls"
    event: "sys_enter_unlinkat"
    args:
    - index: 6
      type: "string"
    selectors:
    - matchArgs:
      - index: 6
        operator: "Prefix"
        values: ["{root}/"]
"""


def test_replay_of_a_recording_writes_what_the_agent_wrote(tmp_path: Path, nobody: int) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "gone").write_text("")
    policy = tmp_path / "policy.yaml"
    policy.write_text(textwrap.dedent(POLICY).format(root=files))
    recording = tmp_path / "ring.rec"
    agent = RunningAgent(tmp_path, "--record-ring", str(recording), "--tracing-policy", str(policy)).start(120)
    try:
        subprocess.run(["/usr/bin/rm", str(files / "gone")], check=True)
        subprocess.run(["/bin/sh", "-c", "exit 7"], check=False)
        agent.wait_for(lambda ev: any("process_tracepoint" in e for e in ev))
    finally:
        summary = agent.stop()
    assert recording.stat().st_mode & 0o777 == 0o600  # as the export file: it holds every argument
    with tempfile.TemporaryDirectory() as shared:  # pytest's own directory is root's only
        Path(shared).chmod(0o777)
        given = Path(shutil.copyfile(recording, Path(shared) / "ring.rec"))
        given.chmod(0o644)
        out = Path(shared) / "replayed.json"
        done = subprocess.run([*TETRA, "replay", str(given), "-o", "none", "--export-filename", str(out)],
                              capture_output=True, user=nobody, env={**os.environ, PURE_PYTHON_ENV: "1"})
        replayed = out.read_bytes() if out.exists() else b""
    assert done.returncode == 0, done.stderr
    assert replayed == agent.export.read_bytes()
    assert b'"diverged":0' in done.stderr
    assert f'"records":{summary["pipeline"]["records"]}'.encode() in done.stderr
    if lines_module() is not None:  # the tracepoint's events took the compiled path
        assert summary["pipeline"]["compiled_lines"] > 0
