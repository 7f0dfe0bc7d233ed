"""auditd as a peer in benchmarks/peers.py: installed only on request, run under our own
configuration, and undone afterwards.

Why it is measured last, and only with ``--with-auditd``: starting auditd even once
makes every task created afterwards carry an audit context until reboot, about 6
to 18% slower syscalls (shared/KERNEL.md). Any measurement taken after it is
tainted, so peers.py runs every other configuration first and then, after
auditd has stopped, a ``baseline-after-auditd`` to show what is left behind.

    audit_status()             the kernel's audit state, read over netlink (AUDIT_GET):
                               works before auditctl is installed; nothing is started
    AuditdSession.open()       refuse if an auditd already runs or audit rules exist
                               (not ours to change); remember enabled/backlog settings;
                               auditd -n -c <temp dir>: log to a temp file, RAW format,
                               no dispatcher plugins; wait until the kernel names its pid
    session.set_rules(rules)   auditctl -D, then each rule, all keyed "tetra-bench"
    session.close()            auditctl -D; stop auditd (SIGTERM, our own pid only);
                               restore enabled, backlog_limit and backlog_wait_time

``count_audit_log`` attributes the log's SYSCALL records to a storm; see its docstring.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import BenchmarkError

KEY = "tetra-bench"
# A syscall rule on the storms' three syscalls, and the same rule restricted to a
# uid no process has: the kernel evaluates it on every listed syscall, never logs.
NOBODY_UID = 2147483646
SYSCALLS = ("execve", "openat", "connect")
SYSCALL_NUMBERS = {"exec": 59, "open": 257, "connect": 42}  # x86_64
BACKLOG_LIMIT = 8192  # what Debian's default rules file sets
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0

NETLINK_AUDIT = 9
AUDIT_GET = 1000
NLMSG_ERROR = 2
NLM_F_REQUEST_ACK = 0x1 | 0x4
STATUS_FIELDS = ("mask", "enabled", "failure", "pid", "rate_limit", "backlog_limit", "lost", "backlog",
                 "version", "backlog_wait_time", "backlog_wait_time_actual")

AUDITD_CONF = """\
local_events = yes
write_logs = yes
log_file = {log}
log_format = RAW
log_group = root
priority_boost = 4
flush = INCREMENTAL_ASYNC
freq = 50
num_logs = 0
max_log_file = 100000
max_log_file_action = IGNORE
space_left = 75
space_left_action = IGNORE
admin_space_left = 50
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
plugin_dir = {plugins}
"""


def audit_rules(matching: bool) -> list[list[str]]:
    """auditctl arguments: the storms' syscalls, logged (``matching``) or filtered to nobody."""
    rule = ["-a", "always,exit", "-F", "arch=b64"]
    for name in SYSCALLS:
        rule += ["-S", name]
    if not matching:
        rule += ["-F", f"uid={NOBODY_UID}"]
    return [rule + ["-k", KEY]]


