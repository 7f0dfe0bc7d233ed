"""The policy compiler against the real verifier, and hostile values as data.

- Programs generated for the kprobe mechanism pass this kernel's verifier even
  though kprobes cannot attach here (attaching is the VM lane's job).
- Hostile strings (quotes, backslashes, comment ends, preprocessor lines) in
  policy values never appear in the generated C, and the loaded program
  matches a file whose name holds them, byte for byte.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tetra.compiler.kernel import KernelSupport
from tetra.compiler.plan import Mechanism
from tetra.compiler.program import compile_policy
from tetra.kernel.btf import Btf
from tetra.kernel.offsets import resolve_offsets
from tetra.policy.loader import load_policies_text
from tetra.kernel.probes import cflags, expand_includes
from tests.e2e.harness import RunningAgent

pytestmark = pytest.mark.usefixtures("root")

KPROBE_ONLY = KernelSupport(kprobe=True, fentry=False, lsm=False)
HOSTILE = ['we"ird', "back\\slash", "end*/comment", "#include <evil.h>", "tab\there", "semi;colon{}"]

KERNEL_FUNCTION_POLICY = """
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: file-permission
spec:
  kprobes:
  - call: "security_file_permission"
    syscall: false
    return: true
    args:
    - index: 0
      type: "file"
    - index: 1
      type: "int"
    returnArg:
      index: 0
      type: "int"
    selectors:
    - matchArgs:
      - index: 0
        operator: "Prefix"
        values: ["/etc/"]
      - index: 1
        operator: "Equal"
        values: ["4"]
      matchBinaries:
      - operator: "NotIn"
        values: ["/usr/bin/ls"]
      matchActions:
      - action: Post
        kernelStackTrace: true
  - call: "sys_write"
    syscall: true
    args:
    - index: 0
      type: "fd"
    - index: 1
      type: "char_buf"
      sizeArgIndex: 3
    - index: 2
      type: "size_t"
    selectors:
    - matchPIDs:
      - operator: NotIn
        followForks: true
        isNamespacePID: true
        values: [1]
      matchBinaries:
      - operator: In
        followChildren: true
        values: ["/usr/bin/bash"]
  - call: "security_socket_connect"
    syscall: false
    args:
    - index: 0
      type: "socket"
    - index: 1
      type: "sockaddr"
    selectors:
    - matchArgs:
      - index: 0
        operator: "NotDAddr"
        values: ["127.0.0.0/8", "::1/128"]
      - index: 0
        operator: "DPort"
        values: ["1:1023"]
  - call: "ip_output"
    syscall: false
    args:
    - index: 2
      type: "skb"
    selectors:
    - matchArgs:
      - index: 2
        operator: "Protocol"
        values: ["IPPROTO_UDP"]
  - call: "commit_creds"
    syscall: false
    args:
    - index: 0
      type: "cred"
  - call: "security_inode_unlink"
    syscall: false
    args:
    - index: 1
      type: "dentry"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Postfix"
        values: [".log"]
"""


@pytest.fixture(scope="module")
def btf() -> Btf:
    return Btf.load()


@pytest.fixture(scope="module")
def process_module(root: None, btf: Btf) -> Iterator[object]:
    """Policy modules share the process sensor's maps: it must be loaded first."""
    from tetra.sensors.process import ProcessSensor

    sensor = ProcessSensor(resolve_offsets(btf))
    sensor.load()
    yield sensor
    sensor.close()


def test_kprobe_programs_pass_the_verifier_here(btf: Btf, process_module: object) -> None:
    from bcc import BPF

    compiled = compile_policy(load_policies_text(KERNEL_FUNCTION_POLICY, "kfunc.yaml")[0], 7, KPROBE_ONLY, btf)
    assert {h.mechanism for h in compiled.hooks} == {Mechanism.KPROBE}
    assert len(compiled.hooks) == 6
    assert compiled.hooks[1].attach == "__x64_sys_write"
    module = BPF(text=expand_includes(compiled.c_text).encode(),
                 cflags=cflags({**resolve_offsets(btf), "TETRA_RINGBUF_PAGES": 2048}))
    try:
        for hook in compiled.hooks:
            module.load_func(hook.entry_fn, BPF.KPROBE)  # the verifier's verdict; raises on refusal
            if hook.return_attach:
                module.load_func(hook.return_fn, BPF.KPROBE)
    finally:
        module.cleanup()


RECORD_TYPES_POLICY = """
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: record-types
spec:
  kprobes:
  - call: "bpf_check"
    syscall: false
    args:
    - index: 0
      type: "nop"
    - index: 1
      type: "bpf_attr"
  - call: "security_perf_event_alloc"
    syscall: false
    args:
    - index: 0
      type: "perf_event"
  - call: "security_bpf_map_alloc"
    syscall: false
    args:
    - index: 0
      type: "bpf_map"
  - call: "userns_install"
    syscall: false
    args:
    - index: 1
      type: "user_namespace"
  - call: "free_module"
    syscall: false
    args:
    - index: 0
      type: "module"
  - call: "tty_write"
    syscall: false
    args:
    - index: 0
      type: "kiocb"
    - index: 1
      type: "iov_iter"
  - call: "dev_set_mtu"
    syscall: false
    args:
    - index: 0
      type: "net_device"
    - index: 1
      type: "int"
"""


