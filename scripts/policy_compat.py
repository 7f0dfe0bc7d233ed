"""How many TracingPolicy files does tetra accept, and why not the others?

tetra must load Tetragon's TracingPolicy YAML unchanged, so the policies
Tetragon publishes (its examples and docs) are the compatibility yardstick.
This script measures a directory of them, stage by stage, the way the agent
would take them:

1. validate      -- the loader (``tetra tracingpolicy validate``), no root;
2. compile here  -- every hook placed on the running kernel (KernelSupport.detect());
3. compile all   -- as if kprobes, fentry and BPF LSM existed (KernelSupport.everything()),
                    which separates "this kernel cannot" from "tetra cannot";
4. load here     -- (root only) PolicySensor load + close after a ProcessSensor, in one
                    session, so the verifier and the attach have their say; a policy
                    with ``spec.loader: true`` loads the loader sensor too, as the agent does.

Policies are loaded in monitoring mode: Sigkill/Signal are reported, never sent,
so measuring cannot kill anything on this host (the programs are the same).
A file that fails a stage is a result, never a crash of this script.

    python scripts/policy_compat.py DIR [--json OUT]
"""

import argparse
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from tetra.compiler.kernel import KernelSupport
from tetra.compiler.plan import kernel_symbols
from tetra.compiler.program import CompiledPolicy, compile_policy
from tetra.errors import TetraError
from tetra.kernel.btf import Btf
from tetra.policy import PolicyErrors, load_policies_report
from tetra.policy.model import TracingPolicy

STAGES = ("validate", "compile_here", "compile_all", "load_here")
MAX_LINES = 3  # error lines kept per file and stage
SUFFIXES = (".yaml", ".yml")


@dataclass
class Stage:
    """One stage's verdict on a file: ok, failed with reasons, or not run (and why)."""

    ok: bool | None = None  # None: not run
    reasons: list[str] = field(default_factory=list)


@dataclass
class FileResult:
    """Every stage's verdict on one file (its path relative to the measured directory)."""

    file: str
    policies: list[str] = field(default_factory=list)
    validate: Stage = field(default_factory=Stage)
    compile_here: Stage = field(default_factory=Stage)
    compile_all: Stage = field(default_factory=Stage)
    load_here: Stage = field(default_factory=Stage)

    def stage(self, name: str) -> Stage:
        result: Stage = getattr(self, name)
        return result


_LISTS = re.compile(r";? (known|allowed): .*$")
_NAMES = re.compile(r"\b(kernel function|LSM hook|every call of (?:kprobe|tracepoint|uprobe|USDT probe)) [\w:./@-]+")
_LOCATION = re.compile(r"^\S+?:\d+:\d+: (\S+: )?")
_BINARIES = re.compile(r"\b((?:uprobe|usdt) path|USDT probe \S+ of) '?/[^' ]*'?")


def reason_key(reason: str) -> str:
    """A reason with what differs from file to file (names, locations, long lists) taken out."""
    line = _LOCATION.sub("", reason.strip().splitlines()[0] if reason.strip() else "(no message)")
    line = _BINARIES.sub(lambda m: f"{m.group(1)} <path>", _LISTS.sub("", line))
    return _NAMES.sub(lambda m: f"{m.group(1)} <name>", line)


def issue_lines(err: PolicyErrors) -> list[str]:
    """The messages of a PolicyErrors (without file:line:col), at most MAX_LINES."""
    return [issue.message for issue in err.errors[:MAX_LINES]] or [str(err)]


def _fail(stage: Stage, reasons: list[str]) -> None:
    stage.ok = False
    stage.reasons = reasons[:MAX_LINES]


def _guarded(stage: Stage, action: Callable[[], object]) -> None:
    """Run one stage; tetra's located errors and any crash of ours become reasons."""
    try:
        action()
        stage.ok = True
    except PolicyErrors as err:
        _fail(stage, issue_lines(err))
    except TetraError as err:
        _fail(stage, str(err).splitlines())
    except Exception as err:  # a bug of tetra's is a result here too
        _fail(stage, [f"internal error: {err!r}"])


def _compile_each(policies: list[TracingPolicy], support: KernelSupport, btf: Btf | None,
                  symbols: frozenset[str] | None = None) -> list[CompiledPolicy]:
    return [compile_policy(p, i, support, btf, symbols) for i, p in enumerate(policies, start=1)]


