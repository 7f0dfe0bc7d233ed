"""Reading processes that predate the agent from the real /proc."""

import os
import subprocess
import sys
import time

from tetra.process import procfs


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
