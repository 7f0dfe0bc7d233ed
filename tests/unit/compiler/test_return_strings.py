"""returnArg string (and the other pointer types): the text the returned pointer points to, read at
return into the blob after the arguments; matchReturnArgs compares it with the string operators. The
address itself is never reported (tests/e2e/test_uprobes.py runs one for real)."""

import struct

import pytest

from tests.unit.compiler.test_compiler import KPROBES, compiled, errors
from tetra.compiler.kernel import KernelSupport
from tetra.decode.generic import ArgsDecoder
from tetra.errors import DecodeError

D_PATH = """  kprobes:
  - call: "d_path"
    syscall: false
    return: true
    args:
    - index: 0
      type: "path"
    returnArg:
      type: string
    selectors:
    - matchReturnArgs:
      - operator: Prefix
        values: ["/etc/"]
"""


def test_a_returned_string_is_read_into_the_slot_after_the_arguments() -> None:
    c = compiled(D_PATH)
    [hook] = c.hooks
    assert hook.return_ptr is not None and hook.return_arg is not None and hook.return_arg.name == "string"
    ret = c.c_text.split("int tetra_ret_0(struct pt_regs *ctx)")[1]
    # the pointer is read as kernel text; ev->ret becomes where that text's field starts in the blob
    assert ret.index("__u64 returned = (__u64)ev->ret;") < ret.index("ev->ret = g->len - sizeof(struct tetra_generic);") \
        < ret.index("tetra_put_str(g, 1, (const void *)(returned), 0);") < ret.index("tetra_slot_match(g, 1, 1, 1)")
    assert [(e.map, e.data) for e in c.map_entries] == [("str_prefix", b"/etc/")]


def test_a_fexit_program_reads_the_returned_string_after_the_arguments() -> None:
    c = compiled(D_PATH, KernelSupport(kprobe=False, fentry=True, lsm=False))
    body = c.c_text.split("KRETFUNC_PROBE(d_path")[1]
    assert body.index("tetra_put_path(g, 0") < body.index("tetra_put_str(g, 1, (const void *)(returned), 0);") \
        < body.index("tetra_slot_match(g, 1, 1, 1)")


def test_a_uprobe_returns_a_user_string(tmp_path: object) -> None:
    c = compiled("""  uprobes:
  - path: "/bin/sh"
    symbols: ["getenv"]
    return: true
    returnArg:
      type: string
    selectors:
    - matchReturnArgs:
      - operator: NotEqual
        values: ["secret"]
""")
    assert "tetra_put_str(g, 0, (const void *)(returned), 1);" in c.c_text
    assert "!tetra_slot_match(g, 0, 1, 0)" in c.c_text


@pytest.mark.parametrize("change,message", [
    # a syscall's result is a number: reading "text" at it would read whatever the number points to
    (lambda s: s.replace('"d_path"\n    syscall: false', '"sys_getcwd"\n    syscall: true')
     .replace('type: "path"', 'type: "string"'),
     "p.yaml:14:7: spec.kprobes[0].returnArg: returnArg type 'string': this hook returns a number"),
    (lambda s: s.split("    selectors:")[0].replace("type: string", "type: sock"),
     "returnArg type 'sock': tetra reports integer return values and the text a returned pointer points to"),
    (lambda s: s.replace('      type: "path"\n', '      type: "char_buf"\n      returnCopy: true\n'),
     "returnCopy arguments are sized by the return value, which here is a pointer"),
    (lambda s: s.replace('    - index: 0\n      type: "path"\n',
                         "".join(f'    - index: {i}\n      type: "int"\n' for i in range(6))),
     "takes an argument slot of its own, and this hook reads 6 arguments (at most 5 with a returned string)"),
])
def test_refused_returned_pointers_say_why_and_where(change, message) -> None:  # type: ignore[no-untyped-def]
    assert message in errors(change(D_PATH), KPROBES)


def test_a_uprobe_cannot_return_a_kernel_pointer() -> None:
    message = errors("""  uprobes:
  - path: "/bin/sh"
    symbols: ["getenv"]
    return: true
    returnArg:
      type: file
""")
    assert "returnArg type 'file' is a kernel pointer; a uprobe returns a user pointer (use string)" in message


def test_the_returned_text_is_decoded_from_the_offset_the_kernel_sends() -> None:
    [hook] = compiled(D_PATH).hooks
    decoder = ArgsDecoder(hook)
    arg = b"/etc/passwd"
    text = b"/etc/hosts"
    blob = struct.pack("<I", len(arg)) + arg + struct.pack("<I", len(text)) + text
    assert decoder.decode(blob) == [{"path_arg": {"path": "/etc/passwd"}}]
    assert decoder.returned(blob, 4 + len(arg)) == {"string_arg": "/etc/hosts"}
    assert decoder.returned_json(blob, 4 + len(arg)) == b'{"string_arg":"/etc/hosts"}'
    with pytest.raises(DecodeError, match="returned value at offset 99"):
        decoder.returned(blob, 99)
