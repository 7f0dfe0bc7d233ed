"""The sensor of one TracingPolicy: its compiled C loaded, attached and filled.

Loaded after the process sensor, whose ring buffer, counters and binary map it
shares (bcc shared tables), so its events reach the same reader in order.
Loading is all or nothing: a hook that fails to attach detaches the others and
the policy is reported as failed with the kernel's reason.
"""

import ctypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tetra.compiler.network import ATTACH_TYPES
from tetra.compiler.plan import HookPlan, Mechanism
from tetra.compiler.program import CompiledPolicy
from tetra.compiler.selectors import MapEntry
from tetra.errors import SensorError
from tetra.sensors.base import cflags, expand_includes, percpu_sum
from tetra.sensors.links import Links


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


Attach = Callable[[Links, int, str, HookPlan, bool], None]
# mechanism -> (bcc program type, attach); fentry and LSM programs are attached by
# bcc itself when it loads them (KFUNC_PROBE / LSM_PROBE: one per function name,
# so never shared), cgroup programs by the sensor (links it keeps).
_ATTACH: dict[Mechanism, tuple[str, Attach] | None] = {
    Mechanism.TRACEPOINT: ("TRACEPOINT", _attach_tracepoint),
    Mechanism.RAW_TRACEPOINT: ("RAW_TRACEPOINT", _attach_raw_tracepoint),
    Mechanism.KPROBE: ("KPROBE", _attach_kprobe),
    Mechanism.UPROBE: ("KPROBE", _attach_uprobe),
    Mechanism.FENTRY: None,
    Mechanism.LSM: None,
    Mechanism.CGROUP_SOCK_ADDR: None,
}


class PolicySensor:
    """One policy's BPF module."""

    def __init__(self, compiled: CompiledPolicy, defines: Mapping[str, int | str | None]) -> None:
        self.compiled = compiled
        self._cflags = cflags(defines)
        self._bpf: object | None = None
        self._links = Links()

    @property
    def name(self) -> str:
        return self.compiled.policy.name

    def load(self, monitoring: bool = False) -> None:
        from bcc import BPF  # imported here: tetra's unit tests run without bcc

        try:
            self._bpf = BPF(text=expand_includes(self.compiled.c_text).encode(), cflags=self._cflags)
            for hook in self.compiled.hooks:
                self._attach(hook)
            for symbol in self.compiled.enforcers:
                fn = self._bpf.load_func(f"kmod_ret__{symbol}".encode(), BPF.TRACING)  # type: ignore[attr-defined]
                self._links.attach_trampoline(fn.fd, symbol)
            self._fill_maps()
            self.set_mode(monitoring)
        except Exception as err:  # bcc raises bare Exception on compile, load and attach errors
            self.close()
            raise SensorError(f"policy {self.name}: {err}") from err

    def _attach(self, hook: HookPlan) -> None:
        """Each program through a descriptor of its own (see tetra/sensors/links.py)."""
        from bcc import BPF

        if hook.net is not None:
            self._attach_cgroup(hook)
            return
        attach = _ATTACH[hook.mechanism]
        if attach is None:
            return
        prog_type, attach_fn = attach
        load = self._bpf.load_func  # type: ignore[attr-defined]
        attach_fn(self._links, load(hook.entry_fn.encode(), getattr(BPF, prog_type)).fd, hook.attach, hook, False)
        if hook.return_attach:
            attach_fn(self._links, load(hook.return_fn.encode(), getattr(BPF, prog_type)).fd,
                      hook.return_attach, hook, True)

    def _attach_cgroup(self, hook: HookPlan) -> None:
        """The hook's IPv4 and IPv6 programs on its cgroup (each loaded for its attach type)."""
        from bcc import BPF, BPFAttachType

        assert hook.net is not None
        for fn_name, type_name in zip((hook.entry_fn, hook.entry_fn_v6), ATTACH_TYPES[hook.net.op]):
            attach_type = getattr(BPFAttachType, type_name)
            fn = self._bpf.load_func(fn_name, BPF.CGROUP_SOCK_ADDR, attach_type=attach_type)  # type: ignore[attr-defined]
            self._links.attach_cgroup(fn.fd, hook.cgroup, attach_type)

    def _fill_maps(self) -> None:
        for entry in self.compiled.map_entries:
            table = self._bpf[entry.map]  # type: ignore[index]
            table[_key(table, entry)] = table.Leaf(1)

    def set_mode(self, monitoring: bool) -> None:
        """Monitoring: Sigkill/Signal are reported, not sent. Switchable at run time."""
        table = self._bpf["policy_mode"]  # type: ignore[index]
        table[table.Key(0)] = table.Leaf(1 if monitoring else 0)

    def set_scope(self, cgroup_ids: set[int]) -> None:
        """A scoped policy's cgroups, replacing the previous set (entries added before removed,
        so a container staying in scope is never out of it for a moment)."""
        table = self._bpf["scope_cgroups"]  # type: ignore[index]
        current = {int(key.value) for key in table.keys()}
        for cgroup in cgroup_ids - current:
            table[table.Key(cgroup)] = table.Leaf(1)
        for cgroup in current - cgroup_ids:
            del table[table.Key(cgroup)]

    def hook_counts(self) -> dict[int, HookCounts]:
        table = self._bpf["hook_stats"]  # type: ignore[index]
        counts = {}
        for hook in self.compiled.hooks:
            counts[hook.hook_id] = HookCounts(percpu_sum(table, hook.hook_id * 2),
                                              percpu_sum(table, hook.hook_id * 2 + 1))
        return counts

    def stack_symbols(self, stack_id: int, pid: int, user: bool) -> list[str]:
        """Symbolized frames of a stack the kernel recorded (empty when gone)."""
        if stack_id < 0:
            return []
        bpf = self._bpf
        try:
            frames = bpf["stacks"].walk(stack_id)  # type: ignore[index]
            if user:
                return [bpf.sym(addr, pid, show_offset=True).decode(errors="replace")  # type: ignore[attr-defined]
                        for addr in frames]
            return [bpf.ksym(addr, show_offset=True).decode(errors="replace")  # type: ignore[attr-defined]
                    for addr in frames]
        except Exception:  # bcc raises on an evicted stack, or when the policy keeps no stacks
            return []

    def close(self) -> None:
        self._links.close()
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
