"""scripts/policy_compat.py: every stage's verdict is recorded, none crashes the run.

No bcc: the load stage is exercised with a stand-in loader. A tracepoint compiles with its
format read from tracefs, which only root may read: those tests need root.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tetra.compiler.kernel import KernelSupport
from tetra.errors import SensorError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "policy_compat.py"
NOTHING = KernelSupport(kprobe=False, fentry=False, lsm=False, reasons={"kprobe": "no kprobes here"})

TRACEPOINT = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: raw-syscalls
spec:
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args:
    - index: 4
      type: int64
"""

KPROBE = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: fd-install
spec:
  kprobes:
  - call: fd_install
    syscall: false
    args:
    - index: 0
      type: int
"""


@pytest.fixture(scope="module")
def compat() -> ModuleType:
    spec = importlib.util.spec_from_file_location("policy_compat", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["policy_compat"] = module
    spec.loader.exec_module(module)
    return module


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_reason_key_keeps_the_cause_and_drops_what_differs(compat: ModuleType) -> None:
    assert compat.reason_key("a.yaml:7:5: spec.kprobes[0]: kernel function fd_install needs kprobes") \
        == "kernel function <name> needs kprobes"
    assert compat.reason_key("unknown type 'dns'; known: int, string") == "unknown type 'dns'"
    assert compat.reason_key("LSM hook file_open needs BPF LSM") == "LSM hook <name> needs BPF LSM"
    assert compat.reason_key("usdt path '/home/x/usdt' does not exist: No such file or directory") \
        == "usdt path <path> does not exist: No such file or directory"
    assert compat.reason_key("USDT probe test:usdt3 of /opt/a is guarded by a semaphore") \
        == "USDT probe test:usdt3 of <path> is guarded by a semaphore"
    assert compat.reason_key("") == "(no message)"


def test_a_rejected_file_is_a_result_and_later_stages_do_not_run(compat: ModuleType, tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", "kind: TracingPolicy\nspec: [\n")
    result = compat.measure_file(path, tmp_path, NOTHING, None, None)
    assert result.file == "bad.yaml"
    assert result.validate.ok is False and result.validate.reasons
    assert result.compile_here.ok is None and result.compile_all.ok is None and result.load_here.ok is None


@pytest.mark.usefixtures("root")  # TRACEPOINT compiles with its format from tracefs, root's
def test_a_tracepoint_compiles_here_and_loads_with_the_given_loader(compat: ModuleType, tmp_path: Path) -> None:
    loaded: list[str] = []
    path = _write(tmp_path, "sub/tp.yaml", TRACEPOINT)
    result = compat.measure_file(path, tmp_path, NOTHING, None, lambda c: loaded.append(c.policy.name))
    assert result.file == "sub/tp.yaml" and result.policies == ["raw-syscalls"]
    assert (result.validate.ok, result.compile_here.ok, result.compile_all.ok, result.load_here.ok) \
        == (True, True, True, True)
    assert loaded == ["raw-syscalls"]


def test_a_loader_policy_compiles_everywhere_and_goes_to_the_loader(compat: ModuleType, tmp_path: Path) -> None:
    """spec.loader: true needs no kprobe (the loader sensor uses syscall tracepoints): it compiles even
    where nothing else would; the session's loader loads the loader sensor for it (load_session)."""
    text = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: libs\nspec:\n  loader: true\n"
    loaded: list[bool] = []
    result = compat.measure_file(_write(tmp_path, "loader.yaml", text), tmp_path, NOTHING, None,
                                 lambda c: loaded.append(c.policy.spec.loader))
    assert (result.validate.ok, result.compile_here.ok, result.compile_all.ok, result.load_here.ok) \
        == (True, True, True, True)
    assert loaded == [True]


def test_a_kernel_function_fails_here_with_the_reason_but_compiles_with_all(compat: ModuleType,
                                                                            tmp_path: Path) -> None:
    result = compat.measure_file(_write(tmp_path, "k.yaml", KPROBE), tmp_path, NOTHING, None, lambda c: None)
    assert result.compile_here.ok is False
    assert "needs kprobes or fentry" in result.compile_here.reasons[0]
    assert result.compile_all.ok is True
    assert result.load_here.ok is None and result.load_here.reasons == ["not run: does not compile here"]


@pytest.mark.usefixtures("root")  # TRACEPOINT compiles with its format from tracefs, root's
def test_load_refusals_and_crashes_of_ours_are_recorded_not_raised(compat: ModuleType, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_: object) -> None:
        raise SensorError("policy raw-syscalls: verifier said no\nline 2")

    path = _write(tmp_path, "tp.yaml", TRACEPOINT)
    refused = compat.measure_file(path, tmp_path, NOTHING, None, refuse)
    assert refused.load_here.ok is False
    assert refused.load_here.reasons == ["policy raw-syscalls: verifier said no", "line 2"]

    def crash(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(compat, "compile_policy", crash)
    crashed = compat.measure_file(path, tmp_path, NOTHING, None, None)
    assert crashed.compile_here.reasons == ["internal error: RuntimeError('boom')"]
    assert crashed.load_here.reasons == ["not run: needs root and bcc"]


@pytest.mark.usefixtures("root")  # TRACEPOINT compiles with its format from tracefs, root's
def test_summary_counts_stages_and_groups_reasons_once_per_file(compat: ModuleType, tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yml"):
        _write(tmp_path, name, KPROBE)
    _write(tmp_path, "c.yaml", TRACEPOINT)
    _write(tmp_path, "notes.md", "not a policy")
    files = compat.policy_files(tmp_path)
    assert [p.name for p in files] == ["a.yaml", "b.yml", "c.yaml"]
    results = [compat.measure_file(p, tmp_path, NOTHING, None, None) for p in files]
    summary = compat.summarize(results)
    assert summary["tried"] == 3
    assert summary["validate"]["ok"] == 3
    assert (summary["compile_here"]["ok"], summary["compile_here"]["failed"]) == (1, 2)
    assert summary["compile_all"]["ok"] == 3
    assert summary["load_here"]["not_run"] == 3
    [(reason, count)] = summary["compile_here"]["reasons"]
    assert count == 2 and reason.startswith("kernel function <name> needs kprobes or fentry")
