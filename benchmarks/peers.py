"""What tetra costs next to its peers: three storms, up to eight configurations, one run.

    compile drivers/{exec,open,connect}_storm.c (gcc -O2, temp dir); one small untimed storm each
    for each repetition, every (storm, configuration) pair once, in a fresh random order:
        baseline          the storm alone ─────────────────────────────────────────> ops/s
        bare-hook         plain_tracer.py --bare (programs that return at once) ┐
        tetra-unmatched   tetra agent + policies/unmatched.yaml                 │ start, wait "ready"
        tetra-selective   tetra agent + policies/selective.yaml                 │ (bcc compile: untimed)
        tetra-firehose    tetra agent + policies/firehose.yaml                  │ reset VmHWM, read CPU
        bcc-tracer        plain_tracer.py (ring buffer, orjson lines)           ┘ storm ────────> ops/s
                          wait until the tracer's CPU goes idle, then until its export file stops
                          growing; read CPU and VmHWM; SIGTERM ──> summary (sent, lost, received)
                          count the export file ──> events delivered, loss accounting
    then, only with --with-auditd and last of all (auditd slows every later task until reboot):
        auditd-unmatched, auditd   our own auditd, rules per pair, shuffled per repetition
        baseline-after-auditd      the storms alone again: what auditd left behind

Only ratios within one run mean anything on a shared, noisy machine
(shared/BENCHMARKS.md), hence one run, shuffled pairs and a same-run baseline.
Each pair gets a fresh tracer, so every summary (kernel-counted losses, hook
counters, peak RSS) belongs to exactly one storm. This is a measurement, not a
test: it asserts nothing about speed. It exits 1 when a loss-accounting check
fails (events lost without being counted, a quiet policy that posted, counters
that do not reconcile), 2 when it could not measure at all.

Usage: .venv/bin/python benchmarks/peers.py [--quick] [--repetitions R] [--storms exec,open,connect]
                                           [--configs NAME,...] [--ops STORM=N] [--with-auditd] [--json OUT]
"""

import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import click
import orjson
from rich.console import Console
from rich.table import Table

import auditd_peer
from common import (DRAIN_TIMEOUT_S, TETRA_READY_MARK, BenchmarkError, Daemon, ProcWatch, bpf_holders,
                    compile_driver, console, file_size, host_info, load_average, run_driver, span, tetra_command,
                    utc_now, write_results)
from plain_tracer import READY_MARK as PLAIN_READY_MARK

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "peers-latest.json"
PLAIN_TRACER = HERE / "plain_tracer.py"
POLICIES = HERE / "policies"

STORM_BINARIES = frozenset({"/bin/true", "/usr/bin/true"})
SETTLE_S = 0.2  # after "ready" (or before a baseline storm), then until the tracer is idle
CPU_WINDOW_S = 0.1  # the tracer counts as busy while it uses more than IDLE_SHARE of a core
IDLE_SHARE = 0.3
IDLE_WINDOWS = 3  # consecutive idle windows that end the drain
# How long an export file must not grow before its tracer's drain counts as done:
TETRA_QUIET_S = 1.3  # longer than the agent's 1 s flush tick
PLAIN_QUIET_S = 0.4  # plain_tracer.py flushes after every 100 ms poll
AUDITD_QUIET_S = 0.6  # our auditd.conf: flush = INCREMENTAL_ASYNC, freq = 50
FILE_QUIET_MAX_S = 8.0
# Growth per quiet window still counted as quiet: other processes' events (another session's
# test suite execs hundreds of processes a second here); a drain writes 10-30 MB/s.
BACKGROUND_BYTES = 1 << 20
MIN_EVENTS_PER_EVENT_COST = 100  # below this, CPU per event is wake-ups, not work: not shown
TABLE_WIDTH = 200


@dataclass(frozen=True)
class StormSpec:
    """A workload: its C driver, its size, and how its events are recognised."""

    name: str
    driver: str  # drivers/<driver>.c
    ops: int  # default operations per storm
    quick_ops: int
    what: str

    def args(self, ops: int, target: Path) -> list[str]:
        return [str(ops), str(target)] if self.name == "open" else [str(ops)]


# Defaults sized so that 5 repetitions of everything (90 storms, 75 tracer starts)
# take about 9 minutes on a 2-core machine: each baseline storm lasts about a second.
STORMS = {s.name: s for s in (
    StormSpec("exec", "exec_storm", 1500, 200, "fork + execve + wait of /bin/true"),
    StormSpec("open", "open_storm", 1_000_000, 100_000, "open + close of one file"),
    StormSpec("connect", "connect_storm", 50_000, 5_000, "TCP connect + close to a loopback listener"),
)}


@dataclass(frozen=True)
class Config:
    """A configuration: what runs beside the storm (``kind``) and what it must deliver."""

    name: str
    kind: str  # key of SUBJECTS: none, bare, tetra, plain, auditd
    posts: frozenset[str]  # storms whose every operation must reach the export (or be counted lost)
    describe: str
    policy: str | None = None  # benchmarks/policies/<policy>.yaml
    quiet_policy: bool = False  # the policy's hooks must post nothing at all
    audit_matching: bool = False
    after_auditd: bool = False  # runs in the auditd phase, after auditd has stopped


