"""Argument types Tetragon's policies use beyond integers, strings and paths: how they are
planned on this kernel's BTF, what C collects them, and how their bytes read back.

tests/bpf/test_compiler_kernel.py puts the same C in front of the verifier and
tests/e2e/test_kernel_hooks.py reads a net_device from a live raw tracepoint.
"""

import os

import pytest

from tetra.compiler.kernel import KernelSupport
from tetra.compiler.program import CompiledPolicy, compile_policy
from tetra.compiler.records import RECORDS
from tetra.decode.records import record_json
from tetra.kernel.btf import Btf
from tetra.policy.errors import PolicyErrors
from tetra.policy.loader import load_policies_text
from tetra.wire.constants import REC_MAX

KPROBES = KernelSupport(kprobe=True, fentry=False, lsm=False)
FENTRY = KernelSupport(kprobe=False, fentry=True, lsm=False)
VMLINUX = "/sys/kernel/btf/vmlinux"
needs_btf = pytest.mark.skipif(not os.access(VMLINUX, os.R_OK), reason=f"{VMLINUX} is not readable here")


def compiled(spec: str, btf: Btf | None, support: KernelSupport = KPROBES) -> CompiledPolicy:
    text = f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n{spec}"
    return compile_policy(load_policies_text(text, "p.yaml")[0], 3, support, btf)


def one_arg(call: str, index: int, arg_type: str) -> str:
    return f"""  kprobes:
  - call: "{call}"
    syscall: false
    args:
    - index: {index}
      type: "{arg_type}"
"""


@pytest.fixture(scope="module")
def btf() -> Btf:
    return Btf.load()


def test_nop_holds_a_position_and_is_neither_read_nor_reported() -> None:
    spec = """  kprobes:
  - call: "security_bprm_creds_from_file"
    syscall: false
    args:
    - index: 0
      type: "nop"
    - index: 1
      type: "file"
"""
    c = compiled(spec, None, FENTRY)
    [hook] = c.hooks
    assert [(a.spec.index, a.atype.name) for a in hook.args] == [(1, "file")]
    assert "KFUNC_PROBE(security_bprm_creds_from_file, __u64 a0, __u64 a1)" in c.c_text


def test_unsigned_long_is_tetragons_spelling_of_ulong() -> None:
    spec = """  kprobes:
  - call: "sys_clone"
    syscall: true
    args:
    - index: 0
      type: "unsigned long"
"""
    [arg] = compiled(spec, None).hooks[0].args
    assert (arg.atype.name, arg.atype.json_key, arg.atype.unsigned) == ("ulong", "size_arg", True)


@needs_btf
@pytest.mark.parametrize("arg_type,call,index", [
    ("bpf_attr", "bpf_check", 1), ("perf_event", "security_perf_event_alloc", 0),
    ("bpf_map", "security_bpf_map_alloc", 0), ("user_namespace", "userns_install", 1),
    ("module", "free_module", 0)])
def test_record_fields_are_read_at_this_kernels_btf_offsets(btf: Btf, arg_type: str, call: str, index: int) -> None:
    record = RECORDS[arg_type]
    c = compiled(one_arg(call, index, arg_type), btf)
    for field, offset in zip(record.fields, record.offsets(btf)):
        assert offset == btf.offset_of(f"{record.struct}.{field.member}")
        assert f", {offset}, {field.size}" in c.c_text
    assert "tetra_close_field(g, 0, at, n, b ? 0 : TETRA_ARG_ERROR);" in c.c_text


@needs_btf
def test_a_record_whose_struct_this_kernel_lacks_is_refused_with_the_feature(btf: Btf) -> None:
    if btf.has_type("load_info"):
        compiled(one_arg("do_init_module", 0, "load_info"), btf)  # the kernel has modules: it plans
        return
    with pytest.raises(PolicyErrors) as info:
        compiled(one_arg("do_init_module", 0, "load_info"), btf)
    assert "a load_info argument needs struct load_info (CONFIG_MODULES" in str(info.value)


