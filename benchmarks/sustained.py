"""Loss at a sustained event rate: can the agent keep up with N events per second for a minute?

    .venv/bin/python benchmarks/sustained.py                          # 25k, 50k, 100k/s, 60 s each
    .venv/bin/python benchmarks/sustained.py --rates 60000 --seconds 20

For each rate, a fresh ``tetra agent`` with ``policies/firehose.yaml`` (every
openat posted and exported as JSON, rotated so that the disk does not fill)
runs while ``drivers/paced_open.c`` opens a file at that rate, in batches of
100 per slot, for ``--seconds``. Printed and written to
``results/sustained-latest.json``: the rate the driver achieved, the policy
events the kernel sent and lost (its counters), those the agent exported, and
the agent's CPU per event. Peaks shorter than the ring buffer's size are
absorbed; a rate above what the agent drains fills it, and the kernel counts
every record it then could not take.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (DRIVERS, TETRA, TETRA_READY_MARK, Daemon, compile_driver, cpu_seconds, host_info,  # noqa: E402
                    run_driver, utc_now, write_results)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "sustained-latest.json"
FIREHOSE = HERE / "policies" / "firehose.yaml"


def one_rate(rate: int, seconds: int, driver: Path, workdir: Path) -> dict[str, Any]:
    target = workdir / "target"
    target.write_text("x")
    agent = Daemon([str(TETRA), "agent", "-o", "none", "--tracing-policy", str(FIREHOSE),
                    "--export-filename", str(workdir / f"events-{rate}.log"), "--export-file-max-size-mb", "256",
                    "--export-file-max-backups", "1", "--server-address", f"unix://{workdir}/api-{rate}/tetra.sock"],
                   workdir / f"agent-{rate}.log", TETRA_READY_MARK)
    agent.start()
    try:
        cpu_before = cpu_seconds(agent.pid)
        storm = run_driver(driver, [str(rate), str(seconds), str(target)])
        time.sleep(3)  # the backlog drains
        cpu = cpu_seconds(agent.pid) - cpu_before
    finally:
        summary = agent.stop()
    generic = summary["kernel"]["generic"]
    exported = summary["pipeline"]["events"].get("process_kprobe", 0)
    return {"rate": rate, "seconds": seconds, "opens": storm.count,
            "achieved_per_s": round(storm.count / (storm.elapsed_ns / 1e9)),
            "kernel_sent": generic["sent"], "kernel_lost": generic["lost"], "exported": exported,
            "cpu_s": round(cpu, 2), "cpu_us_per_event": round(cpu / exported * 1e6, 1) if exported else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="25000,50000,100000", help="events per second, comma separated")
    parser.add_argument("--seconds", type=int, default=60, help="seconds at each rate (default 60)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"result file (default {RESULTS})")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tetra-sustained-") as tmp:
        driver = compile_driver(DRIVERS / "paced_open.c", Path(tmp))
        for rate in (int(r) for r in args.rates.split(",")):
            row = one_rate(rate, args.seconds, driver, Path(tmp))
            rows.append(row)
            print(f"{rate:>8,}/s for {args.seconds}s: achieved {row['achieved_per_s']:,}/s, kernel sent "
                  f"{row['kernel_sent']:,} lost {row['kernel_lost']:,}, exported {row['exported']:,}, "
                  f"CPU {row['cpu_us_per_event']} µs/event", flush=True)
    doc = {"benchmark": "sustained", "started": utc_now().isoformat(), "host": host_info(),
           "params": {"rates": args.rates, "seconds": args.seconds}, "rows": rows}
    for path in write_results(doc, args.json, timestamped=True):
        print(f"written: {path}")


if __name__ == "__main__":
    main()
