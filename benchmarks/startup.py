"""How long `tetra agent` takes to protect a node, by number of policies, cold and warm.

    .venv/bin/python benchmarks/startup.py                  # 3 repetitions (~8 min on 2 cores)
    .venv/bin/python benchmarks/startup.py --repetitions 1 --skip-50

Per configuration (no policy; the 17 policies of policies/; 50 generated ones)
and per start (first: an empty object cache; second: the cache the first left),
a fresh agent is started and timed from the spawn to its two lines:
``ready in`` (process events flow) and ``policies settled in`` (every policy
loaded or failed), then its resident memory is read. Then, on a running agent
with no policy, one policy is added over the API, deleted and added again:
the second add loads from the cache. Medians over the repetitions; min-max
beside them. Results: benchmarks/results/startup-latest.json.
"""

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULTS, BenchmarkError, host_info, status_kib, utc_now, write_results

HERE = Path(__file__).resolve().parent
LIBRARY = HERE.parent / "policies"
TETRA = [sys.executable, "-m", "tetra"]
TIMEOUT_S = 600.0
READY = re.compile(r"ready in ")
SETTLED = re.compile(r"policies settled in [\d.]+s: (\d+) enabled \((\d+) from the cache\), \d+ loading, (\d+) load_error")
LOADED = re.compile(r"policy (\S+) loaded in ([\d.]+)s \(([^)]*)\)")
SYSCALLS = ("sys_openat", "sys_execve", "sys_connect", "sys_unlinkat", "sys_mkdirat", "sys_fchmodat",
            "sys_renameat2", "sys_setuid", "sys_ptrace", "sys_mount")
GENERATED = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: generated-{i}
spec:
  kprobes:
  - call: {call}
    syscall: true
    args:
    - index: 0
      type: int
    selectors:
    - matchPIDs:
      - operator: In
        values: [{pid}]