ALL_STORMS = frozenset(STORMS)
CONFIGS = {c.name: c for c in (
    Config("baseline", "none", frozenset(), "no tracing"),
    Config("bare-hook", "bare", frozenset(), "bcc programs on the same tracepoints, returning at once"),
    Config("tetra-unmatched", "tetra", frozenset({"exec"}), "tetra, policy hooking openat/connect, matching nothing",
           policy="unmatched", quiet_policy=True),
    Config("tetra-selective", "tetra", frozenset({"exec"}), "tetra, sensitive-file and public-connect policy",
           policy="selective", quiet_policy=True),
    Config("tetra-firehose", "tetra", ALL_STORMS, "tetra, every openat and connect posted", policy="firehose"),
    Config("bcc-tracer", "plain", ALL_STORMS, "plain bcc tracer: ring buffer, orjson lines"),
    Config("auditd-unmatched", "auditd", frozenset(), "auditd, rule on the three syscalls for a uid nobody has"),
    Config("auditd", "auditd", ALL_STORMS, "auditd, rule -S execve -S openat -S connect", audit_matching=True),
    Config("baseline-after-auditd", "none", frozenset(), "no tracing, after auditd ran", after_auditd=True),
)}
AUDITD_CONFIGS = ("auditd-unmatched", "auditd", "baseline-after-auditd")
QUIET_POLICY_TAGS = tuple(b'"policy_name":"bench-%s"' % c.policy.encode()
                          for c in CONFIGS.values() if c.quiet_policy and c.policy)
DEFAULT_CONFIGS = ("baseline", "bare-hook", "tetra-unmatched", "tetra-selective", "tetra-firehose", "bcc-tracer")


# ── counting events in an export file ─────────────────────────────────────────────────────


@dataclass
class EventCount:
    """One storm's events in a tracer's export file."""

    lines: int = 0  # every line in the file
    window_lines: int = 0  # lines written from the storm's start until just before SIGTERM
    storm_events: int = 0  # events of the driver and of its children
    delivered: int = 0  # the storm's own operations (exec of /bin/true, open of the target, connect)
    storm_posts: int = 0  # policy events (process_kprobe) of the driver and its children
    # Policy events of a quiet policy (tetra-unmatched, -selective) for other processes on the
    # machine, by "binary function": a real /etc/shadow read elsewhere is not the storm's.
    quiet_posts_elsewhere: dict[str, int] = field(default_factory=dict)


def _lines_from(path: Path) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for every line of ``path``."""
    if not path.exists():
        return
    offset = 0
    with path.open("rb") as f:
        for line in f:
            yield offset, line
            offset += len(line)


def count_tetra(path: Path, storm: str, driver_pid: int, target: str, window: tuple[int, int]) -> EventCount:
    """Tetragon JSON: the storm's events are those of the driver (process.pid) and of its
    children (parent.pid); the storm's operations are process_exec of /bin/true with the
    driver as parent, or process_kprobe of sys_openat (on the target) / sys_connect by it."""
    count = EventCount()
    tag = b'"pid":%d' % driver_pid  # cheap pre-filters (a superset: parsing decides)
    suffix = {"open": "sys_openat", "connect": "sys_connect"}.get(storm)
    for offset, line in _lines_from(path):
        count.lines += 1
        count.window_lines += window[0] <= offset < window[1]
        quiet = any(t in line for t in QUIET_POLICY_TAGS)
        if tag not in line and not quiet:
            continue
        kind, body = next(iter(orjson.loads(line).items()))
        pid = body.get("process", {}).get("pid")
        ppid = body.get("parent", {}).get("pid")
        if driver_pid not in (pid, ppid):
            if quiet and kind == "process_kprobe":
                key = f"{body['process'].get('binary')} {body.get('function_name')}"
                count.quiet_posts_elsewhere[key] = count.quiet_posts_elsewhere.get(key, 0) + 1
            continue
        count.storm_events += 1
        count.storm_posts += kind == "process_kprobe"
        if storm == "exec":
            count.delivered += (kind == "process_exec" and ppid == driver_pid
                                and body["process"].get("binary") in STORM_BINARIES)
        elif kind == "process_kprobe" and pid == driver_pid and body.get("function_name", "").endswith(suffix):
            count.delivered += storm != "open" or any(a.get("string_arg") == target for a in body.get("args", ()))
    return count


def forked_after(pid: int, driver_pid: int, pid_max: int) -> bool:
    """Whether ``pid`` was handed out after ``driver_pid``, pids wrapping at pid_max (32768
    by default: a long storm wraps them, and a child then has a smaller pid than the driver)."""
    return 0 < (pid - driver_pid) % pid_max < pid_max // 2


def _pid_max() -> int:
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return 4194304  # the kernel's upper bound


def count_plain(path: Path, storm: str, driver_pid: int, target: str, window: tuple[int, int]) -> EventCount:
    """plain_tracer.py lines carry no parent pid: the storm's execs are the execs of
    /bin/true by pids handed out after the driver's (the children, forked after it),
    and their later events count as the storm's too."""
    count = EventCount()
    children: set[int] = set()
    pid_max = _pid_max()
    for offset, line in _lines_from(path):
        count.lines += 1
        count.window_lines += window[0] <= offset < window[1]
        event = orjson.loads(line)
        pid, kind = event["pid"], event["event"]
        if kind == "exec" and event["path"] in STORM_BINARIES and forked_after(pid, driver_pid, pid_max):
            children.add(pid)
            count.storm_events += 1
            count.delivered += storm == "exec"
            continue
        if pid != driver_pid and pid not in children:
            continue
        count.storm_events += 1
        if pid == driver_pid and ((storm == "open" and kind == "openat" and event["path"] == target)
                                  or (storm == "connect" and kind == "connect")):
            count.delivered += 1
    return count


