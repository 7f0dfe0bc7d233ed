"""Nanoseconds per call of a policy's BPF programs, measured by the kernel itself.

    .venv/bin/python benchmarks/hook_cost.py                        # unmatched and selective policies
    .venv/bin/python benchmarks/hook_cost.py benchmarks/policies/firehose.yaml

With ``kernel.bpf_stats_enabled`` on, the kernel adds up each program's run
time and run count. This loads the process sensor and one policy (as the agent
does), runs ``drivers/open_storm.c`` (300,000 opens, three times), and prints
run_time_ns / run_cnt of every program of the policy, beside a program that
returns at once on the same tracepoint: the part of a hook's cost that is the
policy's own work (collecting arguments, selectors), which the storms of
peers.py only show diluted in a syscall's time. The setting is put back as it
was found. What slows a selector down shows here first.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DRIVERS, compile_driver  # noqa: E402

HERE = Path(__file__).resolve().parent
STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
OPENS = 300_000
BARE = "int bare(void *ctx) { return 0; }"


def programs() -> dict[int, tuple[str, int, int]]:
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, check=True).stdout
    return {p["id"]: (p.get("name", ""), p.get("run_time_ns", 0), p.get("run_cnt", 0)) for p in json.loads(out)}


def per_call(ids: set[int], driver: Path, target: Path) -> dict[str, float]:
    """Program name -> ns per call over three storms, for the programs ``ids``."""
    before = programs()
    for _ in range(3):
        subprocess.run([str(driver), str(OPENS), str(target)], capture_output=True, check=True)
    after = programs()
    out = {}
    for pid in ids:
        name, time_ns, count = after[pid]
        calls = count - before[pid][2]
        if calls:
            out[name] = (time_ns - before[pid][1]) / calls
    return out


def measure(policy_path: Path, driver: Path, target: Path) -> dict[str, float]:
    from bcc import BPF

    from tetra.compiler.kernel import KernelSupport
    from tetra.compiler.program import compile_policy
    from tetra.kernel.btf import Btf
    from tetra.kernel.offsets import resolve_offsets
    from tetra.policy.loader import load_policies
    from tetra.sensors.policy import PolicySensor
    from tetra.sensors.process import ProcessSensor

    btf = Btf.load()
    offsets = resolve_offsets(btf)
    process = ProcessSensor(offsets)
    process.load()
    existing = set(programs())
    bare = BPF(text=BARE)
    bare.attach_tracepoint(tp="syscalls:sys_enter_openat", fn_name="bare")
    policy = load_policies(policy_path)[0]
    sensor = PolicySensor(compile_policy(policy, 1, KernelSupport.detect(), btf),
                          {**offsets, "TETRA_RINGBUF_PAGES": 2048})
    sensor.load()
    try:
        return per_call(set(programs()) - existing, driver, target)
    finally:
        sensor.close()
        bare.cleanup()
        process.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policies", nargs="*", type=Path,
                        default=[HERE / "policies" / "unmatched.yaml", HERE / "policies" / "selective.yaml"])
    args = parser.parse_args()
    was = STATS.read_text().strip()
    STATS.write_text("1")
    try:
        with tempfile.TemporaryDirectory(prefix="tetra-hook-cost-") as tmp:
            driver = compile_driver(DRIVERS / "open_storm.c", Path(tmp))
            target = Path(tmp) / "target"
            target.write_text("x")
            for path in args.policies:
                costs = measure(path, driver, target)
                print(f"{path.name}: " + ", ".join(f"{name} {ns:.0f} ns/call" for name, ns in sorted(costs.items())))
    finally:
        STATS.write_text(was)


if __name__ == "__main__":
    main()
