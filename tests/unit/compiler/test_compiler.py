"""The policy compiler without a kernel: placement, selectors, C text, errors.

Plans for a kernel with kprobes (no tracefs needed), so these run anywhere but
the two that compile the tracepoint template: its format is in tracefs, which
is root's. tests/bpf/test_compiler_kernel.py puts the same output in front of
the verifier.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tetra.compiler.kernel import KernelSupport
from tetra.compiler.plan import Mechanism, syscall_name
from tetra.compiler.program import CompiledPolicy, compile_policy
from tetra.policy.errors import PolicyErrors
from tetra.policy.loader import load_policies_text

KPROBES = KernelSupport(kprobe=True, fentry=False, lsm=False)
FENTRY_LSM = KernelSupport(kprobe=False, fentry=True, lsm=True)
NOTHING = KernelSupport(kprobe=False, fentry=False, lsm=False,
                        reasons={"kprobe": "no kprobe_events", "fentry": "refused", "lsm": "refused"})


def policy(spec: str, name: str = "p") -> str:
    return f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:\n{spec}"


def compiled(spec: str, support: KernelSupport = KPROBES) -> CompiledPolicy:
    return compile_policy(load_policies_text(policy(spec), "p.yaml")[0], 3, support, None)


def errors(spec: str, support: KernelSupport = KPROBES) -> str:
    with pytest.raises(PolicyErrors) as info:
        compiled(spec, support)
    return str(info.value)


OPEN = """  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"
    - index: 2
      type: "int"
