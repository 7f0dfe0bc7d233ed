"""Decoding exec/clone/exit records built byte for byte as the probes write them."""

import pytest

from tetra.decode import process  # noqa: F401  (registers the decoders)
from tetra.decode.process import CloneRecord, ExecRecord, ExitRecord
from tetra.decode.registry import decode
from tetra.errors import DecodeError
from tetra.wire import layouts
from tetra.wire.constants import ExecFlags, Op


def exec_record(filename: bytes, cwd: bytes, argv: list[bytes], cgroup: bytes = b"",
                flags: int = 0, pid: int = 42) -> bytes:
    args = b"".join(a + b"\0" for a in argv)
    fname = filename + b"\0"
    cg = cgroup + b"\0"
    size = layouts.EXEC.size + len(fname) + len(cwd) + len(args) + len(cg)
    head = layouts.EXEC.codec.pack(Op.EXEC, 0, 0, size, 123456789, pid, pid, 7, 1000, 1000, 4294967295, 99,
                                   len(fname), len(cwd), len(args), len(cg), flags, 0)
    return head + fname + cwd + args + cg


def test_exec_fields_and_argv_split() -> None:
    rec = decode(exec_record(b"/usr/bin/curl", b"/a/b", [b"curl", b"-s", b"https://x"], b"docker-ab.scope"))
    assert isinstance(rec, ExecRecord)
    assert (rec.pid, rec.ppid, rec.uid, rec.auid, rec.cgroup_id) == (42, 7, 1000, 4294967295, 99)
    assert rec.filename == "/usr/bin/curl"
    assert rec.cwd == "/a/b"
    assert rec.argv == ["curl", "-s", "https://x"]
    assert rec.cgroup_name == "docker-ab.scope"
    assert rec.flags == ["execve"]


def test_root_cwd_and_relative_filename() -> None:
    rec = decode(exec_record(b"./run.sh", b"/", [b"./run.sh"]))
    assert rec.cwd == "/"
    assert rec.filename == "/run.sh"
    rec = decode(exec_record(b"bin/tool", b"/home/src", [b"bin/tool"]))
    assert rec.filename == "/home/src/bin/tool"


def test_non_utf8_bytes_are_escaped() -> None:
    rec = decode(exec_record(b"/bin/echo", b"/d\xff", [b"echo", b"\xc3\x28ok", b"caf\xc3\xa9"]))
    assert rec.argv == ["echo", "\\xc3(ok", "café"]
    assert rec.cwd == "/d\\xff"


def test_empty_arguments_are_kept() -> None:
    rec = decode(exec_record(b"/bin/x", b"/", [b"x", b"", b"y", b""]))
    assert rec.argv == ["x", "", "y", ""]


def test_truncation_flags_use_tetragon_names() -> None:
    flags = ExecFlags.TRUNC_ARGS | ExecFlags.CWD_ERROR
    rec = decode(exec_record(b"/bin/x", b"/", [b"x", b"partial"], flags=flags))
    assert rec.flags == ["execve", "truncArgs", "errorCWD"]


def exec_with_env(block: bytes, flags: int = 0, size: int | None = None) -> bytes:
    """An exec record of /bin/x with its environment (ExecFlags.ENV), as process.c writes it."""
    fname, cwd, args, cg = b"/bin/x\0", b"/", b"x\0", b"\0"
    env = layouts.EXEC_ENV.codec.pack(len(block), len(block) if size is None else size)
    flags |= ExecFlags.ENV
    total = layouts.EXEC.size + len(env) + len(fname) + len(cwd) + len(args) + len(cg) + len(block)
    head = layouts.EXEC.codec.pack(Op.EXEC, 0, 0, total, 1, 42, 42, 7, 0, 0, 0, 99,
                                   len(fname), len(cwd), len(args), len(cg), flags, 0)
    return head + env + fname + cwd + args + cg + block


def test_environment_follows_the_cgroup_name() -> None:
    rec = decode(exec_with_env(b"HOME=/root\0A=b=c\0EMPTY=\0"))
    assert rec.env == ["HOME=/root", "A=b=c", "EMPTY="]
    assert rec.argv == ["x"] and rec.flags == ["execve"]
    assert decode(exec_record(b"/bin/x", b"/", [b"x"])).env is None  # flag off: no environment at all


def test_a_variable_cut_by_the_bound_is_left_out() -> None:
    rec = decode(exec_with_env(b"HOME=/root\0TOKEN=abc", ExecFlags.TRUNC_ENV, size=9000))
    assert rec.env == ["HOME=/root"]  # not "TOKEN=abc" as if that were its whole value
    assert rec.flags == ["execve", "truncEnv"]
    assert decode(exec_with_env(b"", ExecFlags.ENV_ERROR)).flags == ["execve", "errorEnv"]


def test_environment_longer_than_the_record_is_an_error() -> None:
    raw = exec_with_env(b"HOME=/root\0")
    with pytest.raises(DecodeError):
        decode(raw[:-3])


def test_clone_and_exit() -> None:
    clone = layouts.CLONE.codec.pack(Op.CLONE, 0, 0, layouts.CLONE.size, 5, 11, 11, 10, 0, 77)
    exit_ = layouts.EXIT.codec.pack(Op.EXIT, 0, 0, layouts.EXIT.size, 6, 11, 12, 9, 0)
    assert decode(clone) == CloneRecord(5, 11, 11, 10, 77)
    assert decode(exit_) == ExitRecord(6, 11, 12, 9)


@pytest.mark.parametrize("raw,message", [
    (b"", "empty record"),
    (b"\x63" + b"\0" * 40, "unknown opcode 99"),
    (bytes([Op.EXIT]) + b"\0" * 10, "exit record of 11 bytes"),
])
def test_bad_records_raise_decode_error(raw: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode(raw)


def test_lengths_beyond_the_record_are_rejected() -> None:
    raw = exec_record(b"/bin/x", b"/", [b"x"])
    with pytest.raises(DecodeError, match="exec record"):
        decode(raw[:-3])
