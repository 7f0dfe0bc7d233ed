"""Tetragon's actions beyond Post/Sigkill/Override: what tetra does with each, or why it refuses.

tests/e2e/test_kernel_hooks.py shows TrackSock on a live tracepoint: a tracked
socket's later events are reported as the process that tracked it.
"""

import pytest

from tetra.compiler.kernel import KernelSupport
from tetra.compiler.program import CompiledPolicy, compile_policy
from tetra.policy.errors import PolicyErrors
from tetra.policy.loader import load_policies_text

KPROBES = KernelSupport(kprobe=True, fentry=False, lsm=False)


def compiled(spec: str) -> CompiledPolicy:
    text = f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n{spec}"
    return compile_policy(load_policies_text(text, "p.yaml")[0], 3, KPROBES, None)


def errors(spec: str) -> str:
    with pytest.raises(PolicyErrors) as info:
        compiled(spec)
    return str(info.value)


FOLLOW_FD = """  kprobes:
  - call: "fd_install"
    syscall: false
    args:
    - index: 0
      type: int
    - index: 1
      type: "file"
    selectors:
    - matchActions:
      - action: FollowFD
        argFd: 0
        argName: 1
  - call: "sys_close"
    syscall: true
    args:
    - index: 0
      type: "int"
    selectors:
    - matchActions:
      - action: UnfollowFD
        argFd: 0
        argName: 0
  - call: "sys_dup2"
    syscall: true
    args:
    - index: 0
      type: "fd"
    - index: 1
      type: "int"
    selectors:
    - matchActions:
      - action: CopyFD
        argFd: 0
        argName: 1
"""


def test_followfd_and_kin_do_nothing_as_fd_arguments_resolve_without_them() -> None:
    c = compiled(FOLLOW_FD)
    assert len(c.hooks) == 3
    for codes in c.selectors.values():
        [code] = codes
        assert code.actions.post and code.actions.signal is None and code.actions.sock is None
    assert "tetra_put_fd(g, 0" in c.c_text  # sys_dup2's fd argument: its file's path, read in the kernel


@pytest.mark.parametrize("action,arg,value", [("GetUrl", "argUrl: http://ebpf.io/canary", "ebpf.io/canary"),
                                              ("DnsLookup", "argFqdn: canary.ebpf.io", "canary.ebpf.io")])
def test_actions_the_agent_makes_post_their_action_and_keep_the_value_out_of_the_c(action: str, arg: str,
                                                                                   value: str) -> None:
    c = compiled(f"""  kprobes:
  - call: "sys_openat"
    syscall: true
    selectors:
    - matchActions:
      - action: {action}
        {arg}
""")
    [code] = c.selectors[0]
    assert code.actions.post and code.actions.agent and code.actions.action.word == action
    assert f"->action = TETRA_ACTION_{action.upper()};" in c.c_text
    assert "tetra_gen_emit(g);" in c.c_text
    assert value not in c.c_text  # the agent keeps it, found by the record's policy, hook and selector


def test_the_last_action_named_is_the_events_as_in_tetragon() -> None:
    c = compiled("""  kprobes:
  - call: "sys_openat"
    syscall: true
    selectors:
    - matchActions:
      - action: GetUrl
        argUrl: http://ebpf.io
      - action: Sigkill
""")
    [code] = c.selectors[0]
    assert code.actions.action.word == "Sigkill" and code.actions.agent and code.actions.signal == 9
    assert "->action = TETRA_ACTION_GETURL" not in c.c_text


def test_an_action_the_agent_makes_needs_the_event_posted() -> None:
    message = errors("""  kprobes:
  - call: "sys_openat"
    syscall: true
    selectors:
    - matchActions:
      - action: GetUrl
        argUrl: http://ebpf.io
      - action: NoPost
""")
    assert "p.yaml:11:9: spec.kprobes[0].selectors[0].matchActions[0]: " in message
    assert "action GetUrl is made by the agent when the event arrives: the selector cannot also have NoPost" in message


TRACK = """  kprobes:
  - call: "sk_alloc"
    syscall: false
    return: true
    args:
    - index: 1
      type: int
    returnArg:
      type: sock
    returnArgAction: TrackSock
  - call: "__sk_free"
    syscall: false
    args:
    - index: 0
      type: sock
    selectors:
    - matchActions:
      - action: UntrackSock
        argSock: 0
"""


