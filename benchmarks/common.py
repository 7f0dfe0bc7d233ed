"""What every benchmark here shares: drivers, daemons under test, /proc readings, results.

    compile_driver(drivers/X.c) ──> binary in a temp dir (gcc -O2, never committed)
    run_driver(binary, args)    ──> Storm: "<elapsed_ns> <count>" from the driver's stdout
    Daemon(cmd, log, ready)     ──> started, "ready" awaited on its stderr (a file, polled),
                                    SIGTERM ──> {"summary": {...}} read back from that file
    ProcWatch(pid)              ──> CPU seconds, VmHWM, peak reset, from fds opened once
    loop_ext4(dir), frozen(mnt) ──> a real file system whose writes block (fsfreeze)
    write_results(doc, path)    ──> JSON (latest, and optionally a timestamped copy)

Used by exec_storm.py (tetra against an exec storm) and peers.py (tetra against
its peers on three storms). The scripts run as ``python benchmarks/X.py``, which
puts this directory first on sys.path, so ``import common`` finds this module.

Only ratios measured in one run mean anything on a shared, noisy machine
(shared/BENCHMARKS.md): every benchmark measures its own baseline.
"""

import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

HERE = Path(__file__).resolve().parent
DRIVERS = HERE / "drivers"
RESULTS = HERE / "results"
TETRA = Path(sys.executable).with_name("tetra")

# Printed once the start-up policies are in (after "ready in", which is process events only).
TETRA_READY_MARK = "tetra: INFO: policies settled in"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 120.0
# The agent flushes its export file once a second; a quiet spell shorter than
# that could be mistaken for the end of the drain.
DRAIN_QUIET_S = 3.0
POLL_S = 0.2
# Large enough that the export file never rotates during a storm: counting stays
# a read of one file, and no event is dropped with an old backup.
EXPORT_MAX_SIZE_MB = 4096
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Rich falls back to 80 columns when output is a file or pipe, which folds the table.
WIDTH = None if sys.stdout.isatty() else 170

console = Console(stderr=True, width=WIDTH)


class BenchmarkError(Exception):
    """The benchmark could not measure (driver, agent or peer failed); exit code 2."""


@dataclass
class Storm:
    """One run of a driver: how long its ``count`` operations took, and its pid."""

    count: int
    elapsed_ns: int
    driver_pid: int

    @property
    def rate(self) -> float:
        return self.count / (self.elapsed_ns / 1e9)


def compile_driver(source: Path, workdir: Path) -> Path:
    """Build a C driver fresh each run, so no binary is ever committed."""
    binary = workdir / source.stem
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary), str(source)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchmarkError(f"gcc failed on {source.name}:\n{result.stderr}")
    return binary


