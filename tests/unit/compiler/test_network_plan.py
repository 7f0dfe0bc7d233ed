"""Network hooks planned as cgroup sock_addr programs (tetra/compiler/network.py).

Which hooks go there on which kernel, what they can read, what they refuse;
tests/e2e/test_network_deny.py runs the programs in this kernel.
"""

import pytest

from tetra.compiler.kernel import KernelSupport
from tetra.compiler.network import NetOp
from tetra.compiler.plan import Mechanism
from tetra.compiler.program import CompiledPolicy, compile_policy
from tetra.kernel.mounts import cgroup2_mount
from tetra.policy.errors import PolicyErrors
from tetra.policy.loader import load_policies_text

NOTHING = KernelSupport(kprobe=False, fentry=False, lsm=False, reasons={"kprobe": "no kprobe_events"})
KPROBES_NO_OVERRIDE = KernelSupport(kprobe=True, fentry=False, lsm=False)
EVERYTHING = KernelSupport.everything()
DENY = "Override\n        argError: -1"

CONNECT = """  kprobes:
  - call: security_socket_connect
    syscall: false
    args:
    - index: 0
      type: socket
    - index: 1
      type: sockaddr
    - index: 2
      type: int
    selectors:
    - matchArgs:
      - index: 1
        operator: SAddr
        values: ["10.0.0.0/8"]
      matchActions:
      - action: {action}
"""


def compiled(spec: str, support: KernelSupport) -> CompiledPolicy:
    text = f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n{spec}"
    return compile_policy(load_policies_text(text, "p.yaml")[0], 1, support, None)


def errors(spec: str, support: KernelSupport) -> str:
    with pytest.raises(PolicyErrors) as info:
        compiled(spec, support)
    return str(info.value)


def test_override_of_connect_without_kprobes_becomes_a_cgroup_program() -> None:
    built = compiled(CONNECT.format(action="Override\n        argError: -111"), NOTHING)
    hook = built.hooks[0]
    assert (hook.mechanism, hook.attach, hook.event, hook.function_name) == (
        Mechanism.CGROUP_SOCK_ADDR, "connect", "process_kprobe", "security_socket_connect")
    assert hook.net is not None and hook.net.op is NetOp.CONNECT
    assert hook.cgroup == cgroup2_mount()  # no cgroup-path: every process
    assert [a.spec.type for a in hook.args] == ["socket", "sockaddr"]  # the int is not known to the program
    assert "int verdict = tetra_deny(g, -111);" in built.c_text
    assert "int tetra_hook_0(struct bpf_sock_addr *ctx) { return tetra_net_0(ctx, 0); }" in built.c_text
    assert "int tetra_hook_0_v6(struct bpf_sock_addr *ctx) { return tetra_net_0(ctx, 1); }" in built.c_text
    assert "tetra_put_ctx_sock(g, 0, ctx, v6, 0);" in built.c_text


def test_kprobes_with_override_keep_the_kprobe() -> None:
    assert compiled(CONNECT.format(action=DENY), EVERYTHING).hooks[0].mechanism is Mechanism.KPROBE


def test_kprobes_without_override_use_the_cgroup_program_only_to_enforce() -> None:
    assert compiled(CONNECT.format(action=DENY), KPROBES_NO_OVERRIDE).hooks[0].mechanism \
        is Mechanism.CGROUP_SOCK_ADDR
    assert compiled(CONNECT.format(action="Post"), KPROBES_NO_OVERRIDE).hooks[0].mechanism is Mechanism.KPROBE


def test_observing_a_connect_without_kprobes_or_fentry_still_works() -> None:
    assert compiled(CONNECT.format(action="Post"), NOTHING).hooks[0].mechanism is Mechanism.CGROUP_SOCK_ADDR


@pytest.mark.usefixtures("root")  # Sigkill keeps the raw_syscalls tracepoint: its format is root's
def test_syscalls_move_only_to_enforce() -> None:
    spec = """  kprobes:
  - call: sys_sendto
    syscall: true
    args:
    - index: 0
      type: int
    - index: 4
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 4
        operator: SPort
        values: ["53"]
      matchActions:
      - action: {action}
"""
    hook = compiled(spec.format(action=DENY), NOTHING).hooks[0]
    assert (hook.mechanism, hook.attach, hook.function_name) == (Mechanism.CGROUP_SOCK_ADDR, "sendmsg",
                                                                 "__x64_sys_sendto")
    assert compiled(spec.format(action="Sigkill"), NOTHING).hooks[0].mechanism is Mechanism.TRACEPOINT


def test_lsm_hooks_without_bpf_lsm_bind() -> None:
    spec = """  lsmhooks:
  - hook: socket_bind
    args:
    - index: 1
      type: sockaddr
    selectors:
    - matchActions:
      - action: Override
        argError: -1
"""
    built = compiled(spec, NOTHING)
    hook = built.hooks[0]
    assert (hook.mechanism, hook.attach, hook.event) == (Mechanism.CGROUP_SOCK_ADDR, "bind", "process_lsm")
    assert "int verdict = tetra_deny(g, -1);" in built.c_text  # EPERM