def test_tracksock_as_return_action_and_untracksock_as_action() -> None:
    c = compiled(TRACK)
    alloc, free = c.hooks
    assert alloc.track_return_sock is True and alloc.return_arg is None  # the pointer is not reported
    assert free.track_return_sock is None and c.selectors[free.hook_id][0].actions.sock == (0, False)
    assert "#define TETRA_NEED_SOCKTRACK" in c.c_text
    assert "tetra_track_sock((__u64)ev->ret);" in c.c_text
    assert "tetra_untrack_sock((__u64)g->ival[0]);" in c.c_text


def test_tracksock_needs_a_sock_argument() -> None:
    message = errors("""  kprobes:
  - call: "tcp_close"
    syscall: false
    args:
    - index: 0
      type: "int"
    selectors:
    - matchActions:
      - action: TrackSock
        argSock: 0
""")
    assert "TrackSock needs argSock to name a sock or socket argument" in message


def test_a_returned_struct_is_never_printed_as_a_number() -> None:
    message = errors("""  kprobes:
  - call: "sk_alloc"
    syscall: false
    return: true
    returnArg:
      type: sock
""")
    assert "p.yaml:11:7: spec.kprobes[0].returnArg: returnArg type 'sock': tetra reports integer return values " \
           "and the text a returned pointer points to" in message


OVERRIDE_WITH_RETURN = """  kprobes:
  - call: "security_kernel_module_request"
    syscall: false
    return: true
    args:
    - index: 0
      type: "string"
    returnArg:
      index: 0
      type: "int"
    selectors:
    - matchArgs:
      - index: 0
        operator: "Equal"
        values: ["fs-ext4"]
    - matchArgs:
      - index: 0
        operator: "Prefix"
        values: ["net-"]
      matchActions:
      - action: Override
        argError: -1
"""


def test_override_on_a_hook_with_a_return_probe_acts_at_entry() -> None:
    """Tetragon's modules-nohost and cve-2023-2640 examples: the overridden call never runs nor returns, so
    its selector decides at entry (unless an earlier selector matched); the others wait for the return."""
    support = KernelSupport(kprobe=True, fentry=False, lsm=False, override=True)
    text = f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n{OVERRIDE_WITH_RETURN}"
    c = compile_policy(load_policies_text(text, "p.yaml")[0], 3, support, None)
    entry, ret = c.c_text.split("int tetra_ret_0(struct pt_regs *ctx)")
    assert "if (!g->entry_mask && (" in entry and "bpf_override_return(ctx, (unsigned long)(-1));" in entry
    assert "g->entry_mask |= 1;" in entry and "g->entry_mask |= 2;" not in entry
    assert "bpf_override_return" not in ret and "(g->entry_mask & 2)" not in ret


def test_an_override_selector_cannot_wait_for_the_return_value() -> None:
    support = KernelSupport(kprobe=True, fentry=False, lsm=False, override=True)
    spec = OVERRIDE_WITH_RETURN + """      matchReturnArgs:
      - index: 0
        operator: "Equal"
        values: ["0"]
"""
    text = f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n{spec}"
    with pytest.raises(PolicyErrors) as info:
        compile_policy(load_policies_text(text, "p.yaml")[0], 3, support, None)
    assert "an Override selector acts when the call starts (the call does not run)" in str(info.value)


def test_a_return_probe_on_a_fentry_only_kernel_is_one_fexit_program() -> None:
    fentry_only = KernelSupport(kprobe=False, fentry=True, lsm=False)
    spec = """  kprobes:
  - call: "security_file_permission"
    syscall: false
    return: true
    args:
    - index: 0
      type: "file"
    - index: 1
      type: "char_buf"
      returnCopy: true
    returnArg:
      index: 0
      type: "int"
    selectors:
    - matchReturnArgs:
      - index: 0
        operator: "LT"
        values: ["0"]
"""
    text = f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n{spec}"
    c = compile_policy(load_policies_text(text, "p.yaml")[0], 3, fentry_only, None)
    [hook] = c.hooks
    assert hook.mechanism.value == "fexit" and hook.return_arg is not None
    assert "KRETFUNC_PROBE(security_file_permission, __u64 a0, __u64 a1, long ret)" in c.c_text
    body = c.c_text.split("KRETFUNC_PROBE(security_file_permission")[1]
    assert body.index("ev->ret = (__s64)ret;") < body.index("tetra_put_file(g, 0") \
        < body.index("tetra_put_buf(g, 1, (const void *)(a1), (__s64)(ev->ret), 0);")
    assert "pending" not in c.c_text and "TETRA_NEED_RETURN" not in c.c_text  # no entry state to keep
    assert "tetra_ret(g) < 0LL" in c.c_text
