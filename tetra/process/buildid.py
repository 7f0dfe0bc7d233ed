"""ELF build ids (NT_GNU_BUILD_ID) of mapped files, read from user space, for process_loader.

The files are whoever's: the reader trusts nothing in them and reads little.

* It opens the path the kernel reported without following a symbolic link in
  its last component and without blocking (O_NOFOLLOW | O_NONBLOCK), and reads
  only a regular file whose inode is the one the kernel saw mapped: a path
  swapped for another file since then gives no build id, not a wrong one.
* It reads at most the ELF header, PHNUM_MAX program headers and NOTES_MAX
  bytes of PT_NOTE segments, each with pread at offsets checked against the
  file's size; anything malformed gives no build id.
* Build ids are kept per (path, inode, size, mtime) in a bounded LRU, so a
  library that every process maps is read once.

64-bit and 32-bit ELF files of either byte order are understood.
"""

import os
import stat
import struct
from collections import OrderedDict

ELF_MAGIC = b"\x7fELF"
PT_NOTE = 4
NT_GNU_BUILD_ID = 3
PHNUM_MAX = 128  # program headers looked at
NOTES_MAX = 16384  # bytes of PT_NOTE segments read, in all
BUILD_ID_MAX = 64  # bytes of a build id (sha1 is 20; some linkers use up to 32)
CACHE_SIZE = 4096  # files whose build id is kept

Key = tuple[str, int, int, int]


def _notes_build_id(notes: bytes, order: str) -> bytes | None:
    """The NT_GNU_BUILD_ID descriptor among ELF notes (4-byte aligned name and descriptor)."""
    at = 0
    head = struct.Struct(order + "III")
    while at + head.size <= len(notes):
        namesz, descsz, kind = head.unpack_from(notes, at)
        name_at = at + head.size
        desc_at = name_at + (namesz + 3) // 4 * 4
        end = desc_at + (descsz + 3) // 4 * 4
        if end > len(notes) or desc_at + descsz > len(notes):
            return None
        if kind == NT_GNU_BUILD_ID and notes[name_at:name_at + namesz] == b"GNU\0" and 0 < descsz <= BUILD_ID_MAX:
            return notes[desc_at:desc_at + descsz]
        at = end
    return None


def elf_build_id(fd: int, size: int) -> bytes | None:
    """The build id of the ELF file open at ``fd`` (``size`` bytes), None if it has none or is not ELF."""
    ident = os.pread(fd, 64, 0)
    if len(ident) < 52 or ident[:4] != ELF_MAGIC or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        return None
    wide = ident[4] == 2
    order = "<" if ident[5] == 1 else ">"
    if wide:
        phoff, = struct.unpack_from(order + "Q", ident, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", ident, 54)
        entry = struct.Struct(order + "IIQQQQQQ")  # type, flags, offset, vaddr, paddr, filesz, memsz, align
    else:
        phoff, = struct.unpack_from(order + "I", ident, 28)
        phentsize, phnum = struct.unpack_from(order + "HH", ident, 42)
        entry = struct.Struct(order + "IIIIIIII")  # type, offset, vaddr, paddr, filesz, memsz, flags, align
    phnum = min(phnum, PHNUM_MAX)
    if phentsize < entry.size or phoff + phnum * phentsize > size:
        return None
    table = os.pread(fd, phnum * phentsize, phoff)
    budget = NOTES_MAX
    for i in range(phnum):
        fields = entry.unpack_from(table, i * phentsize)
        kind, offset, filesz = (fields[0], fields[2], fields[5]) if wide else (fields[0], fields[1], fields[4])
        if kind != PT_NOTE or offset + filesz > size or filesz > budget:
            continue
        budget -= filesz
        found = _notes_build_id(os.pread(fd, filesz, offset), order)
        if found is not None:
            return found
    return None


class BuildIds:
    """Build ids of mapped files, read safely (module docstring) and remembered."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._known: OrderedDict[Key, bytes | None] = OrderedDict()
        self.reads = 0  # files opened and parsed
        self.refused = 0  # not read: gone, not a regular file, or not the inode the kernel mapped

    def get(self, path: str, ino: int) -> bytes | None:
        """The build id of ``path`` if it still is inode ``ino``; None if not, or if it has none."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
        try:
            fd = os.open(path, flags)
        except OSError:
            self.refused += 1
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_ino != ino:
                self.refused += 1
                return None
            key = (path, ino, st.st_size, st.st_mtime_ns)
            if key in self._known:
                self._known.move_to_end(key)
                return self._known[key]
            self.reads += 1
            try:
                found = elf_build_id(fd, st.st_size)
            except (OSError, struct.error):
                found = None
            self._known[key] = found
            if len(self._known) > self.size:
                self._known.popitem(last=False)
            return found
        finally:
            os.close(fd)