def measure_file(path: Path, root: Path, here: KernelSupport, btf: Btf | None,
                 loader: Callable[[CompiledPolicy], None] | None,
                 symbols: frozenset[str] | None = None) -> FileResult:
    """Validate, compile here (with the kernel's symbols, as the agent does), compile for every mechanism, load."""
    result = FileResult(str(path.relative_to(root)))
    policies: list[TracingPolicy] = []

    def validate() -> None:
        policies.extend(load_policies_report(path)[0])
        result.policies = [p.name for p in policies]

    _guarded(result.validate, validate)
    if not result.validate.ok:
        return result
    compiled: list[CompiledPolicy] = []
    _guarded(result.compile_here, lambda: compiled.extend(_compile_each(policies, here, btf, symbols)))
    _guarded(result.compile_all, lambda: _compile_each(policies, KernelSupport.everything(), btf))
    if loader is None:
        result.load_here.reasons = ["not run: needs root and bcc"]
    elif result.compile_here.ok:
        _guarded(result.load_here, lambda: [loader(c) for c in compiled])
    else:
        result.load_here.reasons = ["not run: does not compile here"]
    return result


@contextmanager
def load_session(btf: Btf | None) -> Iterator[Callable[[CompiledPolicy], None] | None]:
    """A loaded ProcessSensor and a function loading (then closing) one compiled policy; None without root."""
    if os.geteuid() != 0:
        yield None
        return
    try:
        from tetra.kernel.offsets import resolve_offsets
        from tetra.sensors.loader import LoaderSensor
        from tetra.sensors.policy import PolicySensor
        from tetra.sensors.process import ProcessSensor

        if btf is None:
            raise TetraError("no kernel BTF (/sys/kernel/btf/vmlinux)")
        offsets = resolve_offsets(btf)
        defines: dict[str, int | str | None] = {**offsets, "TETRA_RINGBUF_PAGES": 2048,
                                                "TETRA_AGENT_TGID": os.getpid()}
        process = ProcessSensor(offsets)
        process.load()
    except Exception as err:  # no bcc, no BTF: the load stage is reported as not run
        print(f"load stage not run: {err}", file=sys.stderr)
        yield None
        return

    def load(compiled: CompiledPolicy) -> None:
        sensor = PolicySensor(compiled, defines)
        loader = LoaderSensor(defines)
        try:
            if compiled.policy.spec.loader:
                loader.acquire(compiled.policy_id)
            sensor.load(monitoring=True)
        finally:
            sensor.close()
            loader.close()

    try:
        yield load
    finally:
        process.close()


def policy_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in SUFFIXES and p.is_file())


def summarize(results: list[FileResult]) -> dict[str, Any]:
    summary: dict[str, Any] = {"tried": len(results)}
    for name in STAGES:
        stages = [r.stage(name) for r in results]
        reasons = Counter(key for s in stages if s.ok is False for key in dict.fromkeys(map(reason_key, s.reasons)))
        summary[name] = {"ok": sum(s.ok is True for s in stages), "failed": sum(s.ok is False for s in stages),
                         "not_run": sum(s.ok is None for s in stages), "reasons": reasons.most_common()}
    return summary


def render(summary: dict[str, Any], console: Console, top: int) -> None:
    counts = Table(title=f"{summary['tried']} files tried")
    for column in ("stage", "ok", "failed", "not run"):
        counts.add_column(column, justify="left" if column == "stage" else "right")
    for name in STAGES:
        s = summary[name]
        counts.add_row(name, str(s["ok"]), str(s["failed"]), str(s["not_run"]))
    console.print(counts)
    for name in STAGES:
        reasons = summary[name]["reasons"]
        if not reasons:
            continue
        table = Table(title=f"{name}: top reasons (files)")
        table.add_column("files", justify="right")
        table.add_column("reason", overflow="fold")
        for reason, count in reasons[:top]:
            table.add_row(str(count), reason)
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--json", type=Path, help="write every file's result and the summary here")
    parser.add_argument("--top", type=int, default=15, help="reasons shown per stage")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        parser.error(f"{args.directory} is not a directory")

    btf = Btf.load() if os.path.exists("/sys/kernel/btf/vmlinux") else None
    here = KernelSupport.detect()
    symbols = kernel_symbols() if here.kprobe else None
    results = []
    with load_session(btf) as loader:
        for path in policy_files(args.directory):
            results.append(measure_file(path, args.directory, here, btf, loader, symbols))
    summary = summarize(results)
    render(summary, Console(soft_wrap=False), args.top)
    if args.json:
        document = {"kernel": {"kprobe": here.kprobe, "fentry": here.fentry, "lsm": here.lsm, "reasons": here.reasons},
                    "summary": summary, "files": [asdict(r) for r in results]}
        args.json.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
