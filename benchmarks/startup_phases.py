"""Where an agent's start goes, phase by phase, for a directory of policies (default: policies/).

    .venv/bin/python benchmarks/startup_phases.py [DIR]

In this process, as the agent does it: BTF, the process sensor (clang),
the kernel feature probe, YAML and C generation; then per policy both ways
of loading it: bcc (clang in the process, then the verifier and the
attachments) and a compiled object (built once beside the process, all
policies with the same defines in one module: tetra/sensors/build.py; then
read from the cache, maps created, verifier, attachments). The bcc way is
measured as clang and the verifier (its attachments are the same code as the
object's). Totals and per-policy means; results:
benchmarks/results/startup-phases-latest.json.
"""

import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import RESULTS, host_info, utc_now, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tetra.compiler.kernel import KernelSupport  # noqa: E402
from tetra.compiler.plan import Mechanism  # noqa: E402
from tetra.compiler.program import CompiledPolicy, compile_policy  # noqa: E402
from tetra.kernel.btf import Btf  # noqa: E402
from tetra.kernel.offsets import resolve_offsets  # noqa: E402
from tetra.policy.loader import load_policies_report  # noqa: E402
from tetra.kernel.probes import expand_includes  # noqa: E402
from tetra.sensors.build import Build, BuildRequest  # noqa: E402
from tetra.sensors.objcache import ObjectCache, cache_key, environment  # noqa: E402
from tetra.sensors.policy import PolicySensor  # noqa: E402
from tetra.sensors.process import SHARED_TABLES, ProcessSensor  # noqa: E402


# The program type bcc loads each mechanism's programs with (cgroup programs are left out here).
PROG_TYPES = {Mechanism.TRACEPOINT: "TRACEPOINT", Mechanism.RAW_TRACEPOINT: "RAW_TRACEPOINT",
              Mechanism.KPROBE: "KPROBE", Mechanism.UPROBE: "KPROBE"}


class Clock:
    """Seconds per phase, added up."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = defaultdict(float)

    def time(self, phase: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            self.phases[phase] += time.monotonic() - began


def main() -> int:
    from bcc import BPF

    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "policies"
    clock = Clock()
    started = time.monotonic()
    btf = clock.time("BTF", Btf.load)
    offsets = clock.time("BTF", resolve_offsets, btf)
    process = ProcessSensor(offsets)
    clock.time("process sensor (clang + load)", process.load)
    support = clock.time("feature probe", KernelSupport.detect)
    defines = {**offsets, "TETRA_RINGBUF_PAGES": 2048, "TETRA_AGENT_TGID": os.getpid()}
    compiled: list[CompiledPolicy] = []
    for path in sorted(directory.glob("*.yaml")):
        policies, _ = clock.time("YAML", load_policies_report, path)
        for policy in policies:
            compiled.append(clock.time("C generation", compile_policy, policy, len(compiled) + 1, support, btf))
    shared = process.shared_maps()
    try:
        # bcc, as every start did before the object cache (and as the agent still does without one).
        for policy in compiled:
            sensor = PolicySensor(policy, defines)
            bpf = clock.time("bcc: clang", BPF, text=expand_includes(policy.c_text).encode(),
                             cflags=sensor._cflags)  # noqa: SLF001 - the same flags the sensor compiles with
            for hook in policy.hooks:
                prog_type = PROG_TYPES.get(hook.mechanism)
                for fn in (hook.entry_fn, hook.return_fn if hook.return_attach else None):
                    if prog_type is not None and fn:
                        clock.time("bcc: verifier", bpf.load_func, fn.encode(), getattr(BPF, prog_type))
            bpf.cleanup()
        # Compiled objects: built once (batched), then read from the cache at every start.
        with tempfile.TemporaryDirectory() as cache_dir:
            cache, env = ObjectCache(cache_dir), environment()
            sensors = [PolicySensor(policy, defines) for policy in compiled]
            requests: list[BuildRequest] = [s.build_request(SHARED_TABLES) for s in sensors]  # type: ignore[misc]
            groups: dict[object, list[int]] = defaultdict(list)
            for i, request in enumerate(requests):
                groups[request.batch_key].append(i)
            began = time.monotonic()
            for members in groups.values():
                for i, spec in zip(members, Build([requests[i] for i in members]).wait()):
                    cache.put(cache_key(requests[i].text, list(requests[i].cflags), env), spec)
            clock.phases["objects: build (one module per define set, one core)"] = time.monotonic() - began
            for sensor, request in zip(sensors, requests):
                spec = clock.time("objects: cache read", cache.get, cache_key(request.text, list(request.cflags), env))
                clock.time("objects: maps + verifier + attach", sensor.load, obj=spec, shared=shared)
            for sensor in sensors:
                sensor.close()
    finally:
        process.close()
    count = len(compiled)
    print(f"{count} policies from {directory} ({time.monotonic() - started:.0f}s)")
    for phase, seconds in clock.phases.items():
        print(f"  {phase:55s} {seconds:7.3f}s  ({seconds / count * 1000:6.0f} ms per policy)")
    doc = {"benchmark": "startup_phases", "time": utc_now().isoformat(), "host": host_info(), "policies": count,
           "phases_s": {k: round(v, 3) for k, v in clock.phases.items()}}
    for path in write_results(doc, RESULTS / "startup-phases-latest.json"):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
