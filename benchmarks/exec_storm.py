"""What the agent costs an exec storm, measured against its own baseline in one run.

    compile drivers/exec_storm.c (gcc, temp dir)
    warm-up storm (untimed)
    for each repetition, in shuffled order:
        baseline: storm alone ───────────────────────────────> processes/s
        agent, agent+context (--enable-process-cred --enable-process-ns --enable-ancestors base),
        agent+rate-check (--cgroup-rate never reached: the check's cost),
        agent+throttled (--cgroup-rate 100,1s: the storm throttled in the kernel):
                  start agent, wait "ready" (bcc compile, untimed)
                  storm ─────────────────────────────────────> processes/s
                  wait until the export file stops growing
                  read CPU and VmHWM from /proc, SIGTERM ─────> summary (kernel_lost)
                  count the storm's process_exec lines ──────> events delivered

Only ratios within one run mean anything on a shared, noisy machine
(shared/BENCHMARKS.md), hence the interleaving and the same-run baseline. This is
a measurement, not a test: it asserts nothing about speed. It exits non-zero only
when the agent could not run or lost events without counting them (fewer storm
exec events delivered than processes while the kernel reports no loss).

Usage: .venv/bin/python benchmarks/exec_storm.py [--processes N] [--repetitions R] [--json OUT]
"""

import os
import random
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from common import (TETRA_READY_MARK, WIDTH, BenchmarkError, Daemon, Storm, compile_driver, console, cpu_seconds,
                    host_info, run_driver, span, status_kib, tetra_command, utc_now, wait_for_drain, write_results)

HERE = Path(__file__).resolve().parent
DRIVER_SOURCE = HERE / "drivers" / "exec_storm.c"
DEFAULT_JSON = HERE / "results" / "exec_storm-latest.json"

STORM_BINARIES = frozenset({"/bin/true", "/usr/bin/true"})
# Each configuration and the agent's flags in it (None: no agent).
AGENT_FLAGS: dict[str, tuple[str, ...] | None] = {
    "baseline": None,
    "agent": (),
    # the process context's cost: credentials, namespaces, ancestors on exec and exit
    "agent+context": ("--enable-process-cred", "--enable-process-ns", "--enable-ancestors", "base"),
    # --cgroup-rate: the per-event check alone (a limit no storm reaches), and a storm throttled by it
    "agent+rate-check": ("--cgroup-rate", "100000000,1s"),
    "agent+throttled": ("--cgroup-rate", "100,1s"),
}
CONFIGS = tuple(AGENT_FLAGS)
WARMUP_PROCESSES = 1000


@dataclass
class AgentUsage:
    """What the agent did during one storm, read from /proc and its summary."""

    ready_s: float  # start to "ready": bcc compile + /proc seeding, outside the storm
    cpu_at_ready_s: float
    cpu_at_stop_s: float
    vm_hwm_kib: int
    vm_rss_kib: int
    storm_processes: int
    delivered: int  # process_exec of the storm's /bin/true, parent = the driver
    other_true_execs: int  # /bin/true execs not attributed to the driver (diagnosis)
    kernel_lost: int
    kernel_throttled: int  # --cgroup-rate: dropped by design, and counted
    summary: dict[str, Any]

    @property
    def storm_cpu_s(self) -> float:
        """CPU from "ready" to stop: the storm and its drain, not the bcc compile."""
        return self.cpu_at_stop_s - self.cpu_at_ready_s

    @property
    def cpu_us_per_event(self) -> float | None:
        return self.storm_cpu_s * 1e6 / self.delivered if self.delivered else None

    @property
    def lost_uncounted(self) -> bool:
        return self.kernel_lost == 0 and self.kernel_throttled == 0 and self.delivered != self.storm_processes


@dataclass
class Sample:
    """One timed storm in one configuration; ``agent`` is None for the baseline."""

    config: str
    repetition: int
    sequence: int  # position in the run, to see drift over time
    storm: Storm
    agent: AgentUsage | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["storm"]["rate"] = self.storm.rate
        if self.agent:
            data["agent"].update(storm_cpu_s=self.agent.storm_cpu_s,
                                 cpu_us_per_event=self.agent.cpu_us_per_event,
                                 lost_uncounted=self.agent.lost_uncounted)
        return data


