"""The sensor of one TracingPolicy: its compiled C loaded, attached and filled.

Loaded after the process sensor, whose ring buffer, counters and binary map it
shares (bcc shared tables), so its events reach the same reader in order.
Loading is all or nothing: a hook that fails to attach detaches the others and
the policy is reported as failed with the kernel's reason.

The programs come either from bcc (clang in this process) or from a compiled
object (tetra/sensors/bpfobj.py: built once, cached, no clang); both give the
same programs, maps and attachments, and the rest of the sensor cannot tell
them apart.
"""

import ctypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tetra.compiler.codegen import GENERIC_INCLUDE, policy_id_define
from tetra.compiler.network import ATTACH_TYPES
from tetra.compiler.plan import HookPlan, Mechanism
from tetra.compiler.program import CompiledPolicy
from tetra.compiler.selectors import MapEntry
from tetra.errors import SensorError
from tetra.kernel.probes import cflags, expand_includes
from tetra.sensors.base import percpu_sum
from tetra.sensors.bpfobj import LoadedObject, ObjectSpec
from tetra.sensors.build import BuildRequest
from tetra.sensors.links import Links

# Load-time values, compiled into objects as these placeholders (see bpfobj.Sentinels).
POLICY_ID_SENTINEL = 0x7E7A1D05
AGENT_TGID_SENTINEL = 0x7E7A7619
AGENT_TGID = "TETRA_AGENT_TGID"


@dataclass(frozen=True)
class HookCounts:
    """Calls a hook saw in the kernel, and how many of them it posted."""

    seen: int
    posted: int


def _attach_tracepoint(links: Links, fd: int, target: str, _: HookPlan, __: bool) -> None:
    links.attach_tracepoint(fd, target)


def _attach_raw_tracepoint(links: Links, fd: int, target: str, _: HookPlan, __: bool) -> None:
    links.attach_raw_tracepoint(fd, target)


def _attach_kprobe(links: Links, fd: int, target: str, _: HookPlan, at_return: bool) -> None:
    links.attach_kprobe(fd, target, at_return)


def _attach_uprobe(links: Links, fd: int, target: str, hook: HookPlan, at_return: bool) -> None:
    links.attach_uprobe(fd, hook.uprobe_path, target, at_return)


def _attach_usdt(links: Links, fd: int, target: str, hook: HookPlan, _: bool) -> None:
    """The program at every location of the probe (a probe written in an inlined function has several)."""
    assert hook.usdt is not None
    for location in hook.usdt.locations:
        links.attach_uprobe(fd, hook.usdt.path, target, False, location.address, hook.usdt.semaphore)


Attach = Callable[[Links, int, str, HookPlan, bool], None]
# mechanism -> (bcc program type, attach); fentry, fexit and LSM programs are attached by
# bcc itself when it loads them (KFUNC_PROBE / KRETFUNC_PROBE / LSM_PROBE: one per function name,
# so never shared), cgroup programs by the sensor (links it keeps).
_ATTACH: dict[Mechanism, tuple[str, Attach] | None] = {
    Mechanism.TRACEPOINT: ("TRACEPOINT", _attach_tracepoint),
    Mechanism.RAW_TRACEPOINT: ("RAW_TRACEPOINT", _attach_raw_tracepoint),
    Mechanism.KPROBE: ("KPROBE", _attach_kprobe),
    Mechanism.UPROBE: ("KPROBE", _attach_uprobe),
    Mechanism.USDT: ("KPROBE", _attach_usdt),
    Mechanism.FENTRY: None,
    Mechanism.FEXIT: None,
    Mechanism.LSM: None,
    Mechanism.CGROUP_SOCK_ADDR: None,
}