def count_audit(path: Path, storm: str, driver_pid: int, target: str, window: tuple[int, int]) -> EventCount:
    c = auditd_peer.count_audit_log(path, storm, driver_pid, target, window[0], window[1])
    return EventCount(lines=c.lines, window_lines=c.window_lines, storm_events=c.storm_events,
                      delivered=c.delivered)


# ── loss accounting ───────────────────────────────────────────────────────────────────────


@dataclass
class Check:
    """One reconciliation; a non-strict one is reported but does not fail the run."""

    name: str
    ok: bool
    detail: str
    strict: bool = True


def storm_check(storm: str, config: Config, delivered: int, lost: int, ops: int) -> list[Check]:
    """Every storm operation a configuration must deliver is in the file or counted lost."""
    if storm not in config.posts:
        return []
    return [Check("ops delivered or lost", delivered + lost >= ops,
                  f"{delivered:,} delivered + {lost:,} lost ≥ {ops:,} ops")]


def account_tetra(summary: dict[str, Any], counted: EventCount, storm: str, config: Config, ops: int) -> list[Check]:
    """Kernel-side sent + lost against what user space received, decoded and wrote."""
    kernel = summary["kernel"]
    sent = sum(v["sent"] for v in kernel.values())
    lost = sum(v["lost"] for v in kernel.values())
    received = summary["received"]
    pipeline = summary["pipeline"]
    written = sum(pipeline["events"].values())
    dropped = summary.get("export_lines_dropped", 0)  # counted by the exporter (its queue was full)
    ours = [p for p in summary.get("policies", []) if p.get("name", "").startswith("bench-")]
    hooks = [h for p in ours for h in p.get("hooks", [])]
    posted = sum(h["posted"] for h in hooks)
    generic = kernel.get("generic", {"sent": 0, "lost": 0})
    checks = [
        Check("sent=received", sent == received,
              f"sent {sent:,} + lost {lost:,} = {sent + lost:,} attempted; received {received:,}"),
        Check("received=decoded", pipeline["records"] == received,
              f"records {pipeline['records']:,}, decode errors {pipeline['decode_errors']}"),
        Check("events=lines", written == counted.lines + dropped,
              f"pipeline events {written:,}, lines in file {counted.lines:,}, dropped by the exporter {dropped:,}"),
        # Not strict: the agent reads hook counters after the kernel's sent/lost, with its
        # probes still attached, so a firehose sees the agent's own opens in between.
        Check("posted=sent+lost", posted == generic["sent"] + generic["lost"],
              f"hooks posted {posted:,}, generic sent {generic['sent']:,} + lost {generic['lost']:,} "
              f"(difference {posted - generic['sent'] - generic['lost']:+,})", strict=False),
    ]
    if config.quiet_policy:
        # Strict: nothing of the storm posted, and every post is an event of another process
        # found in the file. Not strict: nothing at all posted on the whole machine.
        elsewhere = sum(counted.quiet_posts_elsewhere.values())
        others = ", ".join(f"{k} ×{n}" for k, n in sorted(counted.quiet_posts_elsewhere.items())) or "none"
        hooks_text = ", ".join(f"{h['hook']} seen {h['seen']:,} posted {h['posted']:,}" for h in hooks)
        checks.append(Check("storm posted 0", counted.storm_posts == 0 and posted == elsewhere,
                            f"{hooks_text}; by the storm {counted.storm_posts}, by other processes: {others}"))
        checks.append(Check("posted=0", posted == 0, f"{hooks_text}; by other processes: {others}", strict=False))
    relevant = kernel.get("exec" if storm == "exec" else "generic", {"lost": 0})["lost"]
    return checks + storm_check(storm, config, counted.delivered, relevant + dropped, ops)


def account_plain(summary: dict[str, Any], counted: EventCount, storm: str, config: Config, ops: int) -> list[Check]:
    s = summary
    return [
        Check("sent=received", s["sent"] == s["received"],
              f"sent {s['sent']:,} + lost {s['lost']:,} = {s['sent'] + s['lost']:,} attempted; "
              f"received {s['received']:,}"),
        Check("received=written=lines", s["received"] == s["written"] == counted.lines,
              f"written {s['written']:,}, lines in file {counted.lines:,}"),
    ] + storm_check(storm, config, counted.delivered, s["lost"], ops)


def account_auditd(summary: dict[str, Any], counted: EventCount, storm: str, config: Config,
                   ops: int) -> list[Check]:
    return storm_check(storm, config, counted.delivered, summary["lost"], ops)


def lost_of(kind: str, summary: dict[str, Any]) -> int:
    return int(summary["kernel_lost"] if kind == "tetra" else summary["lost"])


# ── what runs beside a storm ──────────────────────────────────────────────────────────────


class Subject(Protocol):
    """The tracer of one configuration, around one storm."""

    export: Path | None  # the file its events go to (None: it writes none)
    quiet_s: float  # how long the file must not grow before the drain counts as done
    count: Callable[[Path, str, int, str, tuple[int, int]], EventCount] | None
    account: Callable[[dict[str, Any], EventCount, str, Config, int], list[Check]] | None

    def start(self) -> float: ...  # seconds until ready
    def pids(self) -> list[int]: ...  # processes whose CPU is charged (the first: RSS too)
    def stop(self) -> dict[str, Any]: ...  # the summary
    def abort(self) -> None: ...


