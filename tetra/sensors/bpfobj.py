"""A BPF module as data: its programs' instructions and its maps' specs, loadable without clang.

bcc compiles C with clang inside the process (about a second per policy) and
has no way to load a compiled object again. What clang produces is plain
data, though: per function, the instructions (with each map reference an
``LD_IMM64`` whose immediate is the map's descriptor, ``src_reg`` =
BPF_PSEUDO_MAP_FD), and per map its type, sizes, flags and the layout of key
and value. ``extract`` reads that from a bcc module right after its compile;
``LoadedObject`` creates the maps again, writes their new descriptors into
the instructions (tables shared with the process sensor get the process
sensor's), and loads the programs with the bpf() system call. The verifier
checks every program as it would bcc's.

Values that change between loads of the same policy (its id, the agent's pid)
are compiled as sentinels and written into the instructions at load
(``Sentinels``): the compiled object is then the same for every load.
"""

import base64
import ctypes
import ctypes.util
import functools
import json
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tetra.errors import SensorError

INSN_SIZE = 8
LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW: two instructions, a 64-bit immediate
PSEUDO_MAP_FD = 1
# Per-CPU hash, array and LRU hash: a value per possible CPU, each 8-byte aligned.
PERCPU_TYPES = frozenset({5, 6, 10})
BPF_MAP_CREATE, BPF_PROG_LOAD = 0, 5
SYS_BPF = 321  # x86_64
LOG_SIZE = 4 * 1024 * 1024
OBJ_NAME_LEN = 16


@dataclass(frozen=True)
class MapSpec:
    """One map of the module as bcc created it; ``key_desc``/``leaf_desc`` are bcc's JSON layouts."""

    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    key_desc: str
    leaf_desc: str


