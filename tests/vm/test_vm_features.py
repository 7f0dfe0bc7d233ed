"""kprobes, fentry, BPF LSM and bpf_override_return, each shown by its effect.

These mechanisms are absent from the CI machines' own kernel, so here the
tests skip (tests/conftest.py says why) and the VM lane (test_lane.py) runs
them on Debian's stock kernel. Each asserts what the program did to or saw of
this process: the exact file name an open passed, the fd it returned, an open
refused with EPERM, an errno forced on a syscall. Loading is not enough.

Compiles are slow under emulation (seconds each), so every program is small,
includes at most <uapi/linux/ptrace.h> (for struct pt_regs) and is built once
per module. Kernel structs are
read at offsets from the running kernel's BTF, as tetra's own probes do.
"""

import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from bcc import BPF

from tetra.kernel.btf import Btf
from tetra.kernel.probes import cflags

pytestmark = pytest.mark.root

NAME_LEN = 128

# Entry and return of do_sys_openat2 (every open(2)/openat(2) path) in this
# process: the entry counts the file name it was given and parks it per
# thread; the return files the result under that name.
OPENAT2_KPROBES = r"""
#include <uapi/linux/ptrace.h>

struct name_t { char path[NAME_LEN]; };
BPF_HASH(opened, struct name_t, u64);
BPF_HASH(returned, struct name_t, s64);
BPF_HASH(entered, u32, struct name_t);

int on_entry(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    struct name_t name = {};
    u32 tid = id;

    if (id >> 32 != TARGET_TGID)
        return 0;
    bpf_probe_read_user_str(name.path, sizeof(name.path), (void *)PT_REGS_PARM2(ctx));
    opened.increment(name);
    entered.update(&tid, &name);
    return 0;
}

int on_return(struct pt_regs *ctx)
{
    u32 tid = bpf_get_current_pid_tgid();
    struct name_t *name = entered.lookup(&tid);
    s64 result = PT_REGS_RC(ctx);

    if (!name)
        return 0;
    returned.update(name, &result);
    entered.delete(&tid);
    return 0;
}
"""

# fentry on the same function: bcc attaches kfunc__ programs as it builds them.
OPENAT2_FENTRY = r"""
struct name_t { char path[NAME_LEN]; };
BPF_HASH(opened, struct name_t, u64);

KFUNC_PROBE(do_sys_openat2, int dfd, const char *filename)
{
    struct name_t name = {};

    if (bpf_get_current_pid_tgid() >> 32 != TARGET_TGID)
        return 0;
    bpf_probe_read_user_str(name.path, sizeof(name.path), filename);
    opened.increment(name);
    return 0;
}
"""

# Refuse to open one inode of one file system, for every process.
FILE_OPEN_LSM = r"""
LSM_PROBE(file_open, struct file *file)
{
    void *inode = NULL, *sb = NULL;
    unsigned long ino = 0;
    u32 dev = 0;

    bpf_probe_read_kernel(&inode, sizeof(inode), (void *)file + OFF_FILE_F_INODE);
    bpf_probe_read_kernel(&ino, sizeof(ino), inode + OFF_INODE_I_INO);
    bpf_probe_read_kernel(&sb, sizeof(sb), inode + OFF_INODE_I_SB);
    bpf_probe_read_kernel(&dev, sizeof(dev), sb + OFF_SUPER_BLOCK_S_DEV);
    // 6.12's verifier checks that an LSM program returns a value in [-4095, 0], and
    // clang would fold a plain branch into -(a && b), a negated scalar it cannot bound.
    // The errno in a register clang cannot see into leaves it a branch between constants.
    int deny = -BLOCK_ERRNO;
    asm volatile("" : "+r"(deny));
    if (ino == BLOCKED_INO && dev == BLOCKED_DEV)
        return deny;
    return 0;
}
"""

# Force an errno on openat(2) of this process when its mode argument is the
# marker: glibc passes the mode only with O_CREAT, and nothing else uses it.
# bcc reads syscall__ arguments from the registers the syscall wrapper got.
OPENAT_OVERRIDE = r"""
#include <uapi/linux/ptrace.h>

int syscall__openat(struct pt_regs *ctx, int dfd, const char *filename, int flags, int mode)
{
    if (bpf_get_current_pid_tgid() >> 32 != TARGET_TGID || mode != MARKER_MODE)
        return 0;
    bpf_override_return(ctx, -INJECTED_ERRNO);
    return 0;
}
"""

MARKER_MODE = 0o4321
INJECTED_ERRNO = errno.ENOTRECOVERABLE  # an errno no open(2) returns by itself
ERROR_INJECTION_LIST = Path("/sys/kernel/debug/error_injection/list")


def _unique_file(directory: Path, prefix: str) -> Path:
    """A new file whose name no other open in the system uses."""
    path = directory / f"{prefix}-{uuid.uuid4().hex}"
    path.write_text("tetra\n")
    assert len(str(path)) < NAME_LEN, path
    return path