class NoSubject:
    export = None
    quiet_s = 0.0
    count = None
    account = None

    def start(self) -> float:
        return 0.0

    def pids(self) -> list[int]:
        return []

    def stop(self) -> dict[str, Any]:
        return {}

    def abort(self) -> None:
        pass


class DaemonSubject:
    """A tracer started for this one storm (tetra agent, plain_tracer.py)."""

    def __init__(self, daemon: Daemon, export: Path | None, quiet_s: float,
                 count: Callable[..., EventCount] | None, account: Callable[..., list[Check]] | None) -> None:
        self.daemon, self.export, self.quiet_s = daemon, export, quiet_s
        self.count, self.account = count, account

    def start(self) -> float:
        return self.daemon.start()

    def pids(self) -> list[int]:
        return [self.daemon.pid]

    def stop(self) -> dict[str, Any]:
        return self.daemon.stop()

    def abort(self) -> None:
        self.daemon.kill()


class AuditdSubject:
    """The run's auditd, with this configuration's rules; its loss is the kernel's counter delta."""

    count = staticmethod(count_audit)
    account = staticmethod(account_auditd)
    quiet_s = AUDITD_QUIET_S

    def __init__(self, session: auditd_peer.AuditdSession, matching: bool) -> None:
        self.session, self.matching = session, matching
        self.export = session.log
        self._lost_before = 0

    def start(self) -> float:
        started = time.monotonic()
        self.session.set_rules(auditd_peer.audit_rules(self.matching))
        self._lost_before = self.session.lost()
        return time.monotonic() - started

    def pids(self) -> list[int]:
        return [self.session.pid, *auditd_peer.processes_named("kauditd")]

    def stop(self) -> dict[str, Any]:
        return {"lost": self.session.lost() - self._lost_before}

    def abort(self) -> None:
        pass


def make_subject(config: Config, workdir: Path, tag: str, auditd: auditd_peer.AuditdSession | None) -> Subject:
    export = workdir / f"{tag}.json"
    log = workdir / f"{tag}.stderr"
    py = sys.executable
    makers: dict[str, Callable[[], Subject]] = {
        "none": NoSubject,
        "bare": lambda: DaemonSubject(Daemon([py, str(PLAIN_TRACER), "--bare"], log, PLAIN_READY_MARK),
                                      None, 0.0, None, None),
        "tetra": lambda: DaemonSubject(Daemon(tetra_command(export, [POLICIES / f"{config.policy}.yaml"]), log,
                                              TETRA_READY_MARK), export, TETRA_QUIET_S, count_tetra, account_tetra),
        "plain": lambda: DaemonSubject(Daemon([py, str(PLAIN_TRACER), "--output", str(export)], log,
                                              PLAIN_READY_MARK), export, PLAIN_QUIET_S, count_plain, account_plain),
        "auditd": lambda: AuditdSubject(_need(auditd), config.audit_matching),
    }
    return makers[config.kind]()


def _need(session: auditd_peer.AuditdSession | None) -> auditd_peer.AuditdSession:
    if session is None:
        raise BenchmarkError("auditd configuration without an auditd session")
    return session


# ── one measurement ───────────────────────────────────────────────────────────────────────


