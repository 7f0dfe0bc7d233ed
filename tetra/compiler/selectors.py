"""Selectors -> C conditions, and their values -> map entries.

Tetragon's semantics: the filters of one selector AND; selectors are tried in
order and the first that matches decides the actions; the values of Equal/In
(and Prefix, Postfix...) OR, those of NotEqual/NotIn AND. A hook without
selectors posts every call.

Strings, binary paths and addresses become entries of the policy's maps,
keyed by a matcher id; the C only names the id. Integers are parsed and
printed as decimal literals. A filter tetra cannot evaluate in the kernel is
refused with its location, never dropped.
"""

import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from tetra.compiler.argtypes import Encoding
from tetra.compiler.names import ADDRESS_FAMILIES, CAPABILITY_NUMBERS, NAMESPACES, PROTOCOLS, TCP_STATES
from tetra.compiler.kernel import KernelSupport
from tetra.compiler.plan import ArgPlan, HookPlan, Mechanism
from tetra.kernel.btf import Btf
from tetra.policy.errors import PolicyIssue
from tetra.policy.limits import MAX_POSTFIX_VALUE
from tetra.compiler.lists import KernelLists, ListError
from tetra.policy.model import LIST_PREFIX, Action, Location, MatchArg, Selector, Spec
from tetra.policy.values import go_int
from tetra.policy.vocab import DEPRECATED_ACTIONS
from tetra.wire import constants as wire
from tetra.wire.events import PROCESS_TRACEPOINT
from tetra.wire.layouts import NS_NAMES

STR_OPS = {"Equal": (0, False), "NotEqual": (0, True), "Prefix": (1, False), "NotPrefix": (1, True),
           "Postfix": (2, False), "NotPostfix": (2, True)}
BINARY_OPS = {"In": (0, False), "NotIn": (0, True), "Prefix": (1, False), "NotPrefix": (1, True),
              "Postfix": (2, False), "NotPostfix": (2, True)}
STR_MAPS = ("str_eq", "str_prefix", "str_postfix")
INT_VALUES_MAX = 16
_DURATION = re.compile(r"(\d+)([smh]?)")
# matchCapabilityChanges type -> its place in struct tetra_baseline's caps (lib/execve.h)
_CAP_SETS = {"permitted": 0, "effective": 1, "inheritable": 2}
# matchNamespaceChanges names (Tetragon's, lower case) -> bit: the namespace's place in struct tetra_ns
_NS_BITS = {name.replace("_", ""): bit for bit, name in enumerate(NS_NAMES)}


@dataclass(frozen=True)
class MapEntry:
    """One value of a matcher: a key of str_eq / str_prefix / str_postfix / addr_lpm."""

    map: str
    id: int
    data: bytes
    prefixlen: int = 0  # bits of data that must match (LPM tries)


@dataclass(frozen=True)
class ActionCode:
    """What the kernel does when a selector matches."""

    post: bool = True
    signal: int | None = None  # Sigkill: 9, Signal: argSig
    action: wire.Action = wire.Action.POST
    rate_limit_ns: int = 0
    rate_limit_scope: int = 0  # 0 thread, 1 process, 2 global
    kernel_stack: bool = False
    user_stack: bool = False
    override: int | None = None  # Override: the error the hooked function returns instead
    notify: tuple[int, int] | None = None  # NotifyEnforcer: (error, signal) for the enforcer call
    sock: tuple[int, bool] | None = None  # TrackSock (True) / UntrackSock (False): the sock argument's slot
    rebase_caps: bool = False  # matchCapabilityChanges matched: the current capabilities become the baseline
    rebase_ns: bool = False  # matchNamespaceChanges matched: likewise the namespaces
    agent: bool = False  # GetUrl / DnsLookup: the agent acts on the posted event (tetra/agent/user_actions.py)


@dataclass(frozen=True)
class SelectorCode:
    entry: str  # C condition on arguments and process
    ret: str  # C condition on the return value ("1" when none)
    actions: ActionCode