def _times_opened(module: BPF, path: Path) -> int:
    """How often the program counted an open of exactly ``path``."""
    counts = {bytes(key.path): value.value for key, value in module[b"opened"].items()}
    return counts.get(str(path).encode(), 0)


def _built(text: str, **defines: int) -> BPF:
    """``text`` compiled for this process: TARGET_TGID and NAME_LEN defined, with ``defines``."""
    common = {"TARGET_TGID": os.getpid(), "NAME_LEN": NAME_LEN}
    return BPF(text=text.encode(), cflags=cflags(common | defines))


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this module's files live (the guest's /tmp is a tmpfs of its own)."""
    return tmp_path_factory.mktemp("vm-features")


@pytest.fixture(scope="module")
def kprobes() -> Iterator[BPF]:
    """OPENAT2_KPROBES attached to the entry and return of do_sys_openat2."""
    module = _built(OPENAT2_KPROBES)
    module.attach_kprobe(event=b"do_sys_openat2", fn_name=b"on_entry")
    module.attach_kretprobe(event=b"do_sys_openat2", fn_name=b"on_return")
    yield module
    module.cleanup()


@pytest.mark.kprobe
def test_kprobe_sees_the_open_of_a_unique_file(kprobes: BPF, directory: Path) -> None:
    path = _unique_file(directory, "kprobe")
    before = _times_opened(kprobes, path)
    path.read_text()
    assert _times_opened(kprobes, path) == before + 1


@pytest.mark.kprobe
def test_kretprobe_sees_what_the_open_returned(kprobes: BPF, directory: Path) -> None:
    path = _unique_file(directory, "kretprobe")
    missing = directory / f"missing-{uuid.uuid4().hex}"
    fd = os.open(path, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(FileNotFoundError):
        os.open(missing, os.O_RDONLY)
    returned = {bytes(key.path): value.value for key, value in kprobes[b"returned"].items()}
    assert returned[str(path).encode()] == fd
    assert returned[str(missing).encode()] == -errno.ENOENT


@pytest.fixture(scope="module")
def fentry() -> Iterator[BPF]:
    """OPENAT2_FENTRY, attached while bcc builds it."""
    module = _built(OPENAT2_FENTRY)
    yield module
    module.cleanup()


@pytest.mark.fentry
def test_fentry_sees_the_open_of_a_unique_file(fentry: BPF, directory: Path) -> None:
    path = _unique_file(directory, "fentry")
    before = _times_opened(fentry, path)
    path.read_text()
    assert _times_opened(fentry, path) == before + 1


@pytest.fixture(scope="module")
def blocked(directory: Path) -> Iterator[Path]:
    """A file FILE_OPEN_LSM refuses to open while this module's tests run."""
    path = _unique_file(directory, "blocked")
    stat = path.stat()
    btf = Btf.load()
    module = _built(
        FILE_OPEN_LSM,
        BLOCKED_INO=stat.st_ino,
        BLOCKED_DEV=os.major(stat.st_dev) << 20 | os.minor(stat.st_dev),  # the kernel's MKDEV
        BLOCK_ERRNO=errno.EPERM,
        OFF_FILE_F_INODE=btf.offset_of("file.f_inode"),
        OFF_INODE_I_INO=btf.offset_of("inode.i_ino"),
        OFF_INODE_I_SB=btf.offset_of("inode.i_sb"),
        OFF_SUPER_BLOCK_S_DEV=btf.offset_of("super_block.s_dev"),
    )
    yield path
    module.cleanup()


@pytest.mark.lsm
def test_lsm_refuses_one_inode_and_no_other(blocked: Path) -> None:
    with pytest.raises(PermissionError) as refused:
        blocked.read_text()
    assert refused.value.errno == errno.EPERM
    sibling = _unique_file(blocked.parent, "allowed")
    assert sibling.read_text() == "tetra\n"


@pytest.fixture(scope="module")
def overridden(directory: Path) -> Iterator[Path]:
    """OPENAT_OVERRIDE on the openat syscall function, which must be error-injectable."""
    module = _built(OPENAT_OVERRIDE, MARKER_MODE=MARKER_MODE, INJECTED_ERRNO=INJECTED_ERRNO)
    function = module.get_syscall_fnname(b"openat").decode()
    injectable = {line.split()[0] for line in ERROR_INJECTION_LIST.read_text().splitlines()}
    assert function in injectable, f"{function} is not in {ERROR_INJECTION_LIST}"
    module.attach_kprobe(event=function.encode(), fn_name=b"syscall__openat")
    yield _unique_file(directory, "overridden")
    module.cleanup()


@pytest.mark.override_return
def test_override_return_forces_the_errno_on_marked_opens_only(overridden: Path) -> None:
    with pytest.raises(OSError) as forced:
        os.open(overridden, os.O_RDONLY | os.O_CREAT, MARKER_MODE)
    assert forced.value.errno == INJECTED_ERRNO
    os.close(os.open(overridden, os.O_RDONLY))