def test_records_need_btf_and_say_so() -> None:
    with pytest.raises(PolicyErrors) as info:
        compiled(one_arg("bpf_check", 1, "bpf_attr"), None)
    assert "a bpf_attr argument needs the kernel's BTF" in str(info.value)


@needs_btf
def test_net_device_is_its_name_and_kiocb_its_files_path(btf: Btf) -> None:
    c = compiled(one_arg("dev_set_mtu", 0, "net_device") + """  - call: "tty_write"
    syscall: false
    args:
    - index: 0
      type: "kiocb"
""", btf)
    assert f"(const char *)(PT_REGS_PARM1(ctx)) + {btf.offset_of('net_device.name')}, 0);" in c.c_text
    assert f"tetra_read_ptr((void *)(PT_REGS_PARM1(ctx)), {btf.offset_of('kiocb.ki_filp')})" in c.c_text
    assert [h.args[0].atype.json_key for h in c.hooks] == ["string_arg", "file_arg"]


def test_every_record_fits_its_room() -> None:
    assert all(record.layout.size <= REC_MAX for record in RECORDS.values())


def _record(arg_type: str, **values: object) -> bytes:
    record = RECORDS[arg_type]
    return record.layout.pack(*(values[f.name] for f in record.fields))


@pytest.mark.parametrize("arg_type,values,expected", [
    ("bpf_attr", {"prog_type": 2, "insn_cnt": 12, "prog_name": b"probe\0junk"},
     {"bpf_attr_arg": {"ProgType": "BPF_PROG_TYPE_KPROBE", "InsnCnt": 12, "ProgName": "probe"}}),
    ("bpf_map", {"map_type": 27, "key_size": 0, "value_size": 0, "max_entries": 4096, "name": b"events"},
     {"bpf_map_arg": {"MapType": "BPF_MAP_TYPE_RINGBUF", "MaxEntries": 4096, "MapName": "events"}}),
    ("perf_event", {"type": 6, "config": 0, "probe_offset": 16, "kprobe_func": b"do_sys_open"},
     {"perf_event_arg": {"KprobeFunc": "do_sys_open", "Type": "6", "ProbeOffset": "16"}}),
    ("user_namespace", {"level": 1, "uid": 1000, "gid": 1000, "inum": 4026532000},
     {"user_ns_arg": {"level": 1, "uid": 1000, "gid": 1000, "ns": {"inum": 4026532000}}}),
    ("module", {"name": b"nf_tables", "taints": (1 << 12) | (1 << 13)},
     {"module_arg": {"name": "nf_tables", "tainted": ["TAINT_OUT_OF_TREE_MODULE", "TAINT_UNSIGNED_MODULE"]}}),
    ("load_info", {"name": b"ext4", "sig_ok": 1}, {"module_arg": {"name": "ext4", "signature_ok": True}}),
])
def test_records_read_back_as_tetragon_renders_them(arg_type: str, values: dict[str, object],
                                                     expected: dict[str, object]) -> None:
    assert record_json(arg_type, _record(arg_type, **values)) == expected


@needs_btf
def test_iov_iter_is_read_by_this_kernels_layout_and_enum(btf: Btf) -> None:
    c = compiled(one_arg("tty_write", 1, "iov_iter"), btf)
    pointer = "__iov" if "__iov" in btf.member_names("iov_iter") else "iov"
    assert (f"tetra_put_iov_iter(g, 0, (void *)(PT_REGS_PARM2(ctx)), {btf.offset_of('iov_iter.iter_type')}, "
            f"{btf.offset_of('iov_iter.count')}, {btf.offset_of('iov_iter.' + pointer)}, "
            f"{btf.enum_value('ITER_UBUF')}, {btf.enum_value('ITER_IOVEC')});") in c.c_text
    assert c.hooks[0].args[0].atype.json_key == "bytes_arg"


@needs_btf
def test_btf_enumerators_by_name(btf: Btf) -> None:
    assert btf.enum_value("BPF_PROG_TYPE_KPROBE") == 2  # UAPI: never renumbered
    with pytest.raises(Exception, match="no enumerator named 'NO_SUCH_ENUMERATOR'"):
        btf.enum_value("NO_SUCH_ENUMERATOR")