def test_what_a_cgroup_program_cannot_do_is_refused_with_its_location() -> None:
    assert "p.yaml:24:9: spec.kprobes[0].selectors[0].matchActions[1]: security_socket_connect runs here as a " \
           "cgroup connect program, which cannot send signals or record stacks" in \
           errors(CONNECT.format(action=DENY + "\n      - action: Sigkill"), NOTHING)
    assert "argError 5: security_socket_connect runs as a cgroup connect program, whose call can only fail " \
           "with a negative errno" in errors(CONNECT.format(action="Override\n        argError: 5"), NOTHING)
    on_int = CONNECT.replace('operator: SAddr\n        values: ["10.0.0.0/8"]', 'operator: Equal\n        values: ["3"]')
    on_int = on_int.replace("index: 1\n        operator", "index: 2\n        operator")
    assert "argument 2 (int) of security_socket_connect is not known to the cgroup connect program it runs " \
           "as here" in errors(on_int.format(action=DENY), NOTHING)
    with_return = CONNECT.replace("    syscall: false\n", "    syscall: false\n    return: true\n")
    assert "which sees the call before it happens: no return probe" in errors(with_return.format(action=DENY),
                                                                             NOTHING)


@pytest.mark.parametrize("path,message", [
    ("../etc", "cgroup-path must name a cgroup v2 directory"),
    ("/etc", "is not inside the cgroup v2 mount"),
    ("tetra-no-such-cgroup", "no cgroup directory"),
])
def test_cgroup_path_option(path: str, message: str) -> None:
    spec = f"  options:\n  - name: cgroup-path\n    value: \"{path}\"\n" + CONNECT.format(action=DENY)
    assert message in errors(spec, NOTHING)


NOTIFY = """  enforcers:
  - calls: ["sys_write"]
  kprobes:
  - call: sys_write
    syscall: true
    args:
    - index: 0
      type: int
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["77"]
      matchActions:
      - action: NotifyEnforcer
        argError: -1
"""


def test_notify_enforcer_gets_an_fmod_ret_program_on_the_enforcer_calls() -> None:
    built = compiled(NOTIFY, EVERYTHING)
    assert built.enforcers == ("__x64_sys_write",)
    assert "tetra_notify_enforcer(g, -1, 0);" in built.c_text
    assert "KMOD_RET(__x64_sys_write, void *regs, long ret)\n{\n    return tetra_enforce();\n}" in built.c_text


def test_notify_enforcer_says_precisely_why_a_kernel_cannot() -> None:
    debian = KernelSupport(kprobe=True, fentry=True, lsm=True, reasons={
        "fmod_ret": "the kernel has no function error injection list"})
    assert "p.yaml:7:5: spec.enforcers[0]: enforcer call sys_write: NotifyEnforcer makes the call fail through a " \
           "BPF fmod_ret program, which this kernel cannot run: the kernel has no function error injection list; " \
           "here, stop the process with Sigkill" in errors(NOTIFY, debian)
    picky = KernelSupport(kprobe=True, fentry=True, lsm=True, fmod_ret=True, injectable=frozenset({"x"}))
    assert "__x64_sys_write is not error-injectable on this kernel" in errors(NOTIFY, picky)
    assert "NotifyEnforcer needs argError (the enforcer call's error) or argSig" in errors(
        NOTIFY.replace("        argError: -1\n", ""), EVERYTHING)


SECURITY_OPEN = """  kprobes:
  - call: security_file_open
    syscall: false
    args:
    - index: 0
      type: file
    selectors:
    - matchActions:
      - action: Override
        argError: -1
"""
LSM_NO_OVERRIDE = KernelSupport(kprobe=True, fentry=True, lsm=True)


def test_override_on_a_security_function_runs_as_its_lsm_hook() -> None:
    built = compiled(SECURITY_OPEN, LSM_NO_OVERRIDE)
    hook = built.hooks[0]
    assert (hook.mechanism, hook.attach, hook.event, hook.function_name) == (
        Mechanism.LSM, "file_open", "process_kprobe", "security_file_open")
    assert "LSM_PROBE(file_open, __u64 a0)" in built.c_text
    # with BPF LSM, a connect deny is the LSM hook too (every address family), not a cgroup program
    assert compiled(CONNECT.format(action=DENY), LSM_NO_OVERRIDE).hooks[0].mechanism is Mechanism.LSM
    # where bpf_override_return can do it, the kprobe stays
    assert compiled(SECURITY_OPEN, EVERYTHING).hooks[0].mechanism is Mechanism.KPROBE
    with_return = SECURITY_OPEN.replace("    syscall: false\n", "    syscall: false\n    return: true\n")
    assert "Override on security_file_open runs as the LSM hook file_open, which has no return probe" in \
        errors(with_return, LSM_NO_OVERRIDE)