"""


def generate(directory: Path, count: int) -> Path:
    """``count`` policies on ten syscalls, each its own (name, hook, values): as many objects to build."""
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        text = GENERATED.format(i=i, call=SYSCALLS[i % len(SYSCALLS)], pid=900000 + i)
        (directory / f"generated-{i}.yaml").write_text(text)
    return directory


class Agent:
    """A tetra agent whose stderr (a file) is polled for its lines, timed from the spawn."""

    def __init__(self, workdir: Path, cache: Path, policies: Path | None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "agent.log"
        self.address = f"unix://{workdir}/api/tetra.sock"
        cmd = [*TETRA, "agent", "-o", "none", "--server-address", self.address, "--policy-cache-dir", str(cache)]
        if policies is not None:
            cmd += ["--tracing-policy-dir", str(policies)]
        self.started = time.monotonic()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, pattern: re.Pattern[str]) -> tuple[float, re.Match[str]]:
        """Seconds from the spawn to the first line matching ``pattern``."""
        while True:
            found = pattern.search(self.text())
            if found:
                return time.monotonic() - self.started, found
            if self.proc.poll() is not None or time.monotonic() - self.started > TIMEOUT_S:
                raise BenchmarkError(f"the agent did not print {pattern.pattern!r}:\n{self.text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_once(workdir: Path, cache: Path, policies: Path | None) -> dict[str, Any]:
    agent = Agent(workdir, cache, policies)
    try:
        ready_s, _ = agent.wait(READY)
        settled_s, found = agent.wait(SETTLED)
        time.sleep(1.0)  # the tick that gives the compiler's memory back (when bcc compiled in the agent)
        rss = status_kib(agent.proc.pid, "VmRSS")
    finally:
        agent.stop()
    return {"ready_s": round(ready_s, 3), "settled_s": round(settled_s, 3), "loaded": int(found[1]),
            "from_cache": int(found[2]), "failed": int(found[3]), "rss_mib": round(rss / 1024, 1)}


def api_add(workdir: Path, cache: Path, policy: Path, repetitions: int) -> dict[str, Any]:
    """Add ``policy`` over the API (first: built), then delete and add it again ``repetitions`` times,
    alternating the CLI (``tetra tracingpolicy add``: its own start included) and the RPC alone."""
    from tetra.api import pb
    from tetra.api.client import Client, ClientOptions

    agent = Agent(workdir, cache, None)
    samples: list[dict[str, Any]] = []
    try:
        agent.wait(SETTLED)
        client = Client(ClientOptions(agent.address, timeout=TIMEOUT_S))
        name = re.search(r"name: (\S+)", policy.read_text())[1]  # type: ignore[index]
        for i in range(2 * repetitions + 1):
            via = "cli" if i % 2 == 0 else "rpc"
            began = time.monotonic()
            if via == "cli":
                done = subprocess.run([*TETRA, "tracingpolicy", "add", str(policy), "--server-address",
                                       agent.address], capture_output=True, timeout=TIMEOUT_S)
                if done.returncode != 0:
                    raise BenchmarkError(f"tracingpolicy add failed: {done.stderr.decode()}")
            else:
                client.call("AddTracingPolicy", pb.AddTracingPolicyRequest(yaml=policy.read_text()))
            took = time.monotonic() - began
            loads = [m for m in LOADED.finditer(agent.text()) if m[1] == name]
            samples.append({"via": via, "wall_s": round(took, 3), "agent_s": float(loads[-1][2]),
                            "origin": loads[-1][3]})
            client.call("DeleteTracingPolicy", pb.DeleteTracingPolicyRequest(name=name))
        client.close()
    finally:
        agent.stop()
    again = samples[1:]
    return {"first": samples[0], "again": again,
            "again_cli_median_s": statistics.median(s["wall_s"] for s in again if s["via"] == "cli"),
            "again_rpc_median_s": statistics.median(s["wall_s"] for s in again if s["via"] == "rpc"),
            "again_agent_median_s": statistics.median(s["agent_s"] for s in again)}


def median_of(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("ready_s", "settled_s", "rss_mib"):
        values = [s[key] for s in samples]
        out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--skip-50", action="store_true", help="only the library (and no policy)")
    parser.add_argument("--api-only", action="store_true", help="only the add over the API")
    parser.add_argument("--json", type=Path, default=RESULTS / "startup-latest.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tetra-startup-"))
    try:
        configs: dict[str, Path | None] = {} if args.api_only else {"none": None, "library-17": LIBRARY}
        if not (args.skip_50 or args.api_only):
            configs["generated-50"] = generate(work / "generated", 50)
        results: dict[str, Any] = {}
        for name, policies in configs.items():
            runs: dict[str, list[dict[str, Any]]] = {"first": [], "second": []}
            for rep in range(args.repetitions):
                cache = work / f"cache-{name}-{rep}"
                for start in ("first", "second"):
                    sample = start_once(work / f"{name}-{rep}-{start}", cache, policies)
                    runs[start].append(sample)
                    print(f"{name:13s} {start:6s} ready {sample['ready_s']:6.2f}s  settled {sample['settled_s']:6.2f}s"
                          f"  loaded {sample['loaded']} ({sample['from_cache']} cached), failed {sample['failed']}"
                          f"  RSS {sample['rss_mib']} MiB", flush=True)
            results[name] = {start: {"samples": s, **median_of(s)} for start, s in runs.items()}
        add = api_add(work / "api", work / "cache-api", LIBRARY / "etc-write.yaml", max(3, args.repetitions))
        print(f"API add etc-write: first {add['first']['wall_s']:.2f}s ({add['first']['origin']}); again "
              f"{add['again_cli_median_s']:.2f}s by the CLI, {add['again_rpc_median_s']:.2f}s by the RPC, "
              f"{add['again_agent_median_s']:.2f}s in the agent")
        doc = {"benchmark": "startup", "time": utc_now().isoformat(), "host": host_info(),
               "repetitions": args.repetitions, "configs": results, "api_add": add}
        if "library-17" in results and "generated-50" in results:
            doc["ratio_50_to_17_second_settled"] = round(
                results["generated-50"]["second"]["settled_s"]["median"]
                / results["library-17"]["second"]["settled_s"]["median"], 2)
        for path in write_results(doc, args.json, timestamped=True):
            print(f"wrote {path}")
        print("\nmedians (s):                ready   settled   RSS MiB")
        for name, by_start in results.items():
            for start, r in by_start.items():
                print(f"  {name:13s} {start:6s}  {r['ready_s']['median']:7.2f} {r['settled_s']['median']:9.2f}"
                      f" {r['rss_mib']['median']:9.1f}")
        return 0
    except BenchmarkError as err:
        print(f"startup benchmark failed: {err}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))  # tetra itself, for the RPC-level add
    sys.exit(main())