class PolicySensor:
    """One policy's BPF module."""

    def __init__(self, compiled: CompiledPolicy, defines: Mapping[str, int | str | None]) -> None:
        self.compiled = compiled
        self._defines = dict(defines)
        self._cflags = cflags(defines)
        self._bpf: object | None = None
        self._object: LoadedObject | None = None
        self._links = Links()

    @property
    def name(self) -> str:
        return self.compiled.policy.name

    def build_request(self, shared: tuple[str, ...]) -> BuildRequest | None:
        """What to compile for an object of this policy, the same whatever its id and the agent's pid;
        None when bcc must load it (fentry, LSM and fmod_ret programs: bcc finds and attaches their
        kernel functions itself). ``shared``: the tables the process sensor owns."""
        if self.compiled.enforcers or any(h.mechanism in (Mechanism.FENTRY, Mechanism.FEXIT, Mechanism.LSM)
                                          for h in self.compiled.hooks):
            return None
        text = self.compiled.c_text.replace(policy_id_define(self.compiled.policy_id),
                                            policy_id_define(POLICY_ID_SENTINEL), 1)
        sentinels = {"policy_id": POLICY_ID_SENTINEL}
        defines = dict(self._defines)
        if AGENT_TGID in defines:
            defines[AGENT_TGID] = AGENT_TGID_SENTINEL
            sentinels[AGENT_TGID] = AGENT_TGID_SENTINEL
        head, include, body = text.partition(GENERIC_INCLUDE)
        if not include:  # not the codegen's layout: compiled as a whole, never batched
            head, body = text, ""
        # The policy's name (a comment) goes with its hooks: the head is then the same for every
        # policy with the same defines, and such policies can be compiled together.
        comments = [ln for ln in head.splitlines(keepends=True) if ln.startswith("/*")]
        head = "".join(ln for ln in head.splitlines(keepends=True) if not ln.startswith("/*"))
        body = "".join(comments) + body
        return BuildRequest(expand_includes(head + include), expand_includes(body), tuple(cflags(defines)), shared,
                            sentinels)

    def load(self, monitoring: bool = False, obj: ObjectSpec | None = None,
             shared: Mapping[str, int] | None = None) -> None:
        """From ``obj`` (a compiled object; ``shared``: the process sensor's map descriptors by name),
        or else with bcc."""
        try:
            if obj is not None:
                values = {"policy_id": self.compiled.policy_id,
                          AGENT_TGID: int(self._defines.get(AGENT_TGID) or 0)}
                self._object = LoadedObject(obj, shared or {}, values)
                self._object.create_maps()
            else:
                from bcc import BPF  # imported here: tetra's unit tests run without bcc

                self._bpf = BPF(text=expand_includes(self.compiled.c_text).encode(), cflags=self._cflags)
            for hook in self.compiled.hooks:
                self._attach(hook)
            for symbol in self.compiled.enforcers:
                self._links.attach_trampoline(self._load_func(f"kmod_ret__{symbol}", "TRACING"), symbol)
            self._fill_maps()
            self.set_mode(monitoring)
        except Exception as err:  # bcc raises bare Exception on compile, load and attach errors
            self.close()
            raise SensorError(f"policy {self.name}: {err}") from err

    def _load_func(self, name: str, prog_type: str, attach_type: int = -1) -> int:
        """A program's descriptor, loaded by bcc or from the object."""
        from bcc import BPF

        if self._object is not None:
            return self._object.load_func(name, getattr(BPF, prog_type), attach_type)
        return int(self._bpf.load_func(name.encode(), getattr(BPF, prog_type),  # type: ignore[attr-defined]
                                       attach_type=attach_type).fd)

    def _table(self, name: str) -> Any:
        return self._object[name] if self._object is not None else self._bpf[name]  # type: ignore[index]

    def _attach(self, hook: HookPlan) -> None:
        """Each program through a descriptor of its own (see tetra/sensors/links.py)."""
        if hook.net is not None:
            self._attach_cgroup(hook)
            return
        attach = _ATTACH[hook.mechanism]
        if attach is None:
            return
        prog_type, attach_fn = attach
        attach_fn(self._links, self._load_func(hook.entry_fn, prog_type), hook.attach, hook, False)
        if hook.return_attach:
            attach_fn(self._links, self._load_func(hook.return_fn, prog_type), hook.return_attach, hook, True)

    def _attach_cgroup(self, hook: HookPlan) -> None:
        """The hook's IPv4 and IPv6 programs on its cgroup (each loaded for its attach type)."""
        from bcc import BPFAttachType

        assert hook.net is not None
        for fn_name, type_name in zip((hook.entry_fn, hook.entry_fn_v6), ATTACH_TYPES[hook.net.op]):
            attach_type = getattr(BPFAttachType, type_name)
            self._links.attach_cgroup(self._load_func(fn_name, "CGROUP_SOCK_ADDR", attach_type),
                                      hook.cgroup, attach_type)

    def _fill_maps(self) -> None:
        for entry in self.compiled.map_entries:
            table = self._table(entry.map)
            table[_key(table, entry)] = table.Leaf(1)

    def set_mode(self, monitoring: bool) -> None:
        """Monitoring: Sigkill/Signal are reported, not sent. Switchable at run time."""
        table = self._table("policy_mode")
        table[table.Key(0)] = table.Leaf(1 if monitoring else 0)

    def set_scope(self, cgroup_ids: set[int]) -> None:
        """A scoped policy's cgroups, replacing the previous set (entries added before removed,
        so a container staying in scope is never out of it for a moment)."""
        table = self._table("scope_cgroups")
        current = {int(key.value) for key in table.keys()}
        for cgroup in cgroup_ids - current:
            table[table.Key(cgroup)] = table.Leaf(1)
        for cgroup in current - cgroup_ids:
            del table[table.Key(cgroup)]

    def hook_counts(self) -> dict[int, HookCounts]:
        table = self._table("hook_stats")
        counts = {}
        for hook in self.compiled.hooks:
            counts[hook.hook_id] = HookCounts(percpu_sum(table, hook.hook_id * 2),
                                              percpu_sum(table, hook.hook_id * 2 + 1))
        return counts

    def stack_symbols(self, stack_id: int, pid: int, user: bool) -> list[str]:
        """Symbolized frames of a stack the kernel recorded (empty when gone)."""
        if stack_id < 0:
            return []
        from bcc import BPF  # symbolizing is BPF's (class-level caches), whichever loaded the programs

        try:
            frames = self._table("stacks").walk(stack_id)
            if user:
                return [BPF.sym(addr, pid, show_offset=True).decode(errors="replace") for addr in frames]
            return [BPF.ksym(addr, show_offset=True).decode(errors="replace") for addr in frames]
        except Exception:  # bcc raises on an evicted stack, or when the policy keeps no stacks
            return []

    @property
    def from_object(self) -> bool:
        """Whether the programs came from a compiled object (not from clang in this process)."""
        return self._object is not None

    def close(self) -> None:
        self._links.close()
        if self._object is not None:
            self._object.close()
            self._object = None
        if self._bpf is not None:
            self._bpf.cleanup()  # type: ignore[attr-defined]
            self._bpf = None


def _key(table: object, entry: MapEntry) -> object:
    key = table.Key()  # type: ignore[attr-defined]
    key.id = entry.id
    if entry.map == "pid_set":
        key.pid = int.from_bytes(entry.data, "little")
        return key
    key.prefixlen = entry.prefixlen
    descriptor = getattr(type(key), "addr" if entry.map == "addr_lpm" else "data")
    size = min(len(entry.data), descriptor.size)
    ctypes.memmove(ctypes.addressof(key) + descriptor.offset, entry.data, size)
    return key
