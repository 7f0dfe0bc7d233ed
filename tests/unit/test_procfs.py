"""Reading processes that predate the agent from the real /proc."""

import os
import subprocess
import sys
import time

from tetra.process import procfs
from tetra.wire.constants import ENV_MAX


def test_reads_a_running_process() -> None:
    child = subprocess.Popen(["/bin/sleep", "30", "1"], cwd="/tmp")
    try:
        rec = None
        for _ in range(250):  # until the child has exec'd (slow on a loaded machine)
            rec = procfs.read_process(child.pid)
            if rec is not None and rec.filename == "/usr/bin/sleep" and rec.argv[:1] == ["/bin/sleep"]:
                break
            time.sleep(0.02)
        assert rec is not None
        assert rec.pid == child.pid and rec.ppid == os.getpid()
        assert rec.filename == "/usr/bin/sleep"
        assert rec.argv == ["/bin/sleep", "30", "1"]
        assert rec.cwd == "/tmp"
        assert rec.uid == os.getuid()
        assert rec.flags == ["procFS"]
        assert rec.ktime > 0
    finally:
        child.kill()
        child.wait()


def test_gone_process_is_none() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert procfs.read_process(child.pid) is None


def test_scan_is_sorted_parents_first() -> None:
    records = list(procfs.scan())
    assert any(r.filename == "[kthreadd]" for r in records), "kernel threads are named [comm]"
    assert records, "a /proc without processes"
    starts = [r.ktime for r in records]
    assert starts == sorted(starts)
    by_pid = {r.pid: r for r in records}
    me = by_pid[os.getpid()]
    parent = by_pid.get(me.ppid)
    assert parent is None or parent.ktime <= me.ktime


def test_environment_is_read_when_asked_and_bounded() -> None:
    big = "x" * (ENV_MAX + 100)
    child = subprocess.Popen(["/bin/sleep", "30"], env={"TETRA_PROBE": "one=two", "BIG": big, "LAST": "z"})
    try:
        rec = None
        for _ in range(250):  # until the child has exec'd, and the kernel has laid out its new stack
            rec = procfs.read_process(child.pid, env=True)
            if rec is not None and rec.filename == "/usr/bin/sleep" and rec.argv[:1] == ["/bin/sleep"] and rec.env:
                break
            time.sleep(0.02)
        assert rec is not None and rec.env is not None
        assert "TETRA_PROBE=one=two" in rec.env
        assert not any(entry.startswith(("BIG=", "LAST=")) for entry in rec.env)  # cut at ENV_MAX bytes
        assert rec.flags == ["procFS", "truncEnv"]
        assert procfs.read_process(child.pid).env is None  # not asked: not read
    finally:
        child.kill()
        child.wait()
