"""Memory over a long exec storm: is the agent's resident memory bounded, does its cache leak?

    .venv/bin/python benchmarks/soak.py                      # 10 minutes
    .venv/bin/python benchmarks/soak.py --duration 60        # a smoke run

One ``tetra agent`` (process events only, JSON export rotated so the disk does
not fill) runs while ``drivers/exec_storm.c`` forks and execs ``/bin/true`` in
rounds for ``--duration`` seconds. Every ``--every`` seconds it records the
agent's VmRSS and its process cache size (``tetra status``). Printed and
written to ``results/soak-latest.json``: RSS after start, at the end, its
maximum, the growth between the first and the last quarter of the storm, the
cache size along the way and after the storm's processes are gone, and the
kernel's losses. Nothing here asserts: a growing RSS or cache is for a human
to read.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (DRIVERS, TETRA, TETRA_READY_MARK, Daemon, compile_driver, host_info, run_driver,  # noqa: E402
                    status_kib, utc_now, write_results)

RESULTS = Path(__file__).resolve().parent / "results" / "soak-latest.json"
ROUND = 2000  # processes per driver run


def cache_size(address: str) -> int:
    done = subprocess.run([str(TETRA), "status", "-o", "json", "--server-address", address],
                          capture_output=True, timeout=60, check=True)
    return orjson.loads(done.stdout)["process_cache"]["size"]


def soak(duration: float, every: float, workdir: Path) -> dict[str, Any]:
    driver = compile_driver(DRIVERS / "exec_storm.c", workdir)
    address = f"unix://{workdir}/api/tetra.sock"
    agent = Daemon([str(TETRA), "agent", "-o", "none", "--export-filename", str(workdir / "events.log"),
                    "--export-file-max-size-mb", "64", "--export-file-max-backups", "1",
                    "--server-address", address], workdir / "agent.log", TETRA_READY_MARK)
    ready_s = agent.start()
    samples: list[dict[str, Any]] = []
    try:
        time.sleep(2)
        start_rss = status_kib(agent.pid, "VmRSS")
        started = time.monotonic()
        next_sample, processes = started, 0
        while time.monotonic() - started < duration:
            processes += run_driver(driver, [str(ROUND)]).count
            if time.monotonic() >= next_sample:
                samples.append({"t": round(time.monotonic() - started, 1), "processes": processes,
                                "rss_kib": status_kib(agent.pid, "VmRSS"), "cache": cache_size(address)})
                next_sample += every
                print(f"  {samples[-1]['t']:7.1f}s  {processes:>9,} processes  RSS {samples[-1]['rss_kib'] / 1024:6.1f} MiB"
                      f"  cache {samples[-1]['cache']:,}", flush=True)
        time.sleep(10)  # the storm's exits reach the cache; its grace period lets them go
        after = {"rss_kib": status_kib(agent.pid, "VmRSS"), "cache": cache_size(address)}
    finally:
        summary = agent.stop()
    quarter = max(1, len(samples) // 4)
    first = statistics.median(s["rss_kib"] for s in samples[:quarter])
    last = statistics.median(s["rss_kib"] for s in samples[-quarter:])
    return {
        "benchmark": "soak", "started": utc_now().isoformat(), "host": host_info(),
        "params": {"duration_s": duration, "every_s": every, "round": ROUND},
        "ready_s": round(ready_s, 2), "processes": processes,
        "rss_after_start_kib": start_rss, "rss_max_kib": max(s["rss_kib"] for s in samples),
        "rss_first_quarter_median_kib": first, "rss_last_quarter_median_kib": last,
        "rss_growth_kib": last - first, "after_storm": after,
        "cache_max": max(s["cache"] for s in samples), "cache_evictions": summary.get("cache_evictions"),
        "kernel_lost": summary.get("kernel_lost"), "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of storm (default 600)")
    parser.add_argument("--every", type=float, default=15, help="seconds between samples (default 15)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"result file (default {RESULTS})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tetra-soak-") as tmp:
        doc = soak(args.duration, args.every, Path(tmp))
    mib = 1024
    print(f"\n{doc['processes']:,} processes in {args.duration:.0f}s; ready in {doc['ready_s']}s")
    print(f"RSS: {doc['rss_after_start_kib'] / mib:.1f} MiB after start, max {doc['rss_max_kib'] / mib:.1f}, "
          f"first quarter {doc['rss_first_quarter_median_kib'] / mib:.1f}, last quarter "
          f"{doc['rss_last_quarter_median_kib'] / mib:.1f} (growth {doc['rss_growth_kib'] / mib:+.1f} MiB)")
    print(f"cache: max {doc['cache_max']:,}, after the storm {doc['after_storm']['cache']:,}; "
          f"RSS after the storm {doc['after_storm']['rss_kib'] / mib:.1f} MiB; kernel lost {doc['kernel_lost']}")
    for path in write_results(doc, args.json, timestamped=True):
        print(f"written: {path}")


if __name__ == "__main__":
    main()