def test_record_and_struct_argument_types_pass_the_verifier_here(btf: Btf, process_module: object) -> None:
    """bpf_attr, perf_event, bpf_map, user_namespace, module, kiocb, iov_iter, net_device (and a nop) on the kernel
    functions Tetragon's examples hook: the programs the kprobe mechanism would attach."""
    from bcc import BPF

    compiled = compile_policy(load_policies_text(RECORD_TYPES_POLICY, "records.yaml")[0], 8, KPROBE_ONLY, btf)
    assert [len(h.args) for h in compiled.hooks] == [1, 1, 1, 1, 1, 2, 2]  # the nop is not collected
    module = BPF(text=expand_includes(compiled.c_text).encode(),
                 cflags=cflags({**resolve_offsets(btf), "TETRA_RINGBUF_PAGES": 2048}))
    try:
        for hook in compiled.hooks:
            module.load_func(hook.entry_fn, BPF.KPROBE)  # the verifier's verdict; raises on refusal
    finally:
        module.cleanup()


CREDENTIALS_POLICY = """
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: credentials
spec:
  kprobes:
  - call: "commit_creds"
    syscall: false
    args:
    - index: 0
      type: "cred"
    selectors:
    - matchCapabilityChanges:
      - type: Effective
        operator: In
        isNamespaceCapability: true
        values: ["CAP_SYS_ADMIN"]
      matchNamespaceChanges:
      - operator: NotIn
        values: ["Pid"]
  - call: "d_path"
    syscall: false
    return: true
    args:
    - index: 0
      type: "path"
    returnArg:
      type: "string"
    selectors:
    - matchReturnArgs:
      - operator: "Postfix"
        values: ["/shadow"]
"""


def test_cred_arguments_change_filters_and_returned_strings_pass_the_verifier_here(btf: Btf,
                                                                                    process_module: object) -> None:
    """commit_creds with a cred argument and the filters on changes since exec, and a kretprobe whose
    returned string a selector compares: the programs kprobe kernels run (the VM lane attaches them)."""
    from bcc import BPF

    compiled = compile_policy(load_policies_text(CREDENTIALS_POLICY, "creds.yaml")[0], 9, KPROBE_ONLY, btf)
    module = BPF(text=expand_includes(compiled.c_text).encode(),
                 cflags=cflags({**resolve_offsets(btf), "TETRA_RINGBUF_PAGES": 2048}))
    try:
        for hook in compiled.hooks:
            module.load_func(hook.entry_fn, BPF.KPROBE)  # the verifier's verdict; raises on refusal
            if hook.return_attach:
                module.load_func(hook.return_fn, BPF.KPROBE)
    finally:
        module.cleanup()


def test_kernel_functions_are_refused_with_the_reason_without_kprobes(btf: Btf) -> None:
    from tetra.policy.errors import PolicyErrors

    nothing = KernelSupport(kprobe=False, fentry=False, lsm=False,
                            reasons={"kprobe": "no kprobe_events", "fentry": "no tracing programs"})
    with pytest.raises(PolicyErrors) as info:
        compile_policy(load_policies_text(KERNEL_FUNCTION_POLICY, "kfunc.yaml")[0], 1, nothing, btf)
    message = str(info.value)
    assert "kfunc.yaml:" in message
    assert "security_file_permission needs kprobes or fentry" in message
    assert "no kprobe_events" in message and "no tracing programs" in message


def _hostile_policy(directory: Path) -> str:
    values = "\n".join(f"          - {_yaml_quote(str(directory / name))}" for name in HOSTILE)
    return f"""
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: hostile-values
spec:
  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Equal"
        values:
{values}
"""


def _yaml_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t") + '"'


def test_hostile_values_are_data_not_code(tmp_path: Path, btf: Btf, root: None) -> None:
    text = _hostile_policy(tmp_path)
    compiled = compile_policy(load_policies_text(text, "hostile.yaml")[0], 1, KernelSupport.detect(), btf)
    for name in HOSTILE:
        assert name not in compiled.c_text
    assert "evil" not in compiled.c_text and "we\"" not in compiled.c_text
    assert {entry.data.decode() for entry in compiled.map_entries} == {str(tmp_path / n) for n in HOSTILE}

    policy_file = tmp_path / "hostile.yaml"
    policy_file.write_text(text)
    agent = RunningAgent(tmp_path, "--tracing-policy", str(policy_file)).start(120)
    try:
        for name in HOSTILE:
            staged = tmp_path / "staged"
            staged.write_text("x")
            (tmp_path / name).parent.mkdir(exist_ok=True)  # "end*/comment": a comment end across a directory
            staged.rename(tmp_path / name)
            (tmp_path / name).read_text()
        (tmp_path / "innocent").write_text("y")
        agent.wait_for(lambda ev: len([e for e in ev if "process_kprobe" in e]) >= len(HOSTILE))
    finally:
        summary = agent.stop()
    paths = sorted(e["process_kprobe"]["args"][0]["string_arg"] for e in agent.events() if "process_kprobe" in e)
    assert paths == sorted(str(tmp_path / n) for n in HOSTILE)
    assert summary["policies"][0]["state"] == "enabled"