"""


@pytest.mark.parametrize("call,name", [("sys_openat", "openat"), ("__x64_sys_openat", "openat"),
                                       ("openat", "openat"), ("sys_x;y", None)])
def test_syscall_names(call: str, name: str | None) -> None:
    assert syscall_name(call) == name


def test_syscall_on_kprobe_reads_the_wrapped_registers() -> None:
    c = compiled(OPEN)
    hook = c.hooks[0]
    assert (hook.mechanism, hook.attach, hook.function_name) == (Mechanism.KPROBE, "__x64_sys_openat",
                                                                 "__x64_sys_openat")
    assert "tetra_put_str(g, 0, (const void *)(tetra_syscall_arg(ctx, 1)), 1);" in c.c_text
    assert "tetra_put_int(g, 1, (__s64)(__s32)(tetra_syscall_arg(ctx, 2)));" in c.c_text
    assert "#define TETRA_POLICY_ID 3" in c.c_text


def test_string_values_go_to_maps_not_c() -> None:
    c = compiled(OPEN + """    selectors:
    - matchArgs:
      - index: 1
        operator: "Postfix"
        values: [".key", "secret\\"*/"]
      - index: 1
        operator: "NotPrefix"
        values: ["/proc/"]
""")
    assert "secret" not in c.c_text and ".key" not in c.c_text and "/proc/" not in c.c_text
    entries = {(e.map, e.data, e.prefixlen) for e in c.map_entries}
    assert ("str_postfix", b"yek.", 32 + 32) in entries  # postfixes are stored reversed
    assert ("str_postfix", b'/*"terces', 32 + 72) in entries
    assert ("str_prefix", b"/proc/", 32 + 48) in entries
    assert "!tetra_slot_match(g, 0," in c.c_text  # NotPrefix negates


def test_integer_operators_are_literals() -> None:
    c = compiled(OPEN + """    selectors:
    - matchArgs:
      - index: 2
        operator: "Mask"
        values: ["0x241"]
      - index: 2
        operator: "NotEqual"
        values: ["0", "-1"]
    - matchArgs:
      - index: 2
        operator: "InRange"
        values: ["10:20"]
""")
    assert "((((__s64)g->ival[1]) & 577LL) != 0)" in c.c_text
    assert "(((__s64)g->ival[1]) != 0LL && ((__s64)g->ival[1]) != -1LL)" in c.c_text
    assert "(10LL <= ((__s64)g->ival[1]) && ((__s64)g->ival[1]) <= 20LL)" in c.c_text
    assert c.c_text.count("((struct tetra_generic *)g->buf)->selector =") == 2


def test_sockaddr_cidrs_become_lpm_entries() -> None:
    c = compiled("""  kprobes:
  - call: "sys_connect"
    syscall: true
    args:
    - index: 1
      type: "sockaddr"
    selectors:
    - matchArgs:
      - index: 1
        operator: "NotSAddr"
        values: ["10.0.0.0/8", "fd00::/8"]
      - index: 1
        operator: "SPort"
        values: ["443", "8000:8080"]
""")
    entries = {(e.map, e.data, e.prefixlen) for e in c.map_entries}
    assert ("addr_lpm", bytes([10, 0, 0, 0]), 32 + 8) in entries
    assert ("addr_lpm", bytes([0xfd]) + bytes(15), 32 + 8) in entries
    assert "!tetra_addr_match(g, 0," in c.c_text
    assert "(8000 <= tetra_sockaddr_port(g, 0) && tetra_sockaddr_port(g, 0) <= 8080)" in c.c_text


def test_return_probe_keeps_entry_state() -> None:
    c = compiled("""  kprobes:
  - call: "sys_read"
    syscall: true
    return: true
    args:
    - index: 0
      type: "fd"
    - index: 1
      type: "char_buf"
      returnCopy: true
    returnArg:
      index: 0
      type: "int"
    selectors:
    - matchReturnArgs:
      - index: 0
        operator: "GT"
        values: ["0"]
""")
    assert "#define TETRA_NEED_RETURN" in c.c_text
    assert "pending.update(&key, g);" in c.c_text
    assert "int tetra_ret_0(struct pt_regs *ctx)" in c.c_text
    assert "g->ival[1] = (__s64)(tetra_syscall_arg(ctx, 1));" in c.c_text  # the pointer, kept for return
    assert "tetra_put_buf(g, 1, (const void *)(g->ival[1]), (__s64)(ev->ret), 1);" in c.c_text
    assert "(tetra_ret(g) > 0LL)" in c.c_text


def test_pids_and_lineage() -> None:
    c = compiled(OPEN + """    selectors:
    - matchPIDs:
      - operator: NotIn
        followForks: true
        values: [1, 42]
      matchBinaries:
      - operator: In
        followChildren: true
        values: ["/usr/bin/bash"]
""")
    assert "!tetra_lineage_pid_in(1, 0)" in c.c_text
    assert "tetra_lineage_binary_match(g, 2, 0)" in c.c_text
    pids = sorted(e.data for e in c.map_entries if e.map == "pid_set")
    assert pids == [(1).to_bytes(4, "little"), (42).to_bytes(4, "little")]


def test_actions() -> None:
    c = compiled(OPEN + """    selectors:
    - matchActions:
      - action: Sigkill
    - matchActions:
      - action: Signal
        argSig: 10
      - action: Post
        rateLimit: "2m"
        rateLimitScope: "process"
        kernelStackTrace: true
""")
    assert "tetra_signal(g, TETRA_ACTION_SIGKILL, 9);" in c.c_text
    assert "tetra_signal(g, TETRA_ACTION_SIGNAL, 10);" in c.c_text
    assert "tetra_rate_limited(g, 0, 120000000000ULL, 1)" in c.c_text
    assert "stacks.get_stackid(ctx, 0)" in c.c_text


def test_fentry_and_lsm_mechanisms() -> None:
    c = compiled("""  kprobes:
  - call: "security_bprm_check"
    syscall: false
    args:
    - index: 0
      type: "linux_binprm"
  lsmhooks:
  - hook: "file_open"
    args:
    - index: 0
      type: "file"
""", FENTRY_LSM)
    assert [h.mechanism for h in c.hooks] == [Mechanism.FENTRY, Mechanism.LSM]
    assert "KFUNC_PROBE(security_bprm_check, __u64 a0)" in c.c_text
    assert "LSM_PROBE(file_open, __u64 a0)" in c.c_text


@pytest.mark.parametrize("spec,message", [
    ("""  kprobes:
  - call: "security_file_open"
    syscall: false
""", "kernel function security_file_open needs kprobes or fentry, and this kernel has neither: no kprobe_events"),
    ("""  lsmhooks:
  - hook: "file_open"
""", "LSM hook file_open needs BPF LSM: refused"),
])
def test_missing_mechanisms_are_named(spec: str, message: str) -> None:
    assert message in errors(spec, NOTHING)


@pytest.mark.parametrize("extra,message", [
    ("""    - index: 3
      type: "char_iovec"
""", "p.yaml:14:7: spec.kprobes[0].args[2]: argument type 'char_iovec' is not supported by tetra yet"),
    ("""    - index: 3
      type: "skb"
""", "type 'skb' is a kernel pointer; this hook's arguments are user values"),
    ("""    selectors:
    - matchReturnActions:
      - action: Post
""", "matchReturnActions is not supported by tetra yet"),
    ("""    selectors:
    - matchActions:
      - action: Override
        argError: -1
""", "Override on __x64_sys_openat needs a kprobe with bpf_override_return or a BPF LSM hook"),
])
def test_unsupported_features_are_refused_with_location(extra: str, message: str) -> None:
    assert message in errors(OPEN + extra)


def test_all_problems_are_reported_together() -> None:
    text = errors("""  kprobes:
  - call: "security_file_open"
    syscall: false
  lsmhooks:
  - hook: "file_open"
""", NOTHING)
    assert "security_file_open" in text and "file_open needs BPF LSM" in text


@pytest.mark.usefixtures("root")  # the tracepoint template: its format is read from tracefs, root's
def test_cli_generate_templates_validate_and_compile(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from tetra.cli.generate_cmd import TEMPLATES
    from tetra.cli.main import _register, cli

    _register()
    runner = CliRunner()
    for name in TEMPLATES:
        generated = runner.invoke(cli, ["tracingpolicy", "generate", name])
        assert generated.exit_code == 0, generated.output
        path = tmp_path / f"{name}.yaml"
        path.write_text(generated.output)
        checked = runner.invoke(cli, ["tracingpolicy", "validate", str(path)])
        assert checked.exit_code == 0 and ": ok (1 policy" in checked.output, checked.output
        built = runner.invoke(cli, ["tracingpolicy", "compile", "--kernel", "all", "--emit-c", str(path)])
        assert built.exit_code == 0, built.output
        assert '#include "generic/generic.h"' in built.output


def test_compile_as_a_user_says_tracefs_is_roots(nobody: int) -> None:
    import tetra.cli

    template = Path(tetra.cli.__file__).parent / "templates" / "tracepoint.yaml"
    done = subprocess.run([sys.executable, "-m", "tetra", "tracingpolicy", "compile", "--kernel", "all",
                           str(template)], capture_output=True, user=nobody, timeout=60)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        f"tetra: {template}:10:5: spec.tracepoints[0]: cannot read /sys/kernel/tracing: tracepoint formats are "
        "root's (run as root)"]


def test_return_copy_adds_the_return_probe_as_tetragon_does() -> None:
    c = compiled("""  kprobes:
  - call: "sys_read"
    syscall: true
    args:
    - index: 1
      type: "char_buf"
      returnCopy: true
""")
    assert c.hooks[0].return_attach == "__x64_sys_read"


def test_integer_operators_take_at_most_16_values() -> None:
    values = ", ".join(str(i) for i in range(17))
    assert "integer operators compare at most 16" in errors(OPEN + f"""    selectors:
    - matchArgs:
      - index: 2
        operator: "Equal"
        values: [{values}]
""")


def test_go_octal_values_as_tetragon_reads_them() -> None:
    c = compiled(OPEN + """    selectors:
    - matchArgs:
      - index: 2
        operator: "Mask"
        values: ["06000", "0x10"]
""")
    assert "& 3072LL" in c.c_text and "& 16LL" in c.c_text


def test_override_on_lsm_and_on_error_injectable_kprobes() -> None:
    support = KernelSupport(kprobe=True, fentry=False, lsm=True, override=True,
                            injectable=frozenset({"__x64_sys_openat"}))
    lsm_and_syscall = """  lsmhooks:
  - hook: "file_open"
    args:
    - index: 0
      type: "file"
    selectors:
    - matchActions:
      - action: Override
        argError: -13
  kprobes:
  - call: "sys_openat"
    syscall: true
    selectors:
    - matchActions:
      - action: Override
        argError: -2
"""
    built = compiled(lsm_and_syscall, support)
    assert "int verdict = tetra_override(g) ? -13 : 0;" in built.c_text
    assert "return verdict;" in built.c_text
    assert "bpf_override_return(ctx, (unsigned long)(-2));" in built.c_text
    not_injectable = lsm_and_syscall.replace("sys_openat", "sys_read")
    assert "__x64_sys_read is not error-injectable" in errors(not_injectable, support)


def test_pid_1_and_the_agent_are_spared_unless_the_policy_says_otherwise() -> None:
    kill = OPEN + "    selectors:\n    - matchActions:\n      - action: Sigkill\n"
    assert "TETRA_ENFORCE_PROTECTED" not in compiled(kill).c_text
    explicit = "  options:\n  - name: enforce-protected-processes\n    value: \"true\"\n" + kill
    assert "#define TETRA_ENFORCE_PROTECTED" in compiled(explicit).c_text


def test_the_agents_own_calls_are_seen_only_when_the_policy_asks() -> None:
    assert "TETRA_OBSERVE_AGENT" not in compiled(OPEN).c_text
    asked = "  options:\n  - name: observe-agent\n    value: \"true\"\n" + OPEN
    assert "#define TETRA_OBSERVE_AGENT" in compiled(asked).c_text
    declined = asked.replace('"true"', '"false"')
    assert "TETRA_OBSERVE_AGENT" not in compiled(declined).c_text