@dataclass
class SelectorCompiler:
    """Compiles the selectors of every hook of one policy; ids are unique per policy."""

    btf: Btf | None
    spec: Spec  # the policy's lists, for InMap's list:NAME values
    support: KernelSupport = field(default_factory=KernelSupport.everything)
    lists: KernelLists = field(default_factory=KernelLists)
    entries: list[MapEntry] = field(default_factory=list)
    issues: list[PolicyIssue] = field(default_factory=list)
    _next_id: int = 1

    def compile(self, hook: HookPlan) -> tuple[SelectorCode, ...]:
        if not hook.selectors:
            return (SelectorCode("1", "1", ActionCode()),)
        codes = tuple(self._selector(hook, sel) for sel in hook.selectors)
        for name in {entry.map for entry in self.entries}:
            count = sum(1 for entry in self.entries if entry.map == name)
            if count > wire.VALUE_ENTRIES:
                self._error(hook.loc, f"the policy has {count} values for {name}, at most {wire.VALUE_ENTRIES}")
        return codes

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _error(self, loc: Location, message: str) -> str:
        self.issues.append(PolicyIssue(loc, message))
        return "0"

    def _selector(self, hook: HookPlan, sel: Selector) -> SelectorCode:
        parts = [self._match_arg(hook, m) for m in sel.match_args]
        parts += [self._match_pids(m.operator, m.values, m.is_namespace_pid, m.follow_forks, m.loc)
                  for m in sel.match_pids]
        parts += [self._match_binaries(m.operator, m.values, m.follow_children, m.loc, parent=False)
                  for m in sel.match_binaries]
        parts += [self._match_binaries(m.operator, m.values, m.follow_children, m.loc, parent=True)
                  for m in sel.match_parent_binaries]
        parts += [self._match_namespace(m.namespace, m.operator, m.values, m.loc) for m in sel.match_namespaces]
        parts += [self._match_caps(m.type, m.operator, m.values, m.is_namespace_capability, m.loc)
                  for m in sel.match_capabilities]
        parts += [self._match_caps(m.type, m.operator, m.values, m.is_namespace_capability, m.loc, changes=True)
                  for m in sel.match_capability_changes]
        parts += [self._match_ns_changes(m.operator, m.values) for m in sel.match_namespace_changes]
        for m in sel.match_data:
            parts.append(self._error(m.loc, "matchData is not supported by tetra yet"))
        rets = [self._match_return(hook, m) for m in sel.match_return_args]
        if sel.match_return_args and hook.return_attach is None:
            rets = [self._error(sel.loc, "matchReturnArgs needs 'return: true' on the hook")]
        if sel.match_return_actions:
            self._error(sel.loc, "matchReturnActions is not supported by tetra yet")
        actions = replace(self._actions(hook, sel.match_actions), rebase_caps=bool(sel.match_capability_changes),
                          rebase_ns=bool(sel.match_namespace_changes))
        if actions.override is not None and hook.return_attach and sel.match_return_args:
            self._error(sel.loc, "an Override selector acts when the call starts (the call does not run): it cannot "
                                 "have matchReturnArgs")
        return SelectorCode(_all(parts), _all(rets), actions)

    # --- matchArgs -----------------------------------------------------------

    def _slot(self, hook: HookPlan, m: MatchArg) -> tuple[int, ArgPlan] | None:
        """The argument a filter reads: by its index, or (tracepoints, as Tetragon
        translates field indexes to positions) by its position in ``args``."""
        order = hook.blob_order
        for slot, arg in enumerate(order):
            if arg.spec.index == m.index:
                return slot, arg
        index = m.index or 0
        if hook.event == PROCESS_TRACEPOINT.key and index < len(hook.args):
            arg = hook.args[index]
            return order.index(arg), arg
        return None

    def _match_arg(self, hook: HookPlan, m: MatchArg) -> str:
        if m.args:
            return self._error(m.loc, "matchArgs 'args' (several arguments) is not supported by tetra yet")
        found = self._slot(hook, m)
        if found is None:
            return self._error(m.loc, f"no argument with index {m.index} on this hook")
        slot, arg = found
        if arg.at_return:
            return self._error(m.loc, "a returnCopy argument is only known at return: use matchReturnArgs")
        encoding = arg.atype.encoding
        if encoding is Encoding.INT:
            cast = "__u64" if arg.atype.unsigned else "__s64"
            return self._int_op(f"(({cast})g->ival[{slot}])", m, unsigned=arg.atype.unsigned)
        if encoding in (Encoding.BYTES, Encoding.PATH):
            return self._str_op(m, lambda ident, op: f"tetra_slot_match(g, {slot}, {ident}, {op})")
        if encoding in (Encoding.SOCK, Encoding.SKB):
            return self._tuple_op(slot, m)
        if encoding is Encoding.SOCKADDR:
            return self._sockaddr_op(slot, m)
        return self._error(m.loc, f"matchArgs does not apply to a {arg.atype.name} argument")

    def _match_return(self, hook: HookPlan, m: MatchArg) -> str:
        """The return value: an integer, or the text a returned pointer points to (in the slot after the
        arguments, codegen.py's _put_returned), with the string operators."""
        if hook.return_ptr is not None:
            slot = len(hook.blob_order)
            return self._str_op(m, lambda ident, op: f"tetra_slot_match(g, {slot}, {ident}, {op})")
        if hook.return_arg is None or hook.return_arg.encoding is not Encoding.INT:
            return self._error(m.loc, "matchReturnArgs compares integer return values and returned strings only")
        return self._int_op("tetra_ret(g)", m, unsigned=hook.return_arg.unsigned)

    def _int_op(self, value: str, m: MatchArg, unsigned: bool) -> str:
        if m.operator in ("InMap", "NotInMap"):
            return self._in_map(value, m, unsigned)
        if len(m.values) > INT_VALUES_MAX:
            return self._error(m.loc, f"{len(m.values)} values: integer operators compare at most "
                                      f"{INT_VALUES_MAX} (they become C comparisons; strings and addresses have no "
                                      "such limit)")
        try:
            if m.operator in ("InRange", "NotInRange"):
                ranges = [_range(v) for v in m.values]
                terms = [f"({_literal(lo, unsigned)} <= {value} && {value} <= {_literal(hi, unsigned)})"
                         for lo, hi in ranges]
                return _any(terms) if m.operator == "InRange" else f"!{_any(terms)}"
            numbers = [_literal(_int(v, unsigned), unsigned) for v in m.values]
        except ValueError as err:
            return self._error(m.loc, str(err))
        ops: dict[str, Callable[[], str]] = {
            "Equal": lambda: _any([f"{value} == {n}" for n in numbers]),
            "NotEqual": lambda: _all([f"{value} != {n}" for n in numbers]),
            "GT": lambda: f"({value} > {numbers[0]})",
            "GreaterThan": lambda: f"({value} > {numbers[0]})",
            "LT": lambda: f"({value} < {numbers[0]})",
            "LessThan": lambda: f"({value} < {numbers[0]})",
            "Mask": lambda: _any([f"(({value} & {n}) != 0)" for n in numbers]),
        }
        if m.operator not in ops:
            return self._error(m.loc, f"operator {m.operator} does not apply to an integer argument")
        return ops[m.operator]()

    def _in_map(self, value: str, m: MatchArg, unsigned: bool) -> str:
        """InMap/NotInMap: numbers, ``min:max`` ranges and ``list:NAME`` (a syscall list: its numbers)."""
        ranges: list[tuple[int, int]] = []
        try:
            for text in m.values:
                if text.startswith(LIST_PREFIX):
                    ranges += [(n, n) for n in self.lists.numbers(self.spec, text[len(LIST_PREFIX):])]
                else:
                    ranges.append(_range(text))
        except (ListError, ValueError) as err:
            return self._error(m.loc, str(err))
        if len(ranges) > INT_VALUES_MAX:
            return self._error(m.loc, f"{m.operator} with {len(ranges)} values (lists expanded): integer operators "
                                      f"compare at most {INT_VALUES_MAX} (they become C comparisons)")
        terms = [f"({value} == {_literal(lo, unsigned)})" if lo == hi else
                 f"({_literal(lo, unsigned)} <= {value} && {value} <= {_literal(hi, unsigned)})" for lo, hi in ranges]
        return _any(terms) if m.operator == "InMap" else f"!{_any(terms)}"

    def _str_op(self, m: MatchArg, call: Callable[[int, int], str], ops: dict[str, tuple[int, bool]] = STR_OPS,
                values: tuple[str, ...] | None = None) -> str:
        if m.operator not in ops:
            return self._error(m.loc, f"operator {m.operator} does not apply to a string argument")
        op, negate = ops[m.operator]
        ident = self._id()
        for value in values if values is not None else m.values:
            data = value.encode()
            if op == 2:
                if len(data) > MAX_POSTFIX_VALUE:  # binaries: the loader checks only their path length
                    return self._error(m.loc, f"postfix {value!r} is longer than {MAX_POSTFIX_VALUE} bytes")
                data = data[::-1]
            elif len(data) >= wire.KEY_MAX:
                return self._error(m.loc, f"value {value[:40]!r}... is longer than {wire.KEY_MAX - 1} bytes")
            prefixlen = 32 + 8 * len(data) if op else 0
            self.entries.append(MapEntry(STR_MAPS[op], ident, data, prefixlen))
        expr = call(ident, op)
        return f"!{expr}" if negate else expr

    def _sockaddr_op(self, slot: int, m: MatchArg) -> str:
        op = m.operator
        try:
            if op == "Family":
                families = [ADDRESS_FAMILIES[v] if v in ADDRESS_FAMILIES else _int(v, False) for v in m.values]
                return _any([f"g->ival[{slot}] == {f}" for f in families])
            if op in ("SAddr", "DAddr", "NotSAddr", "NotDAddr"):
                id4, id6 = self._cidrs(m.values)
                expr = f"tetra_addr_match(g, {slot}, {id4}, {id6})"
                return f"!{expr}" if op.startswith("Not") else expr
            port = f"tetra_sockaddr_port(g, {slot})"
            if op in ("SPort", "DPort", "NotSPort", "NotDPort"):
                expr = _in_ranges(port, m.values)
                return f"!{expr}" if op.startswith("Not") else expr
            if op in ("SPortPriv", "DPortPriv"):
                return f"({port} < 1024)"
            if op in ("NotSportPriv", "NotSPortPriv", "NotDPortPriv"):
                return f"({port} >= 1024)"
        except (ValueError, KeyError) as err:
            return self._error(m.loc, f"bad value for {op}: {err}")
        return self._error(m.loc, f"operator {op} does not apply to a sockaddr argument")

    def _cidrs(self, values: tuple[str, ...]) -> tuple[int, int]:
        """Map entries for a list of addresses/CIDRs; (IPv4 id, IPv6 id)."""
        id4, id6 = self._id(), self._id()
        for value in values:
            net = ipaddress.ip_network(value, strict=False)
            ident = id4 if net.version == 4 else id6
            self.entries.append(MapEntry("addr_lpm", ident, net.network_address.packed, 32 + net.prefixlen))
        return id4, id6

    def _tuple_op(self, slot: int, m: MatchArg) -> str:
        """Operators on the connection of a sock or skb argument."""
        op = m.operator
        negate = op.startswith("Not")
        base = op[3:] if negate else op
        try:
            if base in ("SAddr", "DAddr"):
                id4, id6 = self._cidrs(m.values)
                expr = f"tetra_tuple_addr_match(g, {slot}, {int(base == 'DAddr')}, {id4}, {id6})"
            elif base in ("SPort", "DPort"):
                port = f"tetra_tuple_field(g, {slot}, {1 if base == 'SPort' else 2})"
                expr = _in_ranges(port, m.values)
            elif base.lower() in ("sportpriv", "dportpriv"):
                expr = f"(tetra_tuple_field(g, {slot}, {1 if base.lower() == 'sportpriv' else 2}) < 1024)"
            elif base in ("Family", "Protocol", "State"):
                names = {"Family": ADDRESS_FAMILIES, "Protocol": PROTOCOLS, "State": TCP_STATES}[base]
                which = {"Family": 0, "Protocol": 3, "State": 4}[base]
                numbers = [names[v] if v in names else _int(v, False) for v in m.values]
                expr = _any([f"tetra_tuple_field(g, {slot}, {which}) == {n}" for n in numbers])
            else:
                return self._error(m.loc, f"operator {op} does not apply to a sock or skb argument")
        except (ValueError, KeyError) as err:
            return self._error(m.loc, f"bad value for {op}: {err}")
        return f"!{expr}" if negate else expr

    # --- process filters -----------------------------------------------------

    def _match_pids(self, operator: str, values: tuple[int, ...], namespace: bool, follow: bool,
                    loc: Location) -> str:
        ident = self._id()
        for value in values:
            self.entries.append(MapEntry("pid_set", ident, int(value).to_bytes(4, "little")))
        if follow:
            expr = f"tetra_lineage_pid_in({ident}, {int(namespace)})"
        else:
            pid = "tetra_ns_pid()" if namespace else "(__u32)(bpf_get_current_pid_tgid() >> 32)"
            expr = f"tetra_pid_in({ident}, {pid})"
        return expr if operator == "In" else f"!{expr}"

    def _match_binaries(self, operator: str, values: tuple[str, ...], follow: bool, loc: Location,
                        parent: bool) -> str:
        """followChildren: the process or an ancestor (up to 16 generations) runs a listed binary."""
        fake = MatchArg(None, (), operator, values, loc)
        if follow and parent:
            return self._error(loc, "matchParentBinaries followChildren is not supported by tetra yet")
        if follow:
            return self._str_op(fake, lambda ident, op: f"tetra_lineage_binary_match(g, {ident}, {op})",
                                ops=BINARY_OPS)
        return self._str_op(fake, lambda ident, op: f"tetra_binary_match(g, {ident}, {op}, {int(parent)})",
                            ops=BINARY_OPS)

    def _match_namespace(self, name: str, operator: str, values: tuple[str, ...], loc: Location) -> str:
        if self.btf is None:
            return self._error(loc, "matchNamespaces needs the kernel's BTF")
        if name == "Pid":
            inum, proc = "tetra_pid_ns_inum()", "pid"
        elif name == "User":
            inum, proc = "tetra_user_ns_inum()", "user"
        elif name in NAMESPACES:
            member, struct, proc = NAMESPACES[name]
            try:
                off_member = self.btf.offset_of(f"nsproxy.{member}")
                off_inum = self.btf.offset_of(f"{struct}.ns.inum")
            except Exception as err:  # BtfError: this kernel lacks the namespace
                return self._error(loc, f"namespace {name}: {err}")
            inum = f"tetra_nsproxy_inum({off_member}, {off_inum})"
        else:
            return self._error(loc, f"unknown namespace {name}")
        numbers = []
        for value in values:
            if value != "host_ns":
                numbers.append(_int(value, False))
                continue
            inode = host_namespace(proc)
            if inode is None:
                return self._error(loc, f"cannot read the host's {proc} namespace from /proc/1/ns or /proc/self/ns")
            numbers.append(inode)
        if operator == "In":
            return _any([f"{inum} == {n}" for n in numbers])
        return _all([f"{inum} != {n}" for n in numbers])

    def _match_caps(self, kind: str, operator: str, values: tuple[str, ...], in_namespace: bool,
                    loc: Location, changes: bool = False) -> str:
        """matchCapabilities (the set now) or, ``changes``, matchCapabilityChanges (the set against the
        process's at exec, lib/execve.h). isNamespaceCapability: only in a user namespace other than the
        host's (the agent's view of it, as for matchNamespaces host_ns)."""
        mask = 0
        for value in values:
            if value not in CAPABILITY_NUMBERS:
                return self._error(loc, f"unknown capability {value}")
            mask |= 1 << CAPABILITY_NUMBERS[value]
        offset = f"TETRA_OFF_CRED_CAP_{kind.upper()}"
        if changes:
            which = _CAP_SETS[kind.lower()]
            expr = f"tetra_caps_changed({which}, {offset}, {mask}ULL, {int(operator == 'In')})"
        else:
            caps = f"tetra_caps({offset})"
            expr = f"(({caps} & {mask}ULL) != 0)" if operator == "In" else f"(({caps} & {mask}ULL) == 0)"
        if not in_namespace:
            return expr
        host = host_namespace("user")
        if host is None:
            return self._error(loc, "isNamespaceCapability: cannot read the host's user namespace from /proc/1/ns "
                                    "or /proc/self/ns")
        return f"(tetra_user_ns_inum() != {host} && {expr})"

    def _match_ns_changes(self, operator: str, values: tuple[str, ...]) -> str:
        """matchNamespaceChanges: In, one of the named namespaces is not the process's at exec; NotIn, one of
        the others is not (names were checked by the loader; bits in struct tetra_ns order)."""
        named = 0
        for value in values:
            named |= 1 << _NS_BITS[value.lower()]
        mask = named if operator == "In" else ~named & ((1 << len(NS_NAMES)) - 1)
        return f"tetra_ns_changed({mask})"

    # --- actions -------------------------------------------------------------

    def _override(self, hook: HookPlan, action: Action) -> int | None:
        """The error an Override returns, if this hook's mechanism can return it."""
        error = action.arg_error if action.arg_error is not None else -1
        if hook.mechanism is Mechanism.LSM:
            return error
        if hook.mechanism is Mechanism.CGROUP_SOCK_ADDR:
            if not -4095 <= error <= -1:
                self._error(action.loc, f"Override argError {error}: {hook.function_name} runs as a cgroup "
                                        f"{hook.attach} program, whose call can only fail with a negative errno "
                                        "(-4095..-1; -1 is EPERM)")
                return None
            return error
        if hook.mechanism is Mechanism.KPROBE and self.support.override:
            if not self.support.may_inject(hook.attach):
                self._error(action.loc, f"Override: {hook.attach} is not error-injectable on this kernel "
                                        "(see /sys/kernel/debug/error_injection/list); use an LSM hook")
                return None
            return error
        reason = self.support.reasons.get("override") or f"{hook.mechanism.value} hooks cannot change a result"
        self._error(action.loc, f"Override on {hook.function_name} needs a kprobe with bpf_override_return or a "
                                f"BPF LSM hook, and this hook runs as a {hook.mechanism.value}: {reason}")
        return None

    def _actions(self, hook: HookPlan, actions: tuple[Action, ...]) -> ActionCode:
        """Fold a selector's actions into what the kernel does (later ones refine earlier)."""
        code = ActionCode()
        for action in actions:
            name = action.action
            kind = wire.ACTIONS_BY_WORD.get(name)
            if hook.mechanism is Mechanism.CGROUP_SOCK_ADDR and _tracing_only(action):
                self._error(action.loc, f"{hook.function_name} runs here as a cgroup {hook.attach} program, which "
                                        "cannot send signals or record stacks: deny the call with Override")
                continue
            if kind is wire.Action.OVERRIDE:
                code = replace(code, action=kind, override=self._override(hook, action))
            elif kind is wire.Action.POST:
                code = replace(code, post=True, rate_limit_ns=self._rate(action),
                               rate_limit_scope=_scope(action.rate_limit_scope),
                               kernel_stack=action.kernel_stack_trace, user_stack=action.user_stack_trace)
            elif kind is wire.Action.NOPOST:
                code = replace(code, post=False, action=kind)
            elif kind is wire.Action.SIGKILL:
                code = replace(code, signal=9, action=kind)
            elif kind is wire.Action.SIGNAL:
                code = replace(code, signal=int(action.arg_sig or 0), action=kind)
            elif kind is wire.Action.NOTIFY_ENFORCER:
                code = replace(code, notify=self._notify(action), action=kind)
            elif kind in wire.AGENT_ACTIONS:  # the event is posted; the agent acts on it (its URL stays there)
                code = replace(code, action=kind, agent=True)
            elif name in ("TrackSock", "UntrackSock"):
                slot = self._sock_slot(hook, action)
                if slot is not None:
                    code = replace(code, sock=(slot, name == "TrackSock"))
            elif name in DEPRECATED_ACTIONS:
                continue  # FollowFD and kin: fd arguments are resolved without them (the loader warns)
            else:
                self._error(action.loc, f"action {name} is not supported by tetra yet")
        if code.agent and not code.post:
            agent = next(a for a in actions if wire.ACTIONS_BY_WORD.get(a.action) in wire.AGENT_ACTIONS)
            self._error(agent.loc, f"action {agent.action} is made by the agent when the event arrives: "
                                   "the selector cannot also have NoPost")
        return code

    def _sock_slot(self, hook: HookPlan, action: Action) -> int | None:
        """The slot of the sock argument TrackSock/UntrackSock name by argSock (0 when unset, as in Tetragon)."""
        index = action.arg_sock or 0
        for slot, arg in enumerate(hook.blob_order):
            if arg.spec.index == index and arg.atype.encoding is Encoding.SOCK and not arg.at_return \
                    and hook.mechanism is not Mechanism.CGROUP_SOCK_ADDR:
                return slot
        self._error(action.loc, f"{action.action} needs argSock to name a sock or socket argument of the hook "
                                f"read at entry (argSock {index} is not one)")
        return None

    def _notify(self, action: Action) -> tuple[int, int] | None:
        """(error, signal) of a NotifyEnforcer: at least one, the error a negative errno."""
        error, sig = action.arg_error or 0, int(action.arg_sig or 0)
        if not error and not sig:
            self._error(action.loc, "NotifyEnforcer needs argError (the enforcer call's error) or argSig")
            return None
        if not -4095 <= error <= 0:
            self._error(action.loc, f"NotifyEnforcer argError {error}: the call can only fail with a negative errno")
            return None
        return error, sig

    def _rate(self, action: Action) -> int:
        if not action.rate_limit:
            return 0
        match = _DURATION.fullmatch(action.rate_limit.strip())
        if not match:
            self._error(action.loc, f"rateLimit {action.rate_limit!r} is not a duration such as 10s, 1m, 1h")
            return 0
        unit = {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]
        return int(match[1]) * unit * 1_000_000_000