@dataclass
class StormCounter:
    """Counts the storm's exec events in a growing export file, reading only new lines.

    Incremental so the drain can be watched without re-reading tens of MB each poll;
    a trailing partial line is kept until the agent finishes writing it.
    """

    path: Path
    driver_pid: int
    delivered: int = 0
    other_true_execs: int = 0
    _offset: int = 0
    _partial: bytes = field(default=b"", repr=False)

    def update(self) -> int:
        if not self.path.exists():
            return self.delivered
        with self.path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._count(line)
        return self.delivered

    def _count(self, line: bytes) -> None:
        if not line.startswith(b'{"process_exec"'):
            return
        event = orjson.loads(line)["process_exec"]
        if event["process"].get("binary") not in STORM_BINARIES:
            return
        if event.get("parent", {}).get("pid") == self.driver_pid:
            self.delivered += 1
        else:
            self.other_true_execs += 1


def measure_agent(driver: Path, processes: int, workdir: Path, name: str,
                  flags: tuple[str, ...] = ()) -> tuple[Storm, AgentUsage]:
    """One storm under a fresh agent run with ``flags``; CPU and peak RSS are read just before SIGTERM."""
    export = workdir / f"{name}.json"
    # An API socket of its own: another agent on the machine may hold the default one.
    api = ["--server-address", f"unix://{workdir / name}.sock"]
    agent = Daemon(tetra_command(export) + api + list(flags), workdir / f"{name}.stderr", TETRA_READY_MARK)
    try:
        ready_s = agent.start()
        cpu_at_ready = cpu_seconds(agent.pid)
        storm = run_storm(driver, processes)
        counter = StormCounter(export, storm.driver_pid)
        wait_for_drain(counter.update, storm.count)
        cpu_at_stop = cpu_seconds(agent.pid)
        hwm, rss = status_kib(agent.pid, "VmHWM"), status_kib(agent.pid, "VmRSS")
        summary = agent.stop()
    finally:
        agent.kill()
    counter.update()  # the agent drains its ring buffer and flushes on the way out
    export.unlink(missing_ok=True)  # tens of MB per repetition
    usage = AgentUsage(ready_s=ready_s, cpu_at_ready_s=cpu_at_ready, cpu_at_stop_s=cpu_at_stop,
                       vm_hwm_kib=hwm, vm_rss_kib=rss, storm_processes=storm.count, delivered=counter.delivered,
                       other_true_execs=counter.other_true_execs, kernel_lost=int(summary["kernel_lost"]),
                       kernel_throttled=int(summary.get("kernel_throttled", 0)), summary=summary)
    return storm, usage


def run_storm(driver: Path, processes: int) -> Storm:
    return run_driver(driver, [str(processes)])


def run_all(driver: Path, processes: int, repetitions: int, workdir: Path) -> list[Sample]:
    """Every repetition runs each configuration once, in a fresh random order."""
    run_storm(driver, min(WARMUP_PROCESSES, processes))  # page cache, CPU frequency
    samples: list[Sample] = []
    for rep in range(1, repetitions + 1):
        order = random.sample(CONFIGS, k=len(CONFIGS))
        for config in order:
            usage: AgentUsage | None = None
            flags = AGENT_FLAGS[config]
            if flags is not None:
                storm, usage = measure_agent(driver, processes, workdir, f"{config}-{rep}", flags)
            else:
                storm = run_storm(driver, processes)
            sample = Sample(config, rep, len(samples) + 1, storm, usage)
            samples.append(sample)
            report_progress(sample, repetitions)
    return samples


def report_progress(sample: Sample, repetitions: int) -> None:
    line = f"rep {sample.repetition}/{repetitions} {sample.config:<16} {sample.storm.rate:>8,.0f} proc/s"
    if sample.agent:
        a = sample.agent
        line += (f"  ready {a.ready_s:.1f}s  delivered {a.delivered:,}/{sample.storm.count:,}"
                 f"  kernel_lost {a.kernel_lost:,}  cpu {a.storm_cpu_s:.2f}s")
    console.print(line)


