"""Placing each hook of a policy on this kernel, and reading its arguments.

For every hook the planner picks a mechanism, in order of preference:

==================  =============================================================
hook                mechanism
==================  =============================================================
kprobe, syscall     kprobe on the arch wrapper (``__x64_sys_openat``) where the
                    kernel has kprobes, else the ``syscalls:sys_enter_*`` /
                    ``sys_exit_*`` tracepoints (present on every kernel)
kprobe, function    kprobe, else fentry (fexit with ``return: true``); else the
                    hook is refused with the reason (a kernel function has no
                    tracepoint)
tracepoint          tracepoint (``raw: true``: raw tracepoint)
uprobe              uprobe on each symbol
usdt                uprobe on each location of the probe, its arguments read
                    as the binary's note says (tetra/compiler/usdt.py)
lsmhook             BPF LSM, else refused
network operation   a cgroup sock_addr program when the hook's own mechanism
                    cannot be placed or cannot enforce its Override
                    (tetra/compiler/network.py)
==================  =============================================================

and says for each argument the C expression of its raw 64-bit value. All
problems of a policy are collected and raised together, located.
"""

import os
import platform
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from enum import Enum
from pathlib import Path

from tetra.compiler.argtypes import KERNEL_ONLY, NOP, POINTER_TYPES, TYPES, UNSUPPORTED, ArgType, Encoding, Memory
from tetra.compiler.kernel import KernelSupport
from tetra.compiler.lists import Call, KernelLists, ListError
from tetra.compiler.records import RECORDS, IovIter
from tetra.compiler.network import KERNEL_FUNCTIONS, LSM_HOOKS, SYSCALLS, NetHook, cgroup_dir, CGROUP_OPTION
from tetra.compiler.usdt import UsdtError, UsdtProbe, find_probe
from tetra.errors import KernelError
from tetra.kernel.btf import Btf
from tetra.kernel.tracefs import Field, tracepoint_fields
from tetra.policy.errors import PolicyErrors, PolicyIssue, quoted
from tetra.policy.model import (ArgSpec, KProbe, Location, LsmHook, Selector, Spec, Tracepoint, TracingPolicy, UProbe,
                                Usdt)
from tetra.wire.constants import MAX_ARGS, MAX_HOOKS, Action
from tetra.wire.events import PROCESS_KPROBE, PROCESS_LSM, PROCESS_TRACEPOINT, PROCESS_UPROBE, PROCESS_USDT

