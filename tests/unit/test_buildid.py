"""Build ids of mapped files for process_loader: read from real files, only from the file the
kernel mapped, and never trusting what a file says about itself."""

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tetra.process.buildid import BuildIds, elf_build_id

LIBZ = Path("/usr/lib/x86_64-linux-gnu/libz.so.1")


def readelf_build_id(path: Path) -> bytes:
    out = subprocess.run(["readelf", "-n", str(path)], check=True, capture_output=True, text=True).stdout
    (line,) = [line for line in out.splitlines() if "Build ID:" in line]
    return bytes.fromhex(line.split(":", 1)[1].strip())


def ino(path: Path) -> int:
    return os.stat(path).st_ino


@pytest.fixture
def libz(tmp_path: Path) -> Path:
    if not LIBZ.exists() or shutil.which("readelf") is None:
        pytest.skip("needs libz.so.1 and readelf")
    copy = tmp_path / "libz.so"
    shutil.copy(LIBZ.resolve(), copy)
    return copy


def test_the_build_id_readelf_shows(libz: Path) -> None:
    ids = BuildIds()
    assert ids.get(str(libz), ino(libz)) == readelf_build_id(libz)
    assert ids.get(str(libz), ino(libz)) == readelf_build_id(libz)
    assert ids.reads == 1  # the second time from the cache


def test_only_the_inode_the_kernel_mapped_is_read(libz: Path, tmp_path: Path) -> None:
    ids = BuildIds()
    link = tmp_path / "link.so"
    link.symlink_to(libz)
    assert ids.get(str(link), ino(libz)) is None  # a symbolic link is not followed
    other = tmp_path / "other.so"
    shutil.copy(libz, other)
    assert ids.get(str(other), ino(libz)) is None  # the path names another file now
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert ids.get(str(fifo), ino(fifo)) is None  # not a regular file, and no wait for a writer
    assert ids.get(str(tmp_path / "gone.so"), 1) is None
    assert (ids.refused, ids.reads) == (4, 0)


def test_a_changed_file_is_read_again(libz: Path) -> None:
    ids = BuildIds()
    assert ids.get(str(libz), ino(libz)) is not None
    with open(libz, "r+b") as f:
        f.truncate(64)  # same inode, another size: no build id any more
    assert ids.get(str(libz), ino(libz)) is None
    assert ids.reads == 2


def _elf(phoff: int, phnum: int, notes: bytes, note_offset: int | None = None, note_size: int | None = None) -> bytes:
    """A little-endian ELF64 header, one PT_NOTE program header, then ``notes``."""
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 32, phoff)
    struct.pack_into("<HH", header, 54, 56, phnum)
    data_at = 64 + 56
    phdr = struct.pack("<IIQQQQQQ", 4, 0, data_at if note_offset is None else note_offset, 0, 0,
                       len(notes) if note_size is None else note_size, 0, 4)
    return bytes(header) + phdr + notes


def _note(kind: int, name: bytes, desc: bytes, descsz: int | None = None) -> bytes:
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name), len(desc) if descsz is None else descsz, kind) + pad(name) + pad(desc)


def _build_id_of(tmp_path: Path, data: bytes) -> bytes | None:
    path = tmp_path / "crafted"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        return elf_build_id(fd, len(data))
    finally:
        os.close(fd)


def test_crafted_files_give_a_build_id_or_none_never_an_error(tmp_path: Path) -> None:
    good = _note(1, b"GNU\0", b"x" * 4) + _note(3, b"GNU\0", bytes(range(20)))
    assert _build_id_of(tmp_path, _elf(64, 1, good)) == bytes(range(20))
    assert _build_id_of(tmp_path, _elf(64, 1, _note(3, b"XEN\0", b"abcd"))) is None  # another owner's note
    assert _build_id_of(tmp_path, _elf(64, 60000, good)) is None  # program headers past the end
    assert _build_id_of(tmp_path, _elf(1 << 40, 1, good)) is None
    assert _build_id_of(tmp_path, _elf(64, 1, good, note_offset=1 << 40)) is None  # a note segment outside
    assert _build_id_of(tmp_path, _elf(64, 1, good, note_size=1 << 30)) is None
    assert _build_id_of(tmp_path, _elf(64, 1, _note(3, b"GNU\0", b"ab", descsz=1 << 31))) is None  # lying sizes
    assert _build_id_of(tmp_path, _elf(64, 1, _note(3, b"GNU\0", b"x" * 200))) is None  # longer than any build id
    assert _build_id_of(tmp_path, b"#!/bin/sh\n") is None
    assert _build_id_of(tmp_path, b"") is None
