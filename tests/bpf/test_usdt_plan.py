"""Planning USDT hooks against a real binary's notes (read by bcc): where the uprobes go, how the
arguments are read, and every way a usdts entry can be wrong, each reported at its location."""

import subprocess
from pathlib import Path

import pytest

from tests import usdt_program
from tetra.compiler.kernel import KernelSupport
from tetra.compiler.plan import Mechanism
from tetra.compiler.program import compile_policy
from tetra.policy import PolicyErrors
from tetra.policy.loader import load_policies_text

pytest.importorskip("bcc")
NOTHING = KernelSupport(kprobe=False, fentry=False, lsm=False)


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return usdt_program.build(tmp_path_factory.mktemp("usdt"))


def _policy(path: str, probe: str = usdt_program.PROBE, index: int = 1) -> str:
    return f"""\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: usdt-plan
spec:
  usdts:
  - path: "{path}"
    provider: "{usdt_program.PROVIDER}"
    name: "{probe}"
    args:
    - index: 0
      type: "int32"
    - index: {index}
      type: "string"
"""


def _errors(text: str) -> list[str]:
    [policy] = load_policies_text(text, "usdt.yaml")
    with pytest.raises(PolicyErrors) as caught:
        compile_policy(policy, 1, NOTHING, None)
    return [str(issue) for issue in caught.value.errors]


def test_plan_reads_the_symlink_target(program: Path, tmp_path: Path) -> None:
    link = tmp_path / "marker-link"
    link.symlink_to(program)
    [policy] = load_policies_text(_policy(str(link)), "usdt.yaml")
    compiled = compile_policy(policy, 1, NOTHING, None)
    [hook] = compiled.hooks
    assert (hook.mechanism, hook.event, hook.attach) == (Mechanism.USDT, "process_usdt", "tetra:marker")
    assert hook.uprobe_path == str(link)  # what events report, as Tetragon does
    assert hook.usdt is not None and hook.usdt.path == str(program)  # what is read and attached to
    [location] = hook.usdt.locations  # the note says: -4@%eax 8@%r12 (registers gcc chose)
    assert [(arg.ctype, arg.constant, arg.offset) for arg in location.args] == [("__s32", None, None),
                                                                                ("__u64", None, None)]
    assert hook.usdt.semaphore == 0
    assert "static __always_inline __s64 tetra_usdt_0_1(struct pt_regs *ctx)" in compiled.c_text
    assert f"    return (__s64)(__u64)(ctx->{location.args[1].register});" in compiled.c_text
    assert "tetra_put_str(g, 1, (const void *)(tetra_usdt_0_1(ctx)), 1);" in compiled.c_text


@pytest.mark.parametrize(("path", "message"), [
    ("marker", "usdt path 'marker' is not absolute"),
    ("/nonexistent/marker", "usdt path '/nonexistent/marker' does not exist: No such file or directory"),
    ("/", "usdt path '/' is not a regular file"),
    ("/etc/hostname", "/etc/hostname is not an ELF file bcc can read USDT notes from"),
])
def test_bad_paths(path: str, message: str) -> None:
    assert _errors(_policy(path)) == [f"usdt.yaml:7:5: spec.usdts[0]: {message}"]


def test_missing_probe_names_the_binarys_probes(program: Path) -> None:
    assert _errors(_policy(str(program), probe="absent")) == [
        f"usdt.yaml:7:5: spec.usdts[0]: {program} has no USDT probe tetra:absent "
        "(its probes: tetra:guarded, tetra:marker, tetra:stacked)"]


def test_arguments_in_memory_are_read_from_user_space(program: Path) -> None:
    """tetra:stacked's note says -4@4(%rsp) 8@8(%rsp) (where gcc put them): read at sp plus the offset."""
    [policy] = load_policies_text(_policy(str(program), probe=usdt_program.STACKED), "usdt.yaml")
    compiled = compile_policy(policy, 1, NOTHING, None)
    [hook] = compiled.hooks
    assert hook.usdt is not None
    [location] = hook.usdt.locations
    assert [(arg.ctype, arg.register, arg.offset is not None) for arg in location.args] == [
        ("__s32", "sp", True), ("__u64", "sp", True)]
    assert (f"{{ __s32 v = 0; bpf_probe_read_user(&v, sizeof(v), (void *)(ctx->sp + ({location.args[0].offset}LL))); "
            "return (__s64)v; }") in compiled.c_text


def test_semaphore_is_found_in_the_file(program: Path) -> None:
    """The kernel raises a semaphore by its offset in the file: the .probes section's, where gcc put it."""
    [policy] = load_policies_text(_policy(str(program), probe=usdt_program.GUARDED), "usdt.yaml")
    [hook] = compile_policy(policy, 1, NOTHING, None).hooks
    sections = subprocess.run(["readelf", "-SW", str(program)], capture_output=True, text=True, check=True).stdout
    [probes] = [line.split() for line in sections.splitlines() if " .probes " in line]
    offset = int(probes[probes.index(".probes") + 3], 16)  # name, type, address, offset
    assert hook.usdt is not None and hook.usdt.semaphore == offset


def test_argument_past_the_probes(program: Path) -> None:
    [error] = _errors(_policy(str(program), index=2))
    assert error.endswith("USDT probe tetra:marker has 2 arguments, no index 2")
    assert error.startswith("usdt.yaml:13:7: spec.usdts[0].args[1]: ")


def test_set_action_is_refused(program: Path) -> None:
    """Set writes the probe's argument in the traced process's memory: tetra does not write user memory."""
    text = _policy(str(program)) + """\
    selectors:
    - matchActions:
      - action: Set
        argIndex: 0
        argValue: 32
"""
    [error] = _errors(text)
    assert error == ("usdt.yaml:17:9: spec.usdts[0].selectors[0].matchActions[0]: "
                     "action Set is not supported by tetra yet")