# returnArg types read through the returned pointer: text, as Tetragon reports them (the others are numbers).
RETURN_POINTER_TYPES = frozenset({"string", "filename", "net_device", "file", "path", "dentry"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ARCH_PREFIXES = ("__x64_", "__ia32_", "__arm64_", "__riscv_", "__s390x_")
_SYSCALL_PREFIX = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_"}.get(platform.machine(), "sys_")


class Mechanism(str, Enum):
    TRACEPOINT = "tracepoint"
    RAW_TRACEPOINT = "raw_tracepoint"
    KPROBE = "kprobe"
    FENTRY = "fentry"
    FEXIT = "fexit"  # fentry's return side: one program with the arguments and the return value
    UPROBE = "uprobe"
    USDT = "usdt"  # a uprobe at each location of a USDT probe
    LSM = "lsm"
    CGROUP_SOCK_ADDR = "cgroup_sock_addr"


@dataclass(frozen=True)
class ArgPlan:
    """One argument: where its value comes from and how it is collected."""

    spec: ArgSpec
    atype: ArgType
    value: str  # C expression of the raw 64-bit value
    memory: Memory  # for pointer types
    size: str | None  # C expression of a buffer's size (char_buf)
    at_return: bool  # returnCopy: read when the call returns

    @property
    def label(self) -> str | None:
        return self.spec.label


@dataclass(frozen=True)
class HookPlan:
    """One BPF program (two with a return probe) and what its events mean."""

    hook_id: int
    event: str  # the key of its events: PROCESS_KPROBE.key, ... (tetra/wire/events.py)
    function_name: str  # as Tetragon reports it
    mechanism: Mechanism
    attach: str  # kprobe symbol, "subsys:event", raw tracepoint, LSM hook, uprobe symbol, "provider:name"
    uprobe_path: str | None  # uprobes and USDTs: the binary as the policy names it
    args: tuple[ArgPlan, ...]  # in the policy's order
    return_attach: str | None  # where the return program goes; None without return
    return_value: str | None  # C expression of the return value, in the return program
    return_arg: ArgType | None
    selectors: tuple[Selector, ...]
    message: str | None
    tags: tuple[str, ...]
    loc: Location
    subsys: str = ""
    tp_event: str = ""
    net: NetHook | None = None  # cgroup sock_addr hooks: the operation
    cgroup: str = ""  # and the cgroup v2 directory its programs attach to
    track_return_sock: bool | None = None  # returnArgAction TrackSock (True) / UntrackSock (False)
    # A returned pointer read as what it points to (returnArg string, file...): the text goes into the blob
    # after the arguments, never the address (tetra/compiler/codegen.py)
    return_ptr: ArgPlan | None = None
    usdt: UsdtProbe | None = None  # USDT hooks: the probe's semaphore and locations, its arguments at each

    @property
    def entry_fn(self) -> str:
        return f"tetra_hook_{self.hook_id}"

    @property
    def entry_fn_v6(self) -> str:
        """cgroup sock_addr hooks: the IPv6 program (entry_fn is the IPv4 one)."""
        return f"tetra_hook_{self.hook_id}_v6"

    @property
    def return_fn(self) -> str:
        return f"tetra_ret_{self.hook_id}"

    @cached_property
    def blob_order(self) -> tuple[ArgPlan, ...]:
        """Arguments in the order the kernel writes them: returnCopy ones last."""
        return tuple(a for a in self.args if not a.at_return) + tuple(a for a in self.args if a.at_return)


class _Issues:
    """Collects located errors so that one run reports them all."""

    def __init__(self) -> None:
        self.items: list[PolicyIssue] = []

    def add(self, loc: Location, message: str) -> None:
        self.items.append(PolicyIssue(loc, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise PolicyErrors(self.items)


def syscall_name(call: str) -> str | None:
    """"sys_openat", "__x64_sys_openat" or "openat" -> "openat"; None when not a name."""
    name = call
    for prefix in _ARCH_PREFIXES:
        name = name.removeprefix(prefix)
    name = name.removeprefix("sys_")
    return name if _IDENT.fullmatch(name) else None


def kernel_symbols() -> frozenset[str]:
    """Function names the kernel exports (for kprobes): /proc/kallsyms."""
    try:
        text = Path("/proc/kallsyms").read_text()
    except OSError:
        return frozenset()
    return frozenset(line.split()[2] for line in text.splitlines() if len(line.split()) >= 3)


class Planner:
    """Plans the hooks of one policy for one kernel."""

    def __init__(self, support: KernelSupport, symbols: frozenset[str] | None = None,
                 lists: KernelLists | None = None, btf: Btf | None = None) -> None:
        self.support = support
        self.symbols = symbols
        self.btf = btf  # for record arguments: their structs must be in this kernel
        self.lists = lists or KernelLists()
        self.issues = _Issues()
        self.hooks: list[HookPlan] = []
        self._cgroup_option: str | None = None
        self.enforcers: list[str] = []  # functions that get NotifyEnforcer's fmod_ret program

    def plan(self, policy: TracingPolicy) -> list[HookPlan]:
        spec = policy.spec
        self._cgroup_option = spec.option(CGROUP_OPTION)
        for kprobe in spec.kprobes + spec.fentries:
            for call in self._calls(spec, kprobe.call, kprobe.syscall, kprobe.loc):
                self._kprobe(kprobe, call)
        for tracepoint in spec.tracepoints:
            self._tracepoint(tracepoint)
        for uprobe in spec.uprobes:
            for symbol in uprobe.symbols:
                self._uprobe(uprobe, symbol)
            if uprobe.offsets or uprobe.addrs:
                self.issues.add(uprobe.loc, "uprobe offsets and addrs are not supported by tetra yet: use symbols")
        for hook in spec.lsmhooks:
            self._lsm(hook)
        for usdt in spec.usdts:
            self._usdt(usdt)
        for enforcer in spec.enforcers:
            for name in enforcer.calls:
                for call in self._calls(spec, name, True, enforcer.loc):
                    self._enforcer(enforcer.loc, call.name)
        if len(self.hooks) > MAX_HOOKS:
            self.issues.add(spec.loc, f"the policy places {len(self.hooks)} hooks on this kernel (lists expanded), "
                                      f"at most {MAX_HOOKS} are supported: split it or narrow its lists")
        if not self.hooks and not self.issues.items and not spec.loader:  # the loader sensor: agent/policies.py
            self.issues.add(spec.loc, "the policy attaches nothing: it has no kprobe, fentry, tracepoint, uprobe, "
                                      "LSM hook or USDT to place")
        self.issues.raise_if_any()
        return self.hooks

    # --- hooks -----------------------------------------------------------------

    @staticmethod
    def _returns(hook: KProbe | UProbe) -> bool:
        """Tetragon adds the return probe itself when an argument asks for returnCopy."""
        return hook.return_ or any(arg.return_copy for arg in hook.args)

    def _calls(self, spec: Spec, call: str, syscall: bool, loc: Location) -> tuple[Call, ...]:
        """The functions behind a call (``list:NAME`` expanded); () after reporting why there are none."""
        try:
            return self.lists.calls(spec, call, syscall)
        except ListError as err:
            self.issues.add(loc, str(err))
            return ()

    def _kprobe(self, kprobe: KProbe, call: Call) -> None:
        if call.syscall:
            self._syscall(kprobe, call.name)
        else:
            self._kernel_function(kprobe, call.name)

    def _syscall(self, kprobe: KProbe, call: str) -> None:
        name = syscall_name(call)
        if name is None:
            self.issues.add(kprobe.loc, f"call {quoted(call)} is not a syscall name")
            return
        function_name = _SYSCALL_PREFIX + name
        net = SYSCALLS.get(name)
        if net is not None and _overrides(kprobe) and not self.support.kprobe_overrides(function_name):
            self._network(kprobe, net, PROCESS_KPROBE.key, function_name)
            return
        if self.support.kprobe:
            self._kprobe_at(kprobe, function_name, lambda i: f"tetra_syscall_arg(ctx, {i})", user=True,
                            missing=f"this kernel has no syscall function {function_name}")
            return
        try:
            fields = _syscall_fields(tracepoint_fields("syscalls", f"sys_enter_{name}"))
            exit_fields = tracepoint_fields("syscalls", f"sys_exit_{name}") if self._returns(kprobe) else ()
        except KernelError as err:
            self._missing(kprobe, str(err))
            return

        def value(index: int) -> str:
            if index >= len(fields):
                raise _BadArg(f"syscall {name} has {len(fields)} arguments, no index {index}")
            return f"tetra_ctx_int(ctx, {fields[index].offset}, 8, 0)"

        args = self._args(kprobe.args, kprobe, value, user=True)
        ret = next((f for f in exit_fields if f.name == "ret"), None)
        self._add(kprobe, PROCESS_KPROBE.key, function_name, Mechanism.TRACEPOINT, f"syscalls:sys_enter_{name}", args,
                  return_attach=f"syscalls:sys_exit_{name}" if self._returns(kprobe) else None,
                  return_value=f"tetra_ctx_int(ctx, {ret.offset}, 8, 1)" if ret else None)

    def _kprobe_at(self, kprobe: KProbe, symbol: str, value: Callable[[int], str], user: bool,
                   missing: str) -> None:
        """A kprobe (and kretprobe) on a symbol the kernel exports."""
        if self.symbols is not None and symbol not in self.symbols:
            self._missing(kprobe, missing)
            return
        args = self._args(kprobe.args, kprobe, value, user=user)
        self._add(kprobe, PROCESS_KPROBE.key, symbol, Mechanism.KPROBE, symbol, args,
                  return_attach=symbol if self._returns(kprobe) else None, return_value="PT_REGS_RC(ctx)",
                  return_memory=None if user else Memory.KERNEL)

    def _kernel_function(self, kprobe: KProbe, call: str) -> None:
        if not _IDENT.fullmatch(call):
            self.issues.add(kprobe.loc, f"call {quoted(call)} is not a kernel function name")
            return
        net = KERNEL_FUNCTIONS.get(call)
        if _overrides(kprobe) and not self.support.kprobe_overrides(call):
            # Override needs another mechanism: the LSM hook a security_ function calls, or a cgroup program
            if self.support.lsm and call.startswith("security_"):
                self._lsm_of(kprobe, call)
                return
            if net is not None:
                self._network(kprobe, net, PROCESS_KPROBE.key, call)
                return
        elif net is not None and not self.support.kprobe and not self.support.fentry:
            self._network(kprobe, net, PROCESS_KPROBE.key, call)
            return
        if self.support.kprobe:
            self._kprobe_at(kprobe, call, lambda i: f"PT_REGS_PARM{i + 1}(ctx)", user=False,
                            missing=f"this kernel has no function {call}")
        elif self.support.fentry:
            args = self._args(kprobe.args, kprobe, lambda i: f"a{i}", user=False)
            if self._returns(kprobe):  # one fexit program sees the arguments and the return value
                self._add(kprobe, PROCESS_KPROBE.key, call, Mechanism.FEXIT, call, args, return_attach=call,
                          return_value="ret", return_memory=Memory.KERNEL)
            else:
                self._add(kprobe, PROCESS_KPROBE.key, call, Mechanism.FENTRY, call, args)
        else:
            self.issues.add(kprobe.loc, f"kernel function {call} needs kprobes or fentry, and this kernel has "
                                        f"neither: {self.support.reasons.get('kprobe')}; "
                                        f"{self.support.reasons.get('fentry')}")

    def _tracepoint(self, tp: Tracepoint) -> None:
        if not (_IDENT.fullmatch(tp.subsystem) and _IDENT.fullmatch(tp.event)):
            self.issues.add(tp.loc, f"{tp.subsystem}:{tp.event} is not a tracepoint name")
            return
        if tp.raw:
            args = self._args(tp.args, tp, lambda i: f"((struct bpf_raw_tracepoint_args *)ctx)->args[{i}]",
                              user=False)
            self._add(tp, PROCESS_TRACEPOINT.key, f"{tp.subsystem}/{tp.event}", Mechanism.RAW_TRACEPOINT,
                      tp.event, args, subsys=tp.subsystem, tp_event=tp.event)
            return
        try:
            fields = tracepoint_fields(tp.subsystem, tp.event)
        except KernelError as err:
            self.issues.add(tp.loc, str(err))
            return
        user = tp.subsystem == "syscalls"
        planned = []
        for spec in tp.args:
            if spec.index >= len(fields):
                self.issues.add(spec.loc, f"{tp.subsystem}:{tp.event} has {len(fields)} fields "
                                          f"(index 0 is {fields[0].name}), no index {spec.index}")
                continue
            arg = self._tracepoint_arg(spec, fields[spec.index], user)
            if arg is not None:
                planned.append(arg)
        self._add(tp, PROCESS_TRACEPOINT.key, f"{tp.subsystem}/{tp.event}", Mechanism.TRACEPOINT,
                  f"{tp.subsystem}:{tp.event}", tuple(planned), subsys=tp.subsystem, tp_event=tp.event)

    def _tracepoint_arg(self, spec: ArgSpec, f: Field, user: bool) -> ArgPlan | None:
        if "[" in f.name and not f.is_char_array:
            self.issues.add(spec.loc, f"field {f.name} ({f.c_type}) is an array of numbers: reading one element "
                                      "of it is not supported by tetra yet")
            return None
        if f.is_data_loc or f.is_char_array:
            value = f"tetra_ctx_data_loc(ctx, {f.offset})" if f.is_data_loc else f"(__u64)((char *)ctx + {f.offset})"
            atype = TYPES["string"] if spec.type == "auto" else self._type(spec)
            return None if atype is None else ArgPlan(spec, atype, value, Memory.KERNEL, None, False)
        value = f"tetra_ctx_int(ctx, {f.offset}, {f.size}, {int(f.signed)})"
        if spec.type == "auto":
            atype = TYPES["string"] if f.is_pointer and "char" in f.c_type else TYPES["long"]
        else:
            atype = self._type(spec)
        if atype is None:
            return None
        memory = Memory.USER if user else Memory.KERNEL
        return ArgPlan(spec, atype, value, memory, None, False)

    def _binary(self, hook: UProbe | Usdt, kind: str) -> str | None:
        """The executable file a uprobe or USDT hook names, symlinks resolved once here (so what is read
        is what is attached to); None after reporting why it is not one."""
        if not hook.path.startswith("/"):
            self.issues.add(hook.loc, f"{kind} path {quoted(hook.path)} is not absolute")
            return None
        resolved = os.path.realpath(hook.path)
        try:
            mode = os.stat(resolved).st_mode
        except OSError as err:
            self.issues.add(hook.loc, f"{kind} path {quoted(hook.path)} does not exist: {err.strerror}")
            return None
        if not stat.S_ISREG(mode):
            self.issues.add(hook.loc, f"{kind} path {quoted(hook.path)} is not a regular file")
            return None
        return resolved

    def _uprobe(self, uprobe: UProbe, symbol: str) -> None:
        if self._binary(uprobe, "uprobe") is None:
            return
        if not _IDENT.fullmatch(symbol):
            self.issues.add(uprobe.loc, f"uprobe symbol {quoted(symbol)} is not a symbol name")
            return
        args = self._args(uprobe.args, uprobe, lambda i: f"PT_REGS_PARM{i + 1}(ctx)", user=True)
        self._add(uprobe, PROCESS_UPROBE.key, symbol, Mechanism.UPROBE, symbol, args, uprobe_path=uprobe.path,
                  return_attach=symbol if self._returns(uprobe) else None, return_value="PT_REGS_RC(ctx)",
                  return_memory=Memory.USER)

    def _usdt(self, usdt: Usdt) -> None:
        """A uprobe on each location of the probe; its arguments by their position in the probe's note."""
        path = self._binary(usdt, "usdt")
        if path is None:
            return
        try:
            probe = find_probe(path, usdt.provider, usdt.name)
        except UsdtError as err:
            self.issues.add(usdt.loc, str(err))
            return
        hook_id = len(self.hooks)

        def value(index: int) -> str:
            if index >= probe.arg_count:
                raise _BadArg(f"USDT probe {usdt.provider}:{usdt.name} has {probe.arg_count} arguments, "
                              f"no index {index}")
            return probe.reader(hook_id, index)

        args = self._args(usdt.args, usdt, value, user=True)
        self._add(usdt, PROCESS_USDT.key, usdt.name, Mechanism.USDT, f"{usdt.provider}:{usdt.name}", args,
                  uprobe_path=usdt.path, usdt=probe)

    def _lsm(self, hook: LsmHook) -> None:
        if not _IDENT.fullmatch(hook.hook):
            self.issues.add(hook.loc, f"{quoted(hook.hook)} is not an LSM hook name")
            return
        net = LSM_HOOKS.get(hook.hook)
        if net is not None and not self.support.lsm:
            self._network(hook, net, PROCESS_LSM.key, hook.hook)
            return
        if not self.support.lsm:
            self.issues.add(hook.loc, f"LSM hook {hook.hook} needs BPF LSM: {self.support.reasons.get('lsm')}")
            return
        args = self._args(hook.args, hook, lambda i: f"a{i}", user=False)
        self._add(hook, PROCESS_LSM.key, hook.hook, Mechanism.LSM, hook.hook, args)

    def _lsm_of(self, kprobe: KProbe, call: str) -> None:
        """``security_X`` with Override, as the BPF LSM hook ``X`` it runs (same arguments): the event
        still names ``security_X``."""
        hook = call.removeprefix("security_")
        if self._returns(kprobe):
            self.issues.add(kprobe.loc, f"Override on {call} runs as the LSM hook {hook}, which has no return "
                                        "probe: drop 'return' and returnCopy")
            return
        if self.symbols is not None and f"bpf_lsm_{hook}" not in self.symbols:
            self.issues.add(kprobe.loc, f"Override on {call}: this kernel has no LSM hook {hook} (bpf_lsm_{hook})")
            return
        args = self._args(kprobe.args, kprobe, lambda i: f"a{i}", user=False)
        self._add(kprobe, PROCESS_KPROBE.key, call, Mechanism.LSM, hook, args)

    def _enforcer(self, loc: Location, call: str) -> None:
        """An enforcer call: a syscall whose result NotifyEnforcer replaces, through fmod_ret."""
        name = syscall_name(call)
        if name is None:
            self.issues.add(loc, f"enforcer call {quoted(call)} is not a syscall name")
            return
        if not self.support.fmod_ret:
            self.issues.add(loc, f"enforcer call {call}: NotifyEnforcer makes the call fail through a BPF fmod_ret "
                                 f"program, which this kernel cannot run: {self.support.reasons.get('fmod_ret')}; "
                                 "here, stop the process with Sigkill or deny with Override on an LSM or network "
                                 "hook")
            return
        symbol = _SYSCALL_PREFIX + name
        if self.symbols is not None and symbol not in self.symbols:
            self.issues.add(loc, f"enforcer call {call}: this kernel has no syscall function {symbol}")
        elif not self.support.may_inject(symbol):
            self.issues.add(loc, f"enforcer call {call}: {symbol} is not error-injectable on this kernel, so fmod_ret "
                                 "may not modify it")
        elif symbol not in self.enforcers:
            self.enforcers.append(symbol)

    def _network(self, hook: KProbe | LsmHook, net: NetHook, event: str, function_name: str) -> None:
        """A cgroup sock_addr program: the address and the socket, no other argument, no return."""
        if isinstance(hook, KProbe) and self._returns(hook):
            self.issues.add(hook.loc, f"{function_name} runs here as a cgroup {net.op.value} program, which sees "
                                      "the call before it happens: no return probe or returnCopy")
            return
        try:
            cgroup = cgroup_dir(self._cgroup_option)
        except KernelError as err:
            self.issues.add(hook.loc, str(err))
            return
        planned, left_out = [], {}
        for spec in hook.args:
            atype = self._type(spec)
            if atype is None:
                continue
            if spec.index == net.sockaddr and spec.type == "sockaddr" \
                    or spec.index == net.sock and spec.type in ("sock", "socket"):
                planned.append(ArgPlan(spec, atype, "ctx", Memory.KERNEL, None, False))
            else:
                left_out[spec.index] = spec.type
        for selector in hook.selectors:
            for m in selector.match_args:
                index = m.index or 0
                if index in left_out:
                    self.issues.add(m.loc, f"argument {index} ({left_out[index]}) of {function_name} is not known to "
                                           f"the cgroup {net.op.value} program it runs as here (only the address "
                                           "and the socket are)")
        self._add(hook, event, function_name, Mechanism.CGROUP_SOCK_ADDR, net.op.value, tuple(planned),
                  net=net, cgroup=cgroup)

    # --- arguments -------------------------------------------------------------

    def _type(self, spec: ArgSpec) -> ArgType | None:
        """The argument's type; None (reported, unless it is a nop) when it is not collected."""
        if spec.type == NOP:
            return None
        if spec.type in UNSUPPORTED:
            self.issues.add(spec.loc, f"argument type {spec.type!r} is {UNSUPPORTED[spec.type]}")
            return None
        try:
            if spec.type in RECORDS:
                RECORDS[spec.type].offsets(self.btf)
            elif spec.type == "iov_iter":
                IovIter.of(self.btf)
        except KernelError as err:
            self.issues.add(spec.loc, str(err))
            return None
        return TYPES[spec.type]

    def _args(self, specs: tuple[ArgSpec, ...], hook: object, value: Callable[[int], str],
              user: bool) -> tuple[ArgPlan, ...]:
        planned = []
        for spec in specs:
            atype = self._type(spec)
            if atype is None:
                continue
            try:
                raw = value(spec.index)
                size = value(spec.size_arg_index - 1) if spec.size_arg_index else None
            except _BadArg as err:
                self.issues.add(spec.loc, str(err))
                continue
            if spec.type in KERNEL_ONLY and user:
                self.issues.add(spec.loc, f"type {spec.type!r} is a kernel pointer; this hook's arguments "
                                          f"are user values (use string, fd or char_buf)")
                continue
            if atype.encoding is Encoding.BYTES and spec.type in ("char_buf", "const_buf") \
                    and size is None and not spec.return_copy:
                self.issues.add(spec.loc, f"type {spec.type!r} needs sizeArgIndex or returnCopy "
                                          "(how many bytes to read)")
                continue
            memory = Memory.USER if user and spec.type in POINTER_TYPES else Memory.KERNEL
            planned.append(ArgPlan(spec, atype, raw, memory, size, spec.return_copy))
        return tuple(planned)

    def _add(self, hook: KProbe | Tracepoint | UProbe | LsmHook | Usdt, event: str, function_name: str,
             mechanism: Mechanism, attach: str, args: tuple[ArgPlan, ...], *, uprobe_path: str | None = None,
             return_attach: str | None = None, return_value: str | None = None, return_memory: Memory | None = None,
             subsys: str = "", tp_event: str = "", net: NetHook | None = None, cgroup: str = "",
             usdt: UsdtProbe | None = None) -> None:
        """``return_memory``: where a returned pointer points (None: the hook returns a number, as a syscall does)."""
        return_arg = getattr(hook, "return_arg", None)
        return_action = getattr(hook, "return_arg_action", None)
        track = {"TrackSock": True, "UntrackSock": False}.get(return_action or "")
        return_type = None
        return_ptr = None
        if return_attach is not None:
            return_type = TYPES["int"] if return_arg is None else self._type(return_arg)
        if return_type is not None and return_type.encoding is not Encoding.INT:
            return_ptr = self._return_pointer(return_arg, return_type, return_memory, track, args)
            if return_ptr is None:
                return_type = None
        self.hooks.append(HookPlan(
            hook_id=len(self.hooks), event=event, function_name=function_name, mechanism=mechanism, attach=attach,
            uprobe_path=uprobe_path, args=args, return_attach=return_attach,
            return_value=return_value if return_attach else None, return_arg=return_type,
            selectors=hook.selectors, message=hook.message, tags=hook.tags, loc=hook.loc,
            subsys=subsys, tp_event=tp_event, net=net, cgroup=cgroup,
            track_return_sock=track if return_attach is not None else None, return_ptr=return_ptr, usdt=usdt,
        ))

    def _return_pointer(self, spec: ArgSpec, atype: ArgType, memory: Memory | None, track: bool | None,
                        args: tuple[ArgPlan, ...]) -> ArgPlan | None:
        """A returnArg that is not a number: what the returned pointer points to, read at return as an argument
        of that type would be (Tetragon's string return values), or None (reported unless TrackSock/UntrackSock
        use a returned struct sock). Its address is never reported: printed it would leak a kernel address."""
        if track is not None and atype.encoding is Encoding.SOCK:
            return None
        if atype.name not in RETURN_POINTER_TYPES:
            self.issues.add(spec.loc, f"returnArg type {atype.name!r}: tetra reports integer return values and the "
                                      "text a returned pointer points to "
                                      f"({', '.join(sorted(RETURN_POINTER_TYPES))}); a returned struct sock serves "
                                      "returnArgAction TrackSock/UntrackSock")
            return None
        if memory is None:
            self.issues.add(spec.loc, f"returnArg type {atype.name!r}: this hook returns a number (a syscall's "
                                      "result), not a pointer")
            return None
        if memory is Memory.USER and atype.name in KERNEL_ONLY:
            self.issues.add(spec.loc, f"returnArg type {atype.name!r} is a kernel pointer; a uprobe returns a user "
                                      "pointer (use string)")
            return None
        if any(arg.at_return for arg in args):
            self.issues.add(spec.loc, f"returnArg type {atype.name!r}: returnCopy arguments are sized by the return "
                                      "value, which here is a pointer")
            return None
        if len(args) >= MAX_ARGS:
            self.issues.add(spec.loc, f"returnArg type {atype.name!r} takes an argument slot of its own, and this hook "
                                      f"reads {len(args)} arguments (at most {MAX_ARGS - 1} with a returned string)")
            return None
        return ArgPlan(spec, atype, "", memory, None, True)

    def _missing(self, kprobe: KProbe, reason: str) -> None:
        if not kprobe.ignore_call_not_found:
            self.issues.add(kprobe.loc, reason)


def _overrides(hook: KProbe) -> bool:
    """Whether a selector of the hook denies the call (Override)."""
    return any(action.action == Action.OVERRIDE.word for sel in hook.selectors for action in sel.match_actions)


class _BadArg(Exception):
    """An argument index the hook does not have."""


def _syscall_fields(fields: tuple[Field, ...]) -> tuple[Field, ...]:
    """The syscall's own arguments: the fields after common_* and __syscall_nr."""
    return tuple(f for f in fields if not f.name.startswith("common_") and f.name != "__syscall_nr")