@dataclass
class Sample:
    """One storm under one configuration."""

    storm: str
    config: str
    repetition: int
    sequence: int  # position in the run, to see drift over time
    ops: int
    elapsed_ns: int
    driver_pid: int
    ready_s: float | None = None  # tracer start to "ready": bcc compile, outside the storm
    cpu_s: float | None = None  # tracer utime+stime from just before the storm to just before SIGTERM
    window_events: int | None = None  # events written to the file in that span
    storm_events: int | None = None  # events of the driver and its children
    delivered: int | None = None  # the storm's operations found in the file
    expected: int | None = None  # operations this configuration must deliver (or count lost)
    lost: int | None = None  # kernel-counted (tetra, plain tracer: their own counters; auditd: kernel's)
    drain_s: float | None = None  # storm end until the tracer went idle
    delivery_rate: float | None = None  # delivered / (storm start until the tracer went idle)
    file_quiet: bool | None = None  # the export stopped growing before SIGTERM
    wall_s: float | None = None  # the whole measurement: start, storm, drain, stop, count
    phases_s: dict[str, float] = field(default_factory=dict)  # where wall_s went
    load_average: float | None = None  # 1-minute load average before the measurement
    other_bpf: list[str] = field(default_factory=list)  # other processes holding BPF programs meanwhile
    peak_rss_kib: int | None = None  # VmHWM over storm + drain (reset after "ready")
    lifetime_peak_rss_kib: int | None = None  # VmHWM at "ready": includes the bcc compile
    checks: list[Check] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ops / (self.elapsed_ns / 1e9)

    @property
    def cpu_us_per_event(self) -> float | None:
        if self.cpu_s is None or not self.window_events or self.window_events < MIN_EVENTS_PER_EVENT_COST:
            return None
        return self.cpu_s * 1e6 / self.window_events

    @property
    def accounting_ok(self) -> bool:
        return all(c.ok for c in self.checks if c.strict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(rate=self.rate, cpu_us_per_event=self.cpu_us_per_event, accounting_ok=self.accounting_ok)
        return data


def wait_for_idle(watches: list[ProcWatch], busy_until: float) -> float:
    """Wait until the tracer uses at most IDLE_SHARE of a core for IDLE_WINDOWS windows in a row;
    returns when it was last busy (``busy_until`` if it never was). CPU is read through open
    fds: the polling makes no openat for a firehose to see."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    last_cpu, last_t, idle = sum(w.cpu_seconds() for w in watches), time.monotonic(), 0
    while idle < IDLE_WINDOWS and time.monotonic() < deadline:
        time.sleep(CPU_WINDOW_S)
        cpu, now = sum(w.cpu_seconds() for w in watches), time.monotonic()
        if (cpu - last_cpu) / (now - last_t) > IDLE_SHARE:
            busy_until, idle = now, 0
        else:
            idle += 1
        last_cpu, last_t = cpu, now
    return busy_until


def wait_for_quiet(export: Path, quiet_s: float) -> bool:
    """Wait until ``export`` grew by less than BACKGROUND_BYTES over ``quiet_s`` (the tracer's
    last flush landed). A tracer that sees every exec or open on the machine keeps exporting
    other processes' events at a trickle, so "stopped growing" means "down to that trickle";
    a drain writes megabytes per second. False if that did not happen within FILE_QUIET_MAX_S."""
    give_up = time.monotonic() + FILE_QUIET_MAX_S
    while time.monotonic() < give_up:
        size = file_size(export)
        time.sleep(quiet_s)
        if file_size(export) - size < BACKGROUND_BYTES:
            return True
    return False


@dataclass
class Bench:
    """Everything one run needs: drivers, sizes, the work directory, the auditd session."""

    drivers: dict[str, Path]
    ops: dict[str, int]
    workdir: Path
    target: Path  # the file the open storm opens
    auditd: auditd_peer.AuditdSession | None = None
    samples: list[Sample] = field(default_factory=list)

    def measure(self, storm: str, config: Config, rep: int) -> Sample:
        """Start the configuration's tracer, run the storm, drain, stop, count, reconcile."""
        began = mark = time.monotonic()
        ops = self.ops[storm]
        subject = make_subject(config, self.workdir, f"{storm}-{config.name}-{rep}", self.auditd)
        sample = Sample(storm, config.name, rep, len(self.samples) + 1, ops, 0, 0,
                        load_average=load_average(), other_bpf=bpf_holders(exclude=[os.getpid()]))

        def phase(name: str) -> None:
            nonlocal mark
            now = time.monotonic()
            sample.phases_s[name] = round(now - mark, 3)
            mark = now

        export = subject.export
        watches: list[ProcWatch] = []
        try:
            ready_s = subject.start()
            phase("start")
            watches = [ProcWatch(pid) for pid in subject.pids()]
            time.sleep(SETTLE_S)
            if watches:
                wait_for_idle(watches, 0.0)  # start-up work (the /proc scan, first flush) done
                sample.ready_s = ready_s
                sample.lifetime_peak_rss_kib = watches[0].status_kib("VmHWM")
                watches[0].reset_peak_rss()
            phase("settle")
            window = [file_size(export) if export else 0, 0]
            cpu_before = sum(w.cpu_seconds() for w in watches)
            started = time.monotonic()
            result = run_driver(self.drivers[storm], STORMS[storm].args(ops, self.target))
            storm_end = busy_until = time.monotonic()
            phase("storm")
            sample.elapsed_ns, sample.driver_pid = result.elapsed_ns, result.driver_pid
            if watches:
                busy_until = wait_for_idle(watches, storm_end)
                phase("drain")
                if export:
                    sample.file_quiet = wait_for_quiet(export, subject.quiet_s)
                    window[1] = file_size(export)
                    phase("quiet")
                sample.cpu_s = sum(w.cpu_seconds() for w in watches) - cpu_before
                sample.peak_rss_kib = watches[0].status_kib("VmHWM")
                sample.drain_s = busy_until - storm_end
            sample.summary = subject.stop()
            phase("stop")
        finally:
            for w in watches:
                w.close()
            subject.abort()
        if export and subject.count and subject.account:
            counted = subject.count(export, storm, sample.driver_pid, str(self.target), (window[0], window[1]))
            if config.kind != "auditd":  # auditd's log serves the whole session
                export.unlink(missing_ok=True)  # up to hundreds of MB per firehose storm
            sample.window_events = counted.window_lines
            sample.storm_events = counted.storm_events
            sample.delivered = counted.delivered
            sample.expected = ops if storm in config.posts else 0
            sample.lost = lost_of(config.kind, sample.summary)
            sample.checks = subject.account(sample.summary, counted, storm, config, ops)
            busy_s = busy_until - started
            sample.delivery_rate = counted.delivered / busy_s if busy_s > 0 else None
            phase("count")
        sample.wall_s = time.monotonic() - began
        self.samples.append(sample)
        return sample


def report_progress(sample: Sample, total: int) -> None:
    line = (f"[{sample.sequence:>3}/{total}] rep {sample.repetition} {sample.storm:<7} {sample.config:<21} "
            f"{sample.rate:>11,.0f} ops/s")
    if sample.cpu_s is not None:
        line += f"  ready {sample.ready_s:.1f}s  cpu {sample.cpu_s:.2f}s  wall {sample.wall_s:.1f}s"
    if sample.delivered is not None:
        line += f"  delivered {sample.delivered:,}/{sample.expected:,}  lost {sample.lost:,}"
        line += "  accounting ok" if sample.accounting_ok else "  ACCOUNTING FAILED"
    console.print(line, highlight=False)


# ── the run ───────────────────────────────────────────────────────────────────────────────


def plan(storms: list[str], configs: list[str], repetitions: int) -> list[tuple[int, str, str]]:
    """(repetition, storm, config) in run order: each repetition shuffled; auditd's phase last."""
    main = [c for c in configs if c not in AUDITD_CONFIGS]
    audit = [c for c in configs if c in ("auditd-unmatched", "auditd")]
    after = [c for c in configs if c == "baseline-after-auditd"]
    order: list[tuple[int, str, str]] = []
    for phase in (main, audit, after):
        for rep in range(1, repetitions + 1):
            pairs = [(s, c) for s in storms for c in phase]
            random.shuffle(pairs)
            order += [(rep, s, c) for s, c in pairs]
    return order


def run_all(bench: Bench, order: list[tuple[int, str, str]], with_auditd: bool) -> dict[str, Any]:
    """Measure every pair in order; auditd is opened just before its phase and always closed."""
    for storm, driver in bench.drivers.items():  # page cache, CPU frequency
        run_driver(driver, STORMS[storm].args(max(1, bench.ops[storm] // 10), bench.target))
    auditd_report: dict[str, Any] = {"requested": with_auditd}
    try:
        for rep, storm, name in order:
            config = CONFIGS[name]
            if config.kind == "auditd" and bench.auditd is None:
                bench.auditd = open_auditd(bench.workdir, auditd_report)
            if config.after_auditd and bench.auditd is not None:
                close_auditd(bench, auditd_report)
            report_progress(bench.measure(storm, config, rep), len(order))
    finally:
        if bench.auditd is not None:
            close_auditd(bench, auditd_report)
    return auditd_report


def open_auditd(workdir: Path, report: dict[str, Any]) -> auditd_peer.AuditdSession:
    if not auditd_peer.auditd_installed():
        console.print("auditd is not installed: installing it (--with-auditd)")
        report["install"] = auditd_peer.install_auditd()
    session = auditd_peer.AuditdSession(workdir)
    try:
        session.open()
    except BaseException:
        session.close()
        report["restore"] = session.restored
        raise
    report["started"] = utc_now().isoformat()
    console.print(f"auditd started (pid {session.pid}); from here on, every new task carries an audit "
                  "context until reboot", style="yellow")
    return session


def close_auditd(bench: Bench, report: dict[str, Any]) -> None:
    assert bench.auditd is not None
    bench.auditd.close()
    report["restore"] = bench.auditd.restored
    console.print(f"auditd stopped, rules deleted, settings restored: {bench.auditd.restored}", highlight=False)
    bench.auditd = None


# ── summary, table, JSON ──────────────────────────────────────────────────────────────────


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(samples: list[Sample]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per storm and configuration: medians with min/max; slowdown against the baseline median."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for storm in [name for name in STORMS if any(s.storm == name for s in samples)]:
        base = _median([s.rate for s in samples if s.storm == storm and s.config == "baseline"])
        out[storm] = {}
        for config in [c for c in CONFIGS if any(s.storm == storm and s.config == c for s in samples)]:
            group = [s for s in samples if s.storm == storm and s.config == config]
            rates = [s.rate for s in group]
            med = statistics.median(rates)
            entry: dict[str, Any] = {
                "repetitions": len(group), "ops": group[0].ops,
                "with_other_bpf": sum(bool(s.other_bpf) for s in group),
                "rate_median": med, "rate_min": min(rates), "rate_max": max(rates),
                "slowdown": base / med if base else None,
                "ns_per_op_median": 1e9 / med,
            }
            if group[0].cpu_s is not None:
                entry.update(
                    cpu_s_median=_median([s.cpu_s for s in group if s.cpu_s is not None]),
                    cpu_us_per_event_median=_median([v for s in group if (v := s.cpu_us_per_event) is not None]),
                    window_events_median=_median([s.window_events for s in group if s.window_events is not None]),
                    peak_rss_kib_max=max(s.peak_rss_kib or 0 for s in group),
                    lifetime_peak_rss_kib_max=max(s.lifetime_peak_rss_kib or 0 for s in group),
                    ready_s_median=_median([s.ready_s for s in group if s.ready_s is not None]),
                    drain_s_median=_median([s.drain_s for s in group if s.drain_s is not None]),
                )
            if group[0].delivered is not None:
                entry.update(
                    expected=group[0].expected,
                    delivered=[s.delivered for s in group],
                    storm_events=[s.storm_events for s in group],
                    lost=[s.lost for s in group],
                    delivery_rate_median=_median([s.delivery_rate for s in group if s.delivery_rate]),
                    file_quiet=all(s.file_quiet for s in group),
                    accounting_ok=all(s.accounting_ok for s in group),
                    accounting=_accounting(group),
                )
            out[storm][config] = entry
    return out


def _accounting(group: list[Sample]) -> dict[str, Any]:
    """Per check: passed in how many repetitions, and the detail of each (first failure first)."""
    names = dict.fromkeys(c.name for s in group for c in s.checks)
    result = {}
    for name in names:
        checks = [c for s in group for c in s.checks if c.name == name]
        result[name] = {"ok": sum(c.ok for c in checks), "of": len(checks), "strict": checks[0].strict,
                        "details": [c.detail for c in sorted(checks, key=lambda c: c.ok)]}
    return result


def render(summary: dict[str, dict[str, dict[str, Any]]], repetitions: int) -> Table:
    table = Table(title=f"tetra and its peers: ops/s medians (min–max) over {repetitions} repetitions; "
                        "slowdown = baseline median / configuration median, same run",
                  show_lines=False)
    headers = ("storm", "configuration", "ops/s", "min–max", "slowdown", "CPU s", "CPU µs/event",
               "delivered / expected", "lost", "peak RSS MiB", "loss accounting")
    for h in headers:
        table.add_column(h, justify="left" if h in ("storm", "configuration", "loss accounting") else "right")
    for i, (storm, configs) in enumerate(summary.items()):
        if i:
            table.add_section()
        for n, (config, e) in enumerate(configs.items()):
            cells = ["–"] * 6
            if "cpu_s_median" in e:
                per_event = e["cpu_us_per_event_median"]
                cells[0] = f"{e['cpu_s_median']:.2f}"
                cells[1] = "–" if per_event is None else f"{per_event:,.1f}"
                cells[4] = f"{e['peak_rss_kib_max'] / 1024:.0f}"
            if "delivered" in e:
                cells[2] = f"{span(e['delivered'])} / {e['expected']:,}"
                cells[3] = span(e["lost"])
                cells[5] = _accounting_cell(e)
            slowdown = "–" if e["slowdown"] is None else f"×{e['slowdown']:.2f}"
            table.add_row(f"{storm} ({e['ops']:,})" if n == 0 else "", config, f"{e['rate_median']:,.0f}",
                          f"{e['rate_min']:,.0f}–{e['rate_max']:,.0f}", slowdown, cells[0], cells[1], cells[2],
                          cells[3], cells[4], cells[5])
    return table


def _accounting_cell(e: dict[str, Any]) -> str:
    """"✓ 4 exact" when every strict check held in every repetition; failures by name."""
    checks = e["accounting"]
    if not checks:
        return "–"
    strict = {n: c for n, c in checks.items() if c["strict"]}
    failed = [f"✗ {n} {c['ok']}/{c['of']}" for n, c in strict.items() if c["ok"] < c["of"]]
    cell = "; ".join(failed) if failed else f"✓ {len(strict)} exact"
    loose = [f"{n} off {c['of'] - c['ok']}/{c['of']}" for n, c in checks.items()
             if not c["strict"] and c["ok"] < c["of"]]
    return cell + (f" (≈ {'; '.join(loose)})" if loose else "")


def render_delivery(summary: dict[str, dict[str, dict[str, Any]]], storm: str) -> Table | None:
    """Kernel → JSON file: how fast each tracer that must deliver every operation got them out."""
    rows = {c: e for c, e in summary.get(storm, {}).items() if e.get("expected")}
    if not rows:
        return None
    table = Table(title=f"{storm} storm: events delivered kernel → JSON file (medians)")
    for h in ("configuration", "ops", "delivered", "lost (counted)", "delivered %", "events/s delivered",
              "drain after storm s", "CPU µs/event"):
        table.add_column(h, justify="left" if h == "configuration" else "right")
    for config, e in rows.items():
        delivered = statistics.median(e["delivered"])
        rate = e["delivery_rate_median"]
        per_event = e.get("cpu_us_per_event_median")
        table.add_row(config, f"{e['expected']:,}", f"{delivered:,.0f}", f"{statistics.median(e['lost']):,.0f}",
                      f"{100 * delivered / e['expected']:.1f}%", "–" if rate is None else f"{rate:,.0f}",
                      f"{e['drain_s_median']:.2f}" if e.get("drain_s_median") is not None else "–",
                      "–" if per_event is None else f"{per_event:,.1f}")
    return table


NOTES = {
    "order": "every (storm, configuration) pair once per repetition, shuffled; a fresh tracer per pair; "
             "auditd configurations (only with --with-auditd) after all others, then baseline-after-auditd",
    "slowdown": "baseline median ops/s of the same storm in the same run divided by this configuration's median",
    "cpu_s": "utime+stime of the tracer (/proc/<pid>/stat, all threads; auditd: plus kauditd) from just "
             "before the storm until just before SIGTERM: the storm and the drain, not the bcc compile",
    "cpu_us_per_event": f"cpu_s / events written to the export file in that span (window_events); "
                        f"not shown below {MIN_EVENTS_PER_EVENT_COST} events, where it measures wake-ups",
    "delivered": "the storm's own operations found in the export file (exec of /bin/true by the driver's "
                 "children, openat of the target file or connect by the driver); expected: the operations "
                 "this configuration must deliver (0 where its policy must stay quiet)",
    "storm_events": "all events of the driver and its children (e.g. the children's loader opens)",
    "lost": "counted by the tracer's kernel side: tetra summary kernel_lost (all opcodes), plain tracer's "
            "failed ring buffer reservations, auditd: the kernel's audit lost counter (delta)",
    "peak_rss_kib": "VmHWM after reset at 'ready' (clear_refs 5), read before SIGTERM: storm + drain only; "
                    "lifetime_peak_rss_kib includes the bcc compile",
    "delivery_rate": "delivered / (storm start until the tracer's CPU went idle after the storm)",
    "drain_s": "storm end until the tracer's CPU went idle (it had emptied its ring buffer)",
    "other_bpf": "processes other than this benchmark holding BPF programs when a sample started "
                 "(another session's tracer slows every configuration, the baseline too); "
                 "with_other_bpf: how many repetitions of a pair had one",
    "checks": "tetra: kernel sent = received, received = records decoded, pipeline events = lines in the "
              "file, hooks posted = generic sent + lost, quiet policies posted 0, storm ops delivered or "
              "counted lost; plain tracer: sent = received = written = lines, storm ops delivered or lost",
}


def parse_csv(value: str, allowed: dict[str, Any], what: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise click.BadParameter(f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(names))


@click.command()
@click.option("--repetitions", type=click.IntRange(min=1), default=None,
              help="Storms per (storm, configuration) pair.  [default: 5; 1 with --quick]")
@click.option("--storms", default=",".join(STORMS), show_default=True, help="Comma-separated storms.")
@click.option("--configs", default=None,
              help=f"Comma-separated configurations, from: {', '.join(CONFIGS)}.  "
                   f"[default: {','.join(DEFAULT_CONFIGS)}, plus the auditd ones with --with-auditd]")
@click.option("--ops", "ops_overrides", multiple=True, metavar="STORM=N",
              help="Operations per storm, e.g. --ops open=2000000 (repeatable).")
@click.option("--quick", is_flag=True, help="Smoke run: 1 repetition, small storms.")
@click.option("--with-auditd", is_flag=True,
              help="Also measure auditd, last (installs it with apt-get if missing; stops it and deletes "
                   "its rules afterwards; every later task stays slower until reboot).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_JSON,
              show_default=True, help="Results; a copy named by the time is written beside it.")
@click.option("--seed", type=int, default=None, help="Random seed for the order (default: random).")
def main(repetitions: int | None, storms: str, configs: str | None, ops_overrides: tuple[str, ...], quick: bool,
         with_auditd: bool, json_path: Path, seed: int | None) -> None:
    """tetra against a bare hook, a plain bcc tracer and (optionally) auditd, on three storms."""
    if os.geteuid() != 0:
        raise click.ClickException("run as root: the tracers load BPF programs")
    storm_names = parse_csv(storms, STORMS, "storm")
    if configs is None:
        config_names = list(DEFAULT_CONFIGS) + (list(AUDITD_CONFIGS) if with_auditd else [])
    else:
        config_names = parse_csv(configs, CONFIGS, "configuration")
    auditd_asked = [c for c in config_names if CONFIGS[c].kind == "auditd"]
    if auditd_asked and not with_auditd:
        raise click.BadParameter(f"{', '.join(auditd_asked)} need --with-auditd", param_hint="--configs")
    if auditd_asked and "baseline-after-auditd" not in config_names:
        config_names.append("baseline-after-auditd")
    if "baseline" not in config_names:
        config_names.insert(0, "baseline")  # every slowdown is against it
    if with_auditd and not auditd_asked:
        console.print("--with-auditd given but no auditd configuration selected")
    reps = repetitions or (1 if quick else 5)
    ops = {s: (STORMS[s].quick_ops if quick else STORMS[s].ops) for s in storm_names}
    for item in ops_overrides:
        name, _, n = item.partition("=")
        if name not in ops or not n.isdigit() or int(n) < 1:
            raise click.BadParameter(f"{item!r}: expected STORM=N with STORM in {', '.join(ops)}", param_hint="--ops")
        ops[name] = int(n)
    random.seed(seed)
    order = plan(storm_names, config_names, reps)
    params = {"repetitions": reps, "storms": storm_names, "configs": config_names, "ops": ops, "quick": quick,
              "with_auditd": with_auditd, "seed": seed}
    console.print(f"peers: {len(order)} storms ({', '.join(f'{s} {n:,}' for s, n in ops.items())}), "
                  f"{reps} repetition(s), configurations: {', '.join(config_names)}", highlight=False)
    started = utc_now()
    try:
        with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
            workdir = Path(tmp)
            target = workdir / "open-target"
            target.write_bytes(b"tetra peers benchmark\n")
            drivers = {s: compile_driver(HERE / "drivers" / f"{STORMS[s].driver}.c", workdir) for s in storm_names}
            bench = Bench(drivers, ops, workdir, target)
            auditd_report = run_all(bench, order, with_auditd)
    except BenchmarkError as err:
        console.print(f"peers: {err}", style="red", markup=False, highlight=False)
        sys.exit(2)
    if with_auditd and not auditd_asked:
        auditd_report["skipped"] = "no auditd configuration selected"
    elif not with_auditd:
        auditd_report["skipped"] = ("not requested (--with-auditd); installed: "
                                    f"{'yes' if auditd_peer.auditd_installed() else 'no'}")
    summary = summarize(bench.samples)
    out = Console(width=None if sys.stdout.isatty() else TABLE_WIDTH)  # a pipe would fold it at 80
    out.print(render(summary, reps))
    for storm in ("open", "exec", "connect"):
        table = render_delivery(summary, storm)
        if table is not None and (storm == "open" or not quick):
            out.print(table)
    doc = {"benchmark": "peers", "started": started.isoformat(), "finished": utc_now().isoformat(),
           "host": host_info(), "params": params, "notes": NOTES, "auditd": auditd_report,
           "summary": summary, "samples": [s.as_dict() for s in bench.samples]}
    noisy = [s for s in bench.samples if s.other_bpf]
    if noisy:
        others = sorted({o for s in noisy for o in s.other_bpf})
        console.print(f"{len(noisy)} of {len(bench.samples)} samples ran while other processes held BPF programs "
                      f"({', '.join(others[:6])}{', ...' if len(others) > 6 else ''}): their hooks slow every "
                      "configuration, the baseline too", style="yellow", highlight=False)
    paths = write_results(doc, json_path, timestamped=True)
    console.print(f"results: {', '.join(map(str, paths))}")
    failed = [s for s in bench.samples if not s.accounting_ok]
    for s in failed:
        for c in s.checks:
            if not c.ok:
                console.print(f"rep {s.repetition} {s.storm} {s.config}: {c.name} failed: {c.detail}", style="red")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