def _tracing_only(action: Action) -> bool:
    """Signals and stack traces: helpers of tracing programs, not of cgroup programs."""
    kind = wire.ACTIONS_BY_WORD.get(action.action)
    return kind in (wire.Action.SIGKILL, wire.Action.SIGNAL) or action.kernel_stack_trace or action.user_stack_trace


def host_namespace(name: str) -> int | None:
    """The host's namespace inode: init's, or (when init's is hidden from us, as in
    a sandbox) the agent's own, which is the host's when it runs with hostPID."""
    for pid in ("1", "self"):
        try:
            return os.stat(f"/proc/{pid}/ns/{name}").st_ino
        except OSError:
            continue
    return None


def _scope(scope: str | None) -> int:
    return {"thread": 0, "process": 1, "global": 2}.get(scope or "thread", 0)


def _int(text: str, unsigned: bool) -> int:
    """Integers as Tetragon (Go) reads them: 0x.., 0o.., 0b.., and 0.. octal."""
    value = go_int(text.strip())
    if value is None:
        raise ValueError(f"{text!r} is not an integer")
    low, high = (0, 2**64 - 1) if unsigned else (-(2**63), 2**63 - 1)
    if not low <= value <= high:
        raise ValueError(f"{text} is out of range")
    return value


def _literal(value: int, unsigned: bool) -> str:
    """A C integer literal of the comparison's type (the most negative one spelled out)."""
    if unsigned:
        return f"{value}ULL"
    if value == -(2**63):
        return "(-9223372036854775807LL - 1)"
    return f"{value}LL"


def _range(text: str) -> tuple[int, int]:
    """"80" -> (80, 80); "1000:2000" -> (1000, 2000)."""
    lo, _, hi = text.partition(":")
    low = _int(lo, unsigned=False)
    high = _int(hi, unsigned=False) if hi else low
    if high < low:
        raise ValueError(f"range {text} is empty")
    return low, high


def _in_ranges(value: str, ranges: tuple[str, ...]) -> str:
    """value within any of the "lo:hi" (or single) port ranges."""
    return _any([f"({lo} <= {value} && {value} <= {hi})" for lo, hi in map(_range, ranges)])


def _any(terms: list[str]) -> str:
    return "(" + " || ".join(terms) + ")" if terms else "0"


def _all(terms: list[str]) -> str:
    return "(" + " && ".join(terms) + ")" if terms else "1"