def run_driver(binary: Path, args: Sequence[str], on_start: Callable[[int], None] | None = None) -> Storm:
    """Run a driver once; ``on_start`` gets its pid, which tags the storm's events."""
    proc = subprocess.Popen([str(binary), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if on_start:
        on_start(proc.pid)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise BenchmarkError(f"{binary.name} exited with {proc.returncode}: {err.strip()}")
    elapsed_ns, count = (int(x) for x in out.split())
    return Storm(count=count, elapsed_ns=elapsed_ns, driver_pid=proc.pid)


def parse_cpu_seconds(stat: str) -> float:
    """utime + stime of /proc/<pid>/stat text (all threads); fields 14-15, after the comm."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def parse_status_kib(status: str, key: str) -> int:
    """One "kB" line of /proc/<pid>/status text, e.g. VmHWM (peak resident set)."""
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise BenchmarkError(f"no {key} in /proc status")


def cpu_seconds(pid: int) -> float:
    return parse_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())


def status_kib(pid: int, key: str) -> int:
    return parse_status_kib(Path(f"/proc/{pid}/status").read_text(), key)


class ProcWatch:
    """/proc readings of one process through descriptors opened once.

    Re-reading an open procfs file regenerates it, so polling costs no openat:
    that matters when the process watched is a tracer hooking openat, which
    would otherwise see (and, with a firehose policy, export) every poll.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._stat = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        self._status = os.open(f"/proc/{pid}/status", os.O_RDONLY)
        try:
            self._clear_refs: int | None = os.open(f"/proc/{pid}/clear_refs", os.O_WRONLY)
        except OSError:  # kernels without CONFIG_PROC_PAGE_MONITOR
            self._clear_refs = None

    def cpu_seconds(self) -> float:
        return parse_cpu_seconds(os.pread(self._stat, 4096, 0).decode())

    def status_kib(self, key: str) -> int:
        return parse_status_kib(os.pread(self._status, 8192, 0).decode(), key)

    def reset_peak_rss(self) -> bool:
        """Reset VmHWM to the current RSS ("5" to clear_refs); False where unsupported."""
        if self._clear_refs is None:
            return False
        os.pwrite(self._clear_refs, b"5", 0)
        return True

    def close(self) -> None:
        for fd in (self._stat, self._status, self._clear_refs):
            if fd is not None:
                os.close(fd)


def tetra_command(export: Path, policies: Sequence[Path] = ()) -> list[str]:
    """``tetra agent`` exporting JSON to ``export`` only (nothing on stdout)."""
    cmd = [str(TETRA), "agent", "-o", "none", "--export-filename", str(export),
           "--export-file-max-size-mb", str(EXPORT_MAX_SIZE_MB)]
    for policy in policies:
        cmd += ["--tracing-policy", str(policy)]
    return cmd


class Daemon:
    """A tracer under test; its stderr goes to a file we poll.

    A file rather than a pipe: nothing has to drain it while the storm runs, and
    the whole log is there to quote when the process fails. On SIGTERM it must
    print one ``{"summary": {...}}`` line to stderr (tetra agent and
    plain_tracer.py both do).
    """

    def __init__(self, cmd: Sequence[str], log: Path, ready_mark: str) -> None:
        self.cmd = list(cmd)
        self.log = log
        self.ready_mark = ready_mark
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and wait for the ready mark; returns the seconds that took."""
        started = time.monotonic()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        while self.ready_mark not in self.log_text():
            if self.proc.poll() is not None or time.monotonic() - started > READY_TIMEOUT_S:
                raise BenchmarkError(f"{Path(self.cmd[0]).name} did not become ready:\n{self.log_text()}")
            time.sleep(POLL_S / 4)
        return time.monotonic() - started

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> dict[str, Any]:
        """SIGTERM, wait, and return the summary; without one, losses cannot be judged."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BenchmarkError(f"{self.cmd[0]} did not stop within {STOP_TIMEOUT_S:.0f}s:\n"
                                 f"{self.log_text()}") from None
        summaries = [ln for ln in self.log_text().splitlines() if ln.startswith('{"summary"')]
        if code != 0 or not summaries:
            raise BenchmarkError(f"{self.cmd[0]} exited with {code} and {len(summaries)} summaries:\n"
                                 f"{self.log_text()}")
        summary: dict[str, Any] = orjson.loads(summaries[-1])["summary"]
        return summary

    def kill(self) -> None:
        """Leave nothing behind when a measurement fails half-way."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def loop_ext4(workdir: Path, size_mb: int = 1024) -> Iterator[Path]:
    """A fresh ext4 file system (a sparse image on a loop device) mounted at ``workdir/mnt``.

    Its own file system, so that :func:`frozen` stalls the writes of one test and
    nothing else on the machine.
    """
    image, mnt = workdir / "fs.img", workdir / "mnt"
    mnt.mkdir()
    with image.open("wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["fsfreeze", "--unfreeze", str(mnt)], capture_output=True)  # if a failure left it frozen
        subprocess.run(["umount", str(mnt)], check=True)
        image.unlink()


@contextmanager
def frozen(mnt: Path) -> Iterator[None]:
    """A disk that stalls for real: fsfreeze blocks every write(2) to ``mnt`` (in the
    kernel, uninterruptibly) until the context ends, when they all complete."""
    subprocess.run(["fsfreeze", "--freeze", str(mnt)], check=True)
    try:
        yield
    finally:
        subprocess.run(["fsfreeze", "--unfreeze", str(mnt)], check=True)


def wait_for_drain(progress: Callable[[], int], target: int | None, quiet_s: float = DRAIN_QUIET_S) -> bool:
    """Return once ``progress()`` reached ``target`` or stopped changing for ``quiet_s``.

    ``progress`` is anything that grows while a tracer still delivers (events
    counted, bytes in its export file). Returns False on DRAIN_TIMEOUT_S.
    """
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    last, quiet_since = progress(), time.monotonic()
    while target is None or last < target:
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
        now_value = progress()
        if now_value != last:
            last, quiet_since = now_value, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return True
    return True


def file_size(path: Path) -> int:
    """Bytes in ``path`` (0 before it exists); a stat, so no openat for tracers to see."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def bpf_holders(exclude: Sequence[int] = ()) -> list[str]:
    """"pid comm" of every process holding a loaded BPF program (an fd on anon_inode:bpf-prog).

    On a shared machine another session's tracer can sit on the same tracepoints and slow
    every configuration, the baseline included; a benchmark records who was there.
    """
    holders = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            fds = os.listdir(entry / "fd")
            if any(os.readlink(entry / "fd" / fd) == "anon_inode:bpf-prog" for fd in fds):
                holders.append(f"{entry.name} {(entry / 'comm').read_text().strip()}")
        except OSError:  # gone, or a descriptor closed while we looked
            continue
    return holders


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def span(values: Sequence[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def host_info() -> dict[str, Any]:
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "node": platform.node()}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def write_results(doc: dict[str, Any], path: Path, timestamped: bool = False) -> list[Path]:
    """Write ``doc`` as indented JSON to ``path`` and, if asked, to a copy named by the time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
    written = [path]
    if timestamped:
        stem = path.stem.removesuffix("-latest")
        written.append(path.with_name(f"{stem}-{utc_now().strftime('%Y%m%dT%H%M%SZ')}{path.suffix}"))
    for target in written:
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    return written