def summarize(samples: list[Sample]) -> dict[str, dict[str, Any]]:
    """Medians (with min/max) per configuration; slowdown is baseline median / config median."""
    rates = {c: [s.storm.rate for s in samples if s.config == c] for c in CONFIGS}
    base = statistics.median(rates["baseline"])
    out: dict[str, dict[str, Any]] = {}
    for config in CONFIGS:
        med = statistics.median(rates[config])
        entry: dict[str, Any] = {"rate_median": med, "rate_min": min(rates[config]),
                                 "rate_max": max(rates[config]), "slowdown": base / med}
        agents = [s.agent for s in samples if s.config == config and s.agent]
        if agents:
            per_event = [a.cpu_us_per_event for a in agents if a.cpu_us_per_event is not None]
            entry.update(
                cpu_s_median=statistics.median(a.storm_cpu_s for a in agents),
                cpu_us_per_event_median=statistics.median(per_event) if per_event else None,
                delivered=[a.delivered for a in agents],
                kernel_lost=[a.kernel_lost for a in agents],
                vm_hwm_kib_max=max(a.vm_hwm_kib for a in agents),
                ready_s_median=statistics.median(a.ready_s for a in agents),
            )
        out[config] = entry
    return out


def render(summary: dict[str, dict[str, Any]], processes: int, repetitions: int) -> Table:
    table = Table(title=f"exec storm: {processes:,} × fork+exec+wait of /bin/true, "
                        f"{repetitions} repetitions, medians (min–max)")
    for header in ("configuration", "processes/s", "min–max", "slowdown", "agent CPU s",
                   "CPU µs/event", "events delivered", "kernel_lost", "peak RSS MiB"):
        table.add_column(header, justify="left" if header == "configuration" else "right")
    for config, e in summary.items():
        agent_cells = ["–"] * 5
        if "delivered" in e:
            per_event = e["cpu_us_per_event_median"]
            agent_cells = [f"{e['cpu_s_median']:.2f}", "–" if per_event is None else f"{per_event:.1f}",
                           f"{span(e['delivered'])} / {processes:,}", span(e["kernel_lost"]),
                           f"{e['vm_hwm_kib_max'] / 1024:.0f}"]
        table.add_row(config, f"{e['rate_median']:,.0f}", f"{e['rate_min']:,.0f}–{e['rate_max']:,.0f}",
                      f"×{e['slowdown']:.3f}", *agent_cells)
    return table


def write_json(path: Path, params: dict[str, Any], samples: list[Sample],
               summary: dict[str, dict[str, Any]]) -> None:
    doc = {
        "benchmark": "exec_storm",
        "finished": utc_now().isoformat(),
        "host": host_info(),
        "params": params,
        "notes": {
            "slowdown": "baseline median processes/s divided by this configuration's",
            "agent_cpu": "utime+stime of the agent from 'ready' to just before SIGTERM (storm + drain)",
            "cpu_us_per_event": "that CPU divided by the storm's process_exec events delivered",
            "vm_hwm_kib": "VmHWM just before SIGTERM; includes the bcc compile at start",
        },
        "summary": summary,
        "samples": [s.as_dict() for s in samples],
    }
    write_results(doc, path)


@click.command()
@click.option("--processes", type=click.IntRange(min=1), default=20000, show_default=True,
              help="fork+exec+wait cycles per storm.")
@click.option("--repetitions", type=click.IntRange(min=1), default=5, show_default=True,
              help="Storms per configuration.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_JSON,
              show_default=True, help="Where to write every raw sample.")
def main(processes: int, repetitions: int, json_path: Path) -> None:
    """Exec storm with and without the agent; exit 1 on uncounted losses, 2 if unable to measure."""
    if os.geteuid() != 0:
        raise click.ClickException("run as root: the agent loads BPF programs")
    try:
        with tempfile.TemporaryDirectory(prefix="exec_storm-") as tmp:
            workdir = Path(tmp)
            samples = run_all(compile_driver(DRIVER_SOURCE, workdir), processes, repetitions, workdir)
    except BenchmarkError as err:
        console.print(f"exec_storm: {err}", style="red", markup=False, highlight=False)
        sys.exit(2)
    summary = summarize(samples)
    Console(width=WIDTH).print(render(summary, processes, repetitions))
    write_json(json_path, {"processes": processes, "repetitions": repetitions}, samples, summary)
    console.print(f"raw samples: {json_path}")
    uncounted = [s for s in samples if s.agent and s.agent.lost_uncounted]
    for s in uncounted:
        assert s.agent is not None
        console.print(f"rep {s.repetition}: {s.agent.delivered:,} of {s.storm.count:,} exec events "
                      "delivered but kernel_lost is 0: events lost without being counted", style="red")
    sys.exit(1 if uncounted else 0)


if __name__ == "__main__":
    main()
