"""Run one command as root on Debian's stock kernel under QEMU: the VM test lane.

Why a VM: the CI machines' own kernel lacks kprobes, fentry and BPF LSM, and
Debian's stock kernel has them. Why no disk image: the guest borrows the host.
Its root file system is the host's, shared read-only over virtio-9p, so it runs
the host's python, bcc, virtualenv and the kernel's own headers; the work
directory (the repo) is shared read-write at the same path, so the command
runs as it would on the host, with the same cwd. Without usable KVM (the
host's is a PVM variant that cannot run a stock kernel) QEMU emulates the CPU
(TCG): a boot takes about 3 s, and compiles inside are several times slower.

::

    find_guest_kernel()  /boot/vmlinuz-R, /lib/modules/R with build/   ┐ absent: VmUnavailable,
      (newest, or of a series: "6.1", "6.12")                         │
    find_tools()         qemu-system-x86_64, static busybox, modprobe  ┘ naming what to install
        │
        ├─ boot_image()      the XZ payload of vmlinuz as an ELF vmlinux: QEMU boots it
        │                    directly (PVH), skipping ~4 s of emulated decompression
        ├─ base_initramfs()  busybox, the 9p/virtio modules and INIT, as newc cpio
        │   (both cached in CACHE, keyed by what they are made of; this file included)
        └─ per attempt: a second cpio appended, holding the command, its cwd,
           the work directory and a nonce that marks the lines INIT prints
              │
    run()  QEMU's serial console, line by line ──▶ echo (everything but markers)
              │   TETRA_VM_BOOTED <nonce>         the command starts
              │   TETRA_VM_EXIT <nonce> status=N  its exit status: run() returns it
              └─ no exit line (boot failure, panic, or a hang past `timeout`):
                 boot once more, then VmFailed

As a command: ``python -m tests.vm.runner [--timeout S] [--memory 512M] -- COMMAND...``
exits with the command's status, 125 when the VM cannot be started here
(missing packages) and 124 when two attempts gave no exit status.
"""