@dataclass(frozen=True)
class ProgramSpec:
    """A function's instructions; ``maps``: (instruction index, map name) of every map reference;
    ``sentinels``: per sentinel name, the indexes of the instructions whose immediate is it."""

    insns: bytes
    maps: tuple[tuple[int, str], ...]
    sentinels: Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class ObjectSpec:
    license: str
    kern_version: int
    maps: tuple[MapSpec, ...]
    programs: Mapping[str, ProgramSpec]
    shared: tuple[str, ...] = ()  # maps owned by another module (the process sensor), given at load

    def to_json(self) -> dict[str, Any]:
        return {
            "license": self.license, "kern_version": self.kern_version, "shared": list(self.shared),
            "maps": [m.__dict__ for m in self.maps],
            "programs": {name: {"insns": base64.b64encode(p.insns).decode(), "maps": [list(r) for r in p.maps],
                                "sentinels": {k: list(v) for k, v in p.sentinels.items()}}
                         for name, p in self.programs.items()},
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "ObjectSpec":
        """Raises ValueError (also for a missing or mistyped field) on anything malformed."""
        try:
            maps = tuple(MapSpec(**{k: (str if k in ("name", "key_desc", "leaf_desc") else int)(v)
                                    for k, v in m.items()}) for m in doc["maps"])
            programs = {str(name): ProgramSpec(base64.b64decode(p["insns"], validate=True),
                                               tuple((int(i), str(n)) for i, n in p["maps"]),
                                               {str(k): tuple(int(i) for i in v) for k, v in p["sentinels"].items()})
                        for name, p in doc["programs"].items()}
            spec = cls(str(doc["license"]), int(doc["kern_version"]), maps, programs,
                       tuple(str(n) for n in doc["shared"]))
        except (KeyError, TypeError, AttributeError, base64.binascii.Error) as err:  # type: ignore[attr-defined]
            raise ValueError(f"malformed object: {err!r}") from err
        spec.check()
        return spec

    def check(self) -> None:
        """Every reference inside the instructions, and to a known map: a damaged file never loads."""
        names = {m.name for m in self.maps} | set(self.shared)
        for fn, prog in self.programs.items():
            count = len(prog.insns) // INSN_SIZE
            if not count or len(prog.insns) % INSN_SIZE:
                raise ValueError(f"program {fn}: {len(prog.insns)} bytes of instructions")
            for index, name in prog.maps:
                if not 0 <= index < count - 1 or name not in names:
                    raise ValueError(f"program {fn}: map reference {name!r} at {index}")
            if any(not 0 <= i < count for sites in prog.sentinels.values() for i in sites):
                raise ValueError(f"program {fn}: sentinel out of range")


@dataclass(frozen=True)
class Sentinels:
    """Constants compiled as placeholders and written into the instructions at load.

    The placeholders are numbers no program computes by chance; a placeholder
    found only inside a larger constant (two fields stored at once) cannot be
    rewritten, and the module is then not made into an object (``extract`` raises).
    """

    values: Mapping[str, int]  # name -> placeholder

    def sites(self, insns: bytes) -> dict[str, tuple[int, ...]]:
        found: dict[str, list[int]] = {name: [] for name in self.values}
        by_value = {v: name for name, v in self.values.items()}
        for index, code, _, imm, next_imm in _walk(insns):
            if code == LD_IMM64 and (next_imm in by_value or (imm in by_value and next_imm != 0)):
                raise SensorError("a load-time constant was merged into a 64-bit constant")
            if imm in by_value:
                found[by_value[imm]].append(index)
        return {name: tuple(sites) for name, sites in found.items()}


def _walk(insns: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(index, opcode, src_reg, imm, imm of the next slot for LD_IMM64 else 0) of each instruction."""
    count = len(insns) // INSN_SIZE
    index = 0
    while index < count:
        code, regs, _, imm = struct.unpack_from("<BBhi", insns, index * INSN_SIZE)
        wide = code == LD_IMM64 and index + 1 < count
        next_imm = struct.unpack_from("<i", insns, (index + 1) * INSN_SIZE + 4)[0] if wide else 0
        yield index, code, regs >> 4, imm, next_imm
        index += 2 if wide else 1


def _lib() -> ctypes.CDLL:
    from bcc.libbcc import lib  # imported here: tetra's unit tests run without bcc

    for fn, restype, argtypes in (
            ("bpf_num_tables", ctypes.c_size_t, [ctypes.c_void_p]),
            ("bpf_table_name", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_size_t]),
            ("bpf_table_fd_id", ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t]),
            ("bpf_table_key_size_id", ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_size_t]),
            ("bpf_table_leaf_size_id", ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_size_t]),
            ("bpf_module_license", ctypes.c_char_p, [ctypes.c_void_p]),
            ("bpf_module_kern_version", ctypes.c_uint, [ctypes.c_void_p])):
        getattr(lib, fn).restype = restype
        getattr(lib, fn).argtypes = argtypes
    return lib


def extract(bpf: Any, shared: frozenset[str], sentinels: Sentinels) -> ObjectSpec:
    """The object of a bcc module just compiled (``BPF(text=...)``), before anything else uses it.

    ``shared``: names of maps another module owns (they are not created at load).
    """
    lib = _lib()
    module = bpf.module
    maps: list[MapSpec] = []
    by_fd: dict[int, str] = {}
    for i in range(lib.bpf_num_tables(module)):
        name = lib.bpf_table_name(module, i).decode()
        fd = lib.bpf_table_fd_id(module, i)
        if fd < 0:
            continue
        by_fd[fd] = name
        if name in shared:
            continue
        maps.append(MapSpec(name, lib.bpf_table_type_id(module, i), lib.bpf_table_key_size_id(module, i),
                            lib.bpf_table_leaf_size_id(module, i), lib.bpf_table_max_entries_id(module, i),
                            lib.bpf_table_flags_id(module, i),
                            (lib.bpf_table_key_desc(module, name.encode()) or b"").decode(),
                            (lib.bpf_table_leaf_desc(module, name.encode()) or b"").decode()))
    programs = {}
    for i in range(lib.bpf_num_functions(module)):
        fn = lib.bpf_function_name(module, i)
        start, size = lib.bpf_function_start(module, fn), lib.bpf_function_size(module, fn)
        insns = ctypes.string_at(start, size)
        refs = []
        for index, code, src, imm, _ in _walk(insns):
            if code == LD_IMM64 and src == PSEUDO_MAP_FD:
                if imm not in by_fd:
                    raise SensorError(f"function {fn.decode()}: a map reference to unknown descriptor {imm}")
                refs.append((index, by_fd[imm]))
        programs[fn.decode()] = ProgramSpec(insns, tuple(refs), sentinels.sites(insns))
    return ObjectSpec(lib.bpf_module_license(module).decode(), lib.bpf_module_kern_version(module), tuple(maps),
                      programs, tuple(sorted(shared & set(by_fd.values()))))


# -- the bpf() system call ------------------------------------------------------------------


class _MapCreate(ctypes.Structure):
    _fields_ = [("map_type", ctypes.c_uint32), ("key_size", ctypes.c_uint32), ("value_size", ctypes.c_uint32),
                ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32), ("inner_map_fd", ctypes.c_uint32),
                ("numa_node", ctypes.c_uint32), ("map_name", ctypes.c_char * OBJ_NAME_LEN)]


class _ProgLoad(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32), ("insns", ctypes.c_uint64),
                ("license", ctypes.c_uint64), ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32), ("prog_flags", ctypes.c_uint32),
                ("prog_name", ctypes.c_char * OBJ_NAME_LEN), ("prog_ifindex", ctypes.c_uint32),
                ("expected_attach_type", ctypes.c_uint32)]


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    ret = _libc.syscall(SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return int(ret)


def _obj_name(name: str) -> bytes:
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)[:OBJ_NAME_LEN - 1].encode()


def create_map(spec: MapSpec) -> int:
    attr = _MapCreate(map_type=spec.type, key_size=spec.key_size, value_size=spec.value_size,
                      max_entries=spec.max_entries, map_flags=spec.flags, map_name=_obj_name(spec.name))
    try:
        return _bpf(BPF_MAP_CREATE, attr)
    except OSError as err:
        raise SensorError(f"cannot create map {spec.name}: {err.strerror}") from err


def load_program(name: str, insns: bytes, prog_type: int, prog_license: str, kern_version: int,
                 attach_type: int = 0) -> int:
    """The program's descriptor; a refusal carries the verifier's log, as bcc's would."""
    buf = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(prog_license.encode())
    attr = _ProgLoad(prog_type=prog_type, insn_cnt=len(insns) // INSN_SIZE, insns=ctypes.addressof(buf),
                     license=ctypes.addressof(lic), kern_version=kern_version, prog_name=_obj_name(name),
                     expected_attach_type=max(attach_type, 0))
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as err:
        log = ctypes.create_string_buffer(LOG_SIZE)
        attr.log_level, attr.log_size, attr.log_buf = 1, LOG_SIZE, ctypes.addressof(log)
        try:
            return _bpf(BPF_PROG_LOAD, attr)  # a refusal that does not repeat: take the program
        except OSError:
            text = log.value.decode(errors="replace").strip()
        raise SensorError(f"cannot load program {name}: {err.strerror}\n{text}") from err


# -- maps from user space ---------------------------------------------------------------------


def decode_type(desc: str) -> type:
    from bcc import BPF

    return BPF._decode_table_type(json.loads(desc))  # type: ignore[no-any-return]


class MapTable:
    """A map by descriptor, with the part of bcc's table interface the sensors use
    (``Key``, ``Leaf``, item set/get/delete, ``keys``, per-CPU ``getvalue``, stack ``walk``)."""

    def __init__(self, spec: MapSpec, fd: int) -> None:
        self.spec = spec
        self.fd = fd
        self.Key = decode_type(spec.key_desc) if spec.key_desc else ctypes.c_uint32
        self.Leaf = decode_type(spec.leaf_desc) if spec.leaf_desc else ctypes.c_uint64
        self._lib = _lib()

    def _value_buffer(self) -> ctypes.Array[ctypes.c_char]:
        size = self.spec.value_size
        if self.spec.type in PERCPU_TYPES:
            size = _round8(size) * _possible_cpus()
        return ctypes.create_string_buffer(size)

    def _lookup(self, key: Any) -> ctypes.Array[ctypes.c_char]:
        value = self._value_buffer()
        if self._lib.bpf_lookup_elem(self.fd, ctypes.byref(key), value) < 0:
            raise KeyError(key)
        return value

    def __getitem__(self, key: Any) -> Any:
        return self.Leaf.from_buffer_copy(self._lookup(key), 0)

    def getvalue(self, key: Any) -> list[Any]:
        """Per-CPU maps: the value of each possible CPU."""
        raw = self._lookup(key)
        step = _round8(self.spec.value_size)
        values = [self.Leaf.from_buffer_copy(raw, cpu * step) for cpu in range(_possible_cpus())]
        if issubclass(self.Leaf, ctypes._SimpleCData):  # numbers as numbers, as bcc gives them
            return [v.value for v in values]
        return values

    def __setitem__(self, key: Any, leaf: Any) -> None:
        if self._lib.bpf_update_elem(self.fd, ctypes.byref(key), ctypes.byref(leaf), 0) < 0:
            err = ctypes.get_errno()
            raise KeyError(f"cannot update map {self.spec.name}: {os.strerror(err)}")

    def __delitem__(self, key: Any) -> None:
        if self._lib.bpf_delete_elem(self.fd, ctypes.byref(key)) < 0:
            raise KeyError(key)

    def keys(self) -> list[Any]:
        out = []
        key, previous = self.Key(), None
        while self._lib.bpf_get_next_key(self.fd, previous, ctypes.byref(key)) == 0:
            out.append(key)
            previous, key = ctypes.byref(key), self.Key()
        return out

    def walk(self, stack_id: int) -> Iterator[int]:
        """A stack trace map's frames, innermost first, as bcc's StackTrace.walk."""
        frames = self._lookup(ctypes.c_uint32(stack_id))
        for (address,) in struct.iter_unpack("<Q", frames.raw):
            if not address:
                return
            yield address


def _round8(size: int) -> int:
    return (size + 7) // 8 * 8


@functools.cache
def _possible_cpus() -> int:
    from bcc.utils import get_possible_cpus

    return len(get_possible_cpus())


@dataclass
class LoadedObject:
    """An ObjectSpec in the kernel: its own maps created, programs loaded when asked for.

    ``shared``: descriptors of the maps another module owns, by name (they are not closed here).
    """

    spec: ObjectSpec
    shared: Mapping[str, int]
    values: Mapping[str, int]  # sentinel name -> the value to write
    _maps: dict[str, int] = field(default_factory=dict)
    _progs: list[int] = field(default_factory=list)
    _tables: dict[str, MapTable] = field(default_factory=dict)

    def create_maps(self) -> None:
        missing = set(self.spec.shared) - set(self.shared)
        if missing:
            raise SensorError(f"shared maps not available: {', '.join(sorted(missing))}")
        try:
            for spec in self.spec.maps:
                self._maps[spec.name] = create_map(spec)
        except SensorError:
            self.close()
            raise

    def load_func(self, name: str, prog_type: int, attach_type: int = -1) -> int:
        """The descriptor of a loaded program (bcc's ``load_func(...).fd``)."""
        prog = self.spec.programs.get(name)
        if prog is None:
            raise SensorError(f"no function {name} in the object")
        insns = bytearray(prog.insns)
        fds = {**self._maps, **self.shared}
        for index, map_name in prog.maps:
            struct.pack_into("<i", insns, index * INSN_SIZE + 4, fds[map_name])
        for sentinel, sites in prog.sentinels.items():
            for index in sites:
                struct.pack_into("<i", insns, index * INSN_SIZE + 4, self.values[sentinel])
        fd = load_program(name, bytes(insns), prog_type, self.spec.license, self.spec.kern_version, attach_type)
        self._progs.append(fd)
        return fd

    def __getitem__(self, name: str) -> MapTable:
        if name not in self._tables:
            spec = next((m for m in self.spec.maps if m.name == name), None)
            if spec is None:
                raise KeyError(name)
            self._tables[name] = MapTable(spec, self._maps[name])
        return self._tables[name]

    def close(self) -> None:
        for fd in [*self._progs, *self._maps.values()]:
            os.close(fd)
        self._progs.clear()
        self._maps.clear()
        self._tables.clear()