def audit_status() -> dict[str, int]:
    """The kernel's audit status (AUDIT_GET over netlink); read-only, needs root."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT) as sock:
        sock.bind((0, 0))
        sock.settimeout(5.0)
        sock.send(struct.pack("=IHHII", 16, AUDIT_GET, NLM_F_REQUEST_ACK, 1, 0))
        for _ in range(4):
            data = sock.recv(65536)
            length, kind = struct.unpack_from("=IH", data)
            if kind == AUDIT_GET:
                values = struct.unpack_from(f"={(length - 16) // 4}I", data, 16)
                return dict(zip(STATUS_FIELDS, values))
            if kind == NLMSG_ERROR and struct.unpack_from("=i", data, 16)[0] != 0:
                raise BenchmarkError(f"audit status: netlink error {struct.unpack_from('=i', data, 16)[0]}")
    raise BenchmarkError("audit status: no AUDIT_GET reply")


def processes_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def auditd_installed() -> bool:
    return shutil.which("auditd") is not None and shutil.which("auditctl") is not None


def install_auditd() -> str:
    """apt-get install auditd; stop the daemon its package script may have started.

    Returns what was done, for the report. Called only with --with-auditd.
    """
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "auditd"],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0 or not auditd_installed():
        raise BenchmarkError(f"apt-get install auditd failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    note = "installed auditd with apt-get"
    started = processes_named("auditd")
    if started:  # the package's init script started it: ours to stop, before measuring
        subprocess.run(["auditctl", "-D"], capture_output=True)
        for pid in started:
            os.kill(pid, signal.SIGTERM)
        _wait_gone(started)
        note += f"; stopped the auditd its package started (pid {', '.join(map(str, started))})"
    return note


def _wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        if time.monotonic() > deadline:
            raise BenchmarkError(f"auditd (pid {pids}) did not stop")
        time.sleep(0.1)


def auditctl(*args: str) -> str:
    result = subprocess.run(["auditctl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchmarkError(f"auditctl {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


class AuditdSession:
    """Our own auditd, for the auditd measurements of one run."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "auditd"
        self.log = self.dir / "audit.log"
        self.stderr = self.dir / "auditd.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.before: dict[str, int] = {}
        self.restored: dict[str, Any] = {}

    def open(self) -> None:
        if processes_named("auditd"):
            raise BenchmarkError("an auditd is already running; not measuring over someone else's audit setup")
        rules = auditctl("-l").strip()
        if rules and rules != "No rules":
            raise BenchmarkError(f"audit rules are already loaded; not touching them:\n{rules}")
        self.before = audit_status()
        (self.dir / "plugins.d").mkdir(parents=True)
        (self.dir / "auditd.conf").write_text(AUDITD_CONF.format(log=self.log, plugins=self.dir / "plugins.d"))
        with self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(["auditd", "-n", "-c", str(self.dir)], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + START_TIMEOUT_S
        while audit_status()["pid"] != self.proc.pid:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"auditd did not register with the kernel:\n"
                                     f"{self.stderr.read_text(errors='replace')}")
            time.sleep(0.1)
        auditctl("-b", str(BACKLOG_LIMIT))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def set_rules(self, rules: list[list[str]]) -> None:
        auditctl("-D")
        for rule in rules:
            auditctl(*rule)

    def lost(self) -> int:
        return audit_status()["lost"]

    def close(self) -> None:
        """Delete the rules, stop our auditd, put the kernel's settings back; never raises."""
        steps: dict[str, Any] = {}
        steps["rules_deleted"] = subprocess.run(["auditctl", "-D"], capture_output=True).returncode == 0
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        steps["auditd_stopped"] = self.proc is None or self.proc.poll() is not None
        if self.before:
            for flag, key in (("-b", "backlog_limit"), ("--backlog_wait_time", "backlog_wait_time"),
                              ("-e", "enabled")):
                ok = subprocess.run(["auditctl", flag, str(self.before[key])], capture_output=True).returncode == 0
                steps[f"{key}_restored"] = ok
        try:
            steps["status_after"] = audit_status()
        except (OSError, BenchmarkError) as err:
            steps["status_after"] = str(err)
        steps["status_before"] = self.before
        self.restored = steps


@dataclass
class AuditCount:
    """The SYSCALL records of one storm in an audit log, from a byte offset on."""

    lines: int = 0  # every record line (SYSCALL, PATH, CWD, SOCKADDR, PROCTITLE, ...)
    window_lines: int = 0
    storm_events: int = 0  # SYSCALL records of the driver or its children
    delivered: int = 0  # the storm's own operation


def _fields(line: bytes) -> dict[bytes, bytes]:
    return dict(tok.split(b"=", 1) for tok in line.split() if b"=" in tok)


def _serial(fields: dict[bytes, bytes]) -> bytes:
    """msg=audit(1700000000.123:456): -> b"456"; records of one event share it."""
    return fields.get(b"msg", b"").rsplit(b":", 2)[-2] if b"msg" in fields else b""


def count_audit_log(path: Path, storm: str, driver_pid: int, target: str | None,
                    start: int, window_end: int) -> AuditCount:
    """Count one storm's records in a RAW audit log, from byte ``start``.

    exec: SYSCALL execve with ppid = the driver; open: SYSCALL openat by the
    driver whose PATH record (same serial) names ``target`` (the driver's own
    loader opens are not counted); connect: SYSCALL connect by the driver.
    Lines before ``window_end`` count as written during the storm and drain.
    """
    count = AuditCount()
    number = SYSCALL_NUMBERS[storm]
    key = f'key="{KEY}"'.encode()
    pending: set[bytes] = set()  # open serials waiting for their PATH record
    target_name = f'name="{target}"'.encode() if target else b""
    offset = start
    for line in _lines(path, start):
        count.lines += 1
        if offset < window_end:
            count.window_lines += 1
        offset += len(line)
        if line.startswith(b"type=PATH") and pending:
            serial = _serial(_fields(line))
            if serial in pending and target_name in line:
                pending.discard(serial)
                count.delivered += 1
            continue
        if not line.startswith(b"type=SYSCALL") or key not in line:
            continue
        fields = _fields(line)
        pid, ppid = int(fields.get(b"pid", b"0")), int(fields.get(b"ppid", b"0"))
        if driver_pid not in (pid, ppid):
            continue
        count.storm_events += 1
        if int(fields.get(b"syscall", b"-1")) != number:
            continue
        if storm == "exec" and ppid == driver_pid:
            count.delivered += 1
        elif storm == "open" and pid == driver_pid:
            pending.add(_serial(fields))
        elif storm == "connect" and pid == driver_pid:
            count.delivered += 1
    return count


def _lines(path: Path, start: int) -> Iterator[bytes]:
    if not path.exists():
        return
    with path.open("rb") as f:
        f.seek(start)
        yield from f