import argparse
import hashlib
import lzma
import os
import queue
import re
import secrets
import shlex
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import NamedTemporaryFile
from typing import IO

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".vm-cache"
INSTALL_HINT = "install qemu-system-x86 linux-image-amd64 busybox-static, or run scripts/setup.sh"
QEMU = "qemu-system-x86_64"
BUSYBOX = Path("/bin/busybox")
MODULES = ("virtio_pci", "9pnet_virtio", "9p")  # what mounting a 9p share over virtio-pci takes
# panic=-1 reboots at once and -no-reboot turns that into QEMU exiting: a crash
# ends the attempt instead of hanging it. HPET as the clock made TCG guests
# ~1.7x slower than the TSC (VM.md). The bpf LSM is in Debian's CONFIG_LSM
# default list, so BPF LSM needs no lsm= here.
KERNEL_ARGS = "console=ttyS0 quiet loglevel=1 panic=-1 clocksource=tsc tsc=reliable"
BOOT_TIMEOUT = 90.0  # a boot takes ~3 s; past this it hung, and waiting for `timeout` only wastes it
EXIT_UNAVAILABLE = 125
EXIT_NO_STATUS = 124
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# PID 1 of the guest. /tetra-vm.env (WORK, NONCE) and /tetra-vm.sh (the command)
# come from the per-attempt archive. Every step that fails says so and powers
# off, so a broken boot ends in seconds rather than at the timeout. There is no
# network device; loopback is up (tests connect to 127.0.0.1). The exit line
# comes after sync: the runner stops QEMU as soon as it reads that line, and the
# guest waits before powering off, so that the line leaves the serial port whole
# (a CI run once got QEMU's end without it).
INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /tetra-vm.env
fail() { echo "TETRA_VM_BOOT_FAILED $NONCE $*"; sleep 5; poweroff -f; }
for module in /modules/*.ko; do insmod "$module" || fail "insmod $module"; done
ip link set lo up || fail "bringing up the loopback interface"
R=/newroot
share=trans=virtio,version=9p2000.L,msize=512000,cache=loose
mount -t 9p -o "$share,ro" hostroot $R || fail "mounting the host root over 9p"
need() { mount -t "$1" "$1" "$R$2" || fail "mounting $1 on $2"; }
need proc /proc
need sysfs /sys
need devtmpfs /dev
mkdir -p $R/dev/pts $R/dev/shm
need devpts /dev/pts
for dir in /dev/shm /tmp /run /var/tmp /root; do need tmpfs $dir; done
need debugfs /sys/kernel/debug
need tracefs /sys/kernel/tracing
need securityfs /sys/kernel/security
need bpf /sys/fs/bpf
need cgroup2 /sys/fs/cgroup
mkdir -p "$R$WORK"
mount -t 9p -o "$share" work "$R$WORK" || fail "mounting the work directory $WORK"
cp /tetra-vm.sh $R/run/tetra-vm.sh
echo "TETRA_VM_BOOTED $NONCE uptime=$(cut -d' ' -f1 /proc/uptime)"
chroot $R /bin/sh /run/tetra-vm.sh </dev/null
status=$?
sync
echo "TETRA_VM_EXIT $NONCE status=$status"
sleep 5  # the console's last bytes still in the UART when poweroff -f stops the machine are lost
poweroff -f
"""

_MARKER = re.compile(r"TETRA_VM_(BOOTED|EXIT|BOOT_FAILED) (\w+)(?: (.*))?")
_EXIT_STATUS = re.compile(r"status=(\d+)")
_XZ_MAGIC = b"\xfd7zXZ\x00"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ELF_MAGIC = b"\x7fELF"
_PT_INTERP = 3


class VmError(Exception):
    """The VM could not run the command; the message says why."""


class VmUnavailable(VmError):
    """Something the VM needs is not installed on this machine."""


class VmFailed(VmError):
    """Both attempts ended without the command's exit status (boot failure or hang)."""


@dataclass(frozen=True)
class GuestKernel:
    """Debian's stock kernel: the image to boot and its modules (with build/ headers for bcc)."""

    release: str
    image: Path
    modules: Path


@dataclass(frozen=True)
class Tools:
    """Host programs the VM is built and run with."""

    qemu: str
    busybox: Path
    modprobe: str


@dataclass(frozen=True)
class VmResult:
    """How a run ended: the command's exit status and what it cost."""

    status: int
    attempts: int
    boot_seconds: float
    seconds: float


@dataclass(frozen=True)
class _Attempt:
    """One boot: the exit status and boot time, or (status None) why there was no status."""

    status: int | None
    boot_seconds: float = 0.0
    failure: str = ""


Echo = Callable[[str], None]


# --- what the host must have --------------------------------------------------


def _version_key(release: str) -> list[int | str]:
    """Sort key ordering 6.1.0-9 before 6.1.0-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", release)]


def find_guest_kernels() -> list[GuestKernel]:
    """Every /boot/vmlinuz-* with its modules, oldest first; VmUnavailable when there is none.

    A release without its headers is left out: inside the guest ``uname -r`` is
    that release, and bcc compiles against /lib/modules/<release>/build of the
    shared root, so the guest could not compile a probe.
    """
    images = sorted(Path("/boot").glob("vmlinuz-*"), key=lambda p: _version_key(p.name))
    if not images:
        raise VmUnavailable(f"no kernel image /boot/vmlinuz-*: {INSTALL_HINT}")
    kernels = []
    for image in images:
        release = image.name.removeprefix("vmlinuz-")
        modules = Path("/lib/modules", release)
        if (modules / "modules.dep").exists() and (modules / "build" / "include").is_dir():
            kernels.append(GuestKernel(release, image, modules))
    if not kernels:
        raise VmUnavailable(
            f"no kernel image in /boot has its modules and headers in /lib/modules (bcc needs them in the "
            f"guest): {INSTALL_HINT}"
        )
    return kernels


def find_guest_kernel(series: str | None = None) -> GuestKernel:
    """The newest usable kernel, or the newest of one series ("6.1" takes 6.1.0-N, not 6.12).

    VmUnavailable names the package when the series asked for is not installed.
    """
    kernels = find_guest_kernels()
    if series is not None:
        kernels = [k for k in kernels if re.match(rf"{re.escape(series)}[.-]", k.release)]
        if not kernels:
            raise VmUnavailable(
                f"no guest kernel of series {series} with modules and headers: install "
                f"linux-image-{series}-amd64 and linux-headers-{series}-amd64 (Debian names the 6.1 "
                "series linux-image-amd64), or run scripts/setup.sh"
            )
    return kernels[-1]


def _is_static(binary: Path) -> bool:
    """Whether an x86-64 ELF has no program interpreter, so it runs in an empty initramfs."""
    data = binary.read_bytes()
    if data[:4] != _ELF_MAGIC:
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    types = (struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum))
    return _PT_INTERP not in types


def find_tools() -> Tools:
    """QEMU, a static busybox and modprobe; VmUnavailable names the first one absent."""
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise VmUnavailable(f"{QEMU} not found: {INSTALL_HINT}")
    if not BUSYBOX.exists() or not _is_static(BUSYBOX):
        raise VmUnavailable(f"no static {BUSYBOX} (busybox-static): {INSTALL_HINT}")
    modprobe = shutil.which("modprobe") or shutil.which("/usr/sbin/modprobe")
    if modprobe is None:
        raise VmUnavailable(f"modprobe not found (kmod): {INSTALL_HINT}")
    return Tools(qemu, BUSYBOX, modprobe)


# --- what the VM boots (cached) -----------------------------------------------


def _stamp(path: Path) -> tuple[str, int, int]:
    """What identifies a file's version cheaply: path, size and mtime."""
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _cached(cache: Path, kind: str, key: str, build: Callable[[], bytes]) -> Path:
    """``cache/<kind>-<key>``, built when absent; older files of the same kind are removed.

    Written to a temporary name and renamed, so a concurrent run never reads half a file.
    """
    target = cache / f"{kind}-{key}"
    if target.exists():
        return target
    data = build()
    cache.mkdir(parents=True, exist_ok=True)
    with NamedTemporaryFile(dir=cache, prefix=f".{kind}-", delete=False) as partial:
        partial.write(data)
    os.replace(partial.name, target)
    for stale in cache.glob(f"{kind}-*"):
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


def _zstd_payload(data: bytes) -> bytes:
    """The zstd-compressed kernel of a bzImage, decompressed by the zstd tool (Python 3.11 has no zstd).

    The setup header says where the payload is (payload_offset, payload_length at
    0x248, counted from the protected-mode code after the setup sectors); the
    build appends the uncompressed size as 4 bytes, which is not part of the frame.
    """
    setup_sects = data[0x1F1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    tool = shutil.which("zstd")
    if tool is None:
        raise VmUnavailable("this kernel is zstd-compressed and the zstd tool is missing: install zstd, "
                            "or run scripts/setup.sh")
    out = subprocess.run([tool, "-dcq"], input=data[start:start + length - 4], capture_output=True, check=False)
    return out.stdout if out.returncode == 0 else b""


def boot_image(kernel: GuestKernel, cache: Path = CACHE) -> Path:
    """The kernel as QEMU boots it fastest: the uncompressed ELF inside the bzImage.

    Debian compresses 6.1 with XZ (the first XZ stream in the bzImage is the
    kernel, what follows it is left undecoded) and 6.12 with zstd.
    """

    def extract() -> bytes:
        data = kernel.image.read_bytes()
        start = data.find(_XZ_MAGIC)
        if start >= 0:
            vmlinux = lzma.LZMADecompressor().decompress(data[start:])
        else:
            vmlinux = _zstd_payload(data) if _ZSTD_MAGIC in data else b""
        if vmlinux[:4] != _ELF_MAGIC:
            raise VmUnavailable(f"{kernel.image} holds no XZ- or zstd-compressed ELF kernel: {INSTALL_HINT}")
        return vmlinux

    return _cached(cache, f"vmlinux-{kernel.release}", _fingerprint(_stamp(kernel.image)), extract)


def _module_files(kernel: GuestKernel, tools: Tools) -> list[Path]:
    """MODULES and their dependencies as files, in an order insmod can load them."""
    shown = subprocess.run(
        [tools.modprobe, "-S", kernel.release, "--show-depends", "-a", *MODULES],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if shown.returncode != 0:
        raise VmUnavailable(f"modprobe cannot resolve {', '.join(MODULES)}: {shown.stderr.strip()}")
    paths = [line.split()[1] for line in shown.stdout.splitlines() if line.startswith("insmod ")]
    return [Path(path) for path in dict.fromkeys(paths)]


def _cpio(entries: Iterable[tuple[str, int, bytes]]) -> bytes:
    """A newc archive, the format the kernel unpacks as its initramfs, of (name, mode, data).

    Written here rather than by cpio(1) so the per-attempt archive needs no
    temporary tree; mtimes are 0, so the same entries give the same bytes.
    """
    out = bytearray()
    for number, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        encoded = name.encode() + b"\0"
        fields = (number, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        out += b"070701" + b"".join(b"%08X" % field for field in fields) + encoded
        out += bytes(-len(out) % 4) + data
        out += bytes(-len(out) % 4)
    return bytes(out)


_DIR = 0o040755
_EXECUTABLE = 0o100755
_FILE = 0o100644


def _module_bytes(module: Path) -> bytes:
    """A module as busybox's insmod takes it: Debian's 6.12 ships them XZ-compressed (.ko.xz)."""
    data = module.read_bytes()
    return lzma.decompress(data) if module.name.endswith(".xz") else data


def base_initramfs(kernel: GuestKernel, tools: Tools, cache: Path = CACHE) -> Path:
    """Busybox, the 9p/virtio modules of the guest kernel and INIT, cached per kernel and runner."""
    modules = _module_files(kernel, tools)
    key = _fingerprint(
        Path(__file__).read_bytes(), _stamp(tools.busybox), *(_stamp(module) for module in modules)
    )

    def build() -> bytes:
        entries = [(name, _DIR, b"") for name in ("bin", "dev", "proc", "sys", "newroot", "modules")]
        entries.append(("bin/busybox", _EXECUTABLE, tools.busybox.read_bytes()))
        entries.append(("init", _EXECUTABLE, INIT.encode()))
        entries += [
            (f"modules/{index:02d}-{module.name.removesuffix('.xz')}", _FILE, _module_bytes(module))
            for index, module in enumerate(modules)
        ]
        return _cpio(entries)

    return _cached(cache, f"initramfs-{kernel.release}", key, build)


def command_script(command: Sequence[str], cwd: Path) -> str:
    """The shell script the guest runs: root's environment, the caller's cwd, then the command."""
    return (
        f"cd {shlex.quote(str(cwd))} || exit\n"
        f"export HOME=/root PATH={GUEST_PATH} LANG=C.UTF-8 TERM=dumb\n"
        f"exec {shlex.join(command)}\n"
    )


@contextmanager
def _initrd(base: Path, command: Sequence[str], cwd: Path, workdir: Path, nonce: str) -> Iterator[Path]:
    """The cached base archive with this attempt's archive appended, as a temporary file.

    The kernel unpacks concatenated archives in order, so nothing of the
    attempt ever lands in the cache or the work directory.
    """
    env = f"WORK={shlex.quote(str(workdir))}\nNONCE={nonce}\n"
    attempt = _cpio(
        [
            ("tetra-vm.env", _FILE, env.encode()),
            ("tetra-vm.sh", _FILE, command_script(command, cwd).encode()),
        ]
    )
    with NamedTemporaryFile(prefix="tetra-vm-initrd-") as initrd:
        initrd.write(base.read_bytes() + attempt)
        initrd.flush()
        yield Path(initrd.name)


# --- running it ---------------------------------------------------------------


def _share(tag: str, path: Path, readonly: bool) -> list[str]:
    """QEMU arguments sharing ``path`` over virtio-9p as ``tag``.

    multidevs=remap keeps inode numbers unique across the host's mounts.
    """
    options = f"local,id={tag},path={str(path).replace(',', ',,')},security_model=none,multidevs=remap"
    return [
        "-fsdev", options + (",readonly=on" if readonly else ""),
        "-device", f"virtio-9p-pci,fsdev={tag},mount_tag={tag}",
    ]  # fmt: skip


def qemu_argv(tools: Tools, image: Path, initrd: Path, workdir: Path, memory: str) -> list[str]:
    """The QEMU command line: -M pc (microvm hung in 2 of 20 boots), TCG, serial console only."""
    return [
        tools.qemu, "-M", "pc", "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", memory,
        "-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio", "-monitor", "none",
        "-kernel", str(image), "-initrd", str(initrd), "-append", KERNEL_ARGS,
        *_share("hostroot", Path("/"), readonly=True),
        *_share("work", workdir, readonly=False),
    ]  # fmt: skip


def _pump(stream: IO[bytes], lines: "queue.Queue[str | None]") -> None:
    """Move the console's lines to ``lines``; None marks its end."""
    for raw in stream:
        lines.put(raw.decode(errors="replace").rstrip("\r\n"))
    lines.put(None)


def _attempt(argv: list[str], nonce: str, timeout: float, echo: Echo) -> _Attempt:
    """Boot once, streaming the console to ``echo`` until the exit line, a failure or the deadline."""
    started = time.monotonic()
    booted: float | None = None
    lines: queue.Queue[str | None] = queue.Queue()
    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert qemu.stdout is not None
    threading.Thread(target=_pump, args=(qemu.stdout, lines), daemon=True).start()
    try:
        while True:
            limit = timeout if booted is not None else min(timeout, BOOT_TIMEOUT)
            try:
                line = lines.get(timeout=max(0.0, started + limit - time.monotonic()))
            except queue.Empty:
                stage = "exit status" if booted is not None else "boot"
                return _Attempt(None, failure=f"no {stage} within {limit:.0f} s (hung)")
            if line is None:
                return _Attempt(None, failure=f"QEMU ended (status {qemu.wait()}) before the command did")
            marker = _MARKER.search(line)
            if marker is None or marker[2] != nonce:
                echo(line)
                continue
            if marker.start() > 0:  # output that did not end its last line
                echo(line[: marker.start()])
            if marker[1] == "BOOTED":
                booted = time.monotonic() - started
            elif marker[1] == "BOOT_FAILED":
                return _Attempt(None, failure=f"boot failed: {marker[3]}")
            elif (status := _EXIT_STATUS.fullmatch(marker[3] or "")) is not None:
                return _Attempt(int(status[1]), booted or 0.0)
            else:
                return _Attempt(None, failure=f"unreadable exit line {line!r}")
    finally:
        if qemu.poll() is None:
            qemu.kill()
        qemu.wait()


def _print_line(line: str) -> None:
    print(line, flush=True)


def _note(message: str) -> None:
    print(f"tetra-vm: {message}", file=sys.stderr, flush=True)


def run(
    command: Sequence[str],
    *,
    workdir: Path = REPO,
    cwd: Path | None = None,
    timeout: float = 600.0,
    memory: str = "512M",
    cache: Path = CACHE,
    echo: Echo = _print_line,
    note: Callable[[str], None] = _note,
    kernel_series: str | None = None,
) -> VmResult:
    """Run ``command`` as root in the guest, in ``cwd`` (default: ours), with ``workdir`` writable.

    ``timeout`` bounds each attempt, from QEMU's start to the exit line. An
    attempt without an exit status (boot failure, crash, hang) is retried once:
    TCG boots are reliable but not perfectly so, and one flaky boot should not
    fail a CI run. Raises VmUnavailable before booting when something is not
    installed, VmFailed when both attempts failed. ``kernel_series`` picks the
    guest kernel ("6.1", "6.12"; default the newest installed).
    """
    started = time.monotonic()
    kernel = find_guest_kernel(kernel_series)
    tools = find_tools()
    image = boot_image(kernel, cache)
    base = base_initramfs(kernel, tools, cache)
    workdir = workdir.resolve()
    failures: list[str] = []
    for attempt in (1, 2):
        nonce = secrets.token_hex(8)
        note(f"booting {kernel.release} under QEMU (TCG), attempt {attempt}")
        with _initrd(base, command, cwd or Path.cwd(), workdir, nonce) as initrd:
            outcome = _attempt(qemu_argv(tools, image, initrd, workdir, memory), nonce, timeout, echo)
        if outcome.status is not None:
            elapsed = time.monotonic() - started
            boot = outcome.boot_seconds
            note(f"exit status {outcome.status}; booted in {boot:.1f} s, {elapsed:.1f} s in all")
            return VmResult(outcome.status, attempt, outcome.boot_seconds, elapsed)
        failures.append(f"attempt {attempt}: {outcome.failure}")
        note(failures[-1] + ("; retrying once" if attempt == 1 else ""))
    raise VmFailed("the VM gave no exit status: " + "; ".join(failures))


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: the guest command's exit status, or 125/124 with the reason on stderr."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.vm.runner",
        description="Run COMMAND as root on Debian's stock kernel under QEMU, in this directory.",
        epilog="Exit status: COMMAND's; 125 when the VM cannot start here, 124 when it gave none twice.",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per attempt (default 600)")
    parser.add_argument("--memory", default="512M", help="guest memory (default 512M)")
    parser.add_argument(
        "--workdir", type=Path, default=REPO, help="directory shared read-write (default: the repo)"
    )
    parser.add_argument("--kernel", metavar="SERIES", help='guest kernel series, e.g. 6.1 (default: the newest)')
    parser.add_argument("command", nargs="+", help="the command, after --")
    args = parser.parse_args(argv)
    try:
        return run(args.command, workdir=args.workdir, timeout=args.timeout, memory=args.memory,
                   kernel_series=args.kernel).status
    except VmUnavailable as err:
        _note(str(err))
        return EXIT_UNAVAILABLE
    except VmError as err:
        _note(str(err))
        return EXIT_NO_STATUS


if __name__ == "__main__":
    sys.exit(main())
