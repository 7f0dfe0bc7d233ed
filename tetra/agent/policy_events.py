"""process_kprobe / process_tracepoint / process_uprobe / process_lsm / process_usdt events.

The kernel says which policy and hook an event came from; the registry of
loaded policies turns that into Tetragon's event: function or tracepoint name,
typed arguments, return value, action, policy name, message, tags, stacks.
The registry owns each hook's argument decoder: built when its policy is added,
gone when it is removed, so a long-running agent that loads and unloads
policies keeps only what is loaded. An event's arguments are decoded only when
a sink asks for it, straight into its JSON line when only line sinks listen
(each argument's encoder and the hook's fixed fields chosen at load), into
Tetragon's argument objects for the sinks that read dicts.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tetra.agent.stats import MODE_WORDS, ActionKey
from tetra.agent.user_actions import agent_actions
from tetra.compiler.plan import HookPlan
from tetra.compiler.program import CompiledPolicy
from tetra.decode.generic import ArgsDecoder, GenericRecord
from tetra.export.encode import fragment
from tetra.policy.model import Action
from tetra.process.events import ProcessEvent
from tetra.process.model import Process
from tetra.wire.constants import GEN_MONITOR, GEN_PROTECTED, GEN_RETURN, TETRAGON_ACTIONS, TETRAGON_UNKNOWN_ACTION
from tetra.wire.events import PROCESS_TRACEPOINT, PROCESS_UPROBE, PROCESS_USDT

Json = dict[str, Any]
# stack id, pid, user? -> symbolized frames ("name+0x1f")
Symbolizer = Callable[[int, int, bool], list[str]]


@dataclass
class LoadedPolicy:
    compiled: CompiledPolicy
    symbolize: Symbolizer


@dataclass
class PolicyHooks:
    """What the registry keeps of one loaded policy: its name, its hooks by id and their decoders."""

    name: str
    hooks: tuple[HookPlan, ...]
    symbolize: Symbolizer
    decoders: tuple[ArgsDecoder, ...] = field(init=False)
    fields: tuple[Json, ...] = field(init=False)  # each hook's name fields, what its events start with
    ends: tuple[Json, ...] = field(init=False)  # and what they end with: policy name, message, tags
    fields_json: tuple[bytes, ...] = field(init=False)
    ends_json: tuple[bytes, ...] = field(init=False)
    # each hook's GetUrl / DnsLookup actions by selector, made by the agent when the event arrives
    agent_actions: tuple[tuple[tuple[Action, ...], ...], ...] = field(init=False)

    def __post_init__(self) -> None:
        self.decoders = tuple(ArgsDecoder(hook) for hook in self.hooks)
        self.agent_actions = tuple(agent_actions(hook) for hook in self.hooks)
        self.fields = tuple(_hook_fields(hook) for hook in self.hooks)
        self.ends = tuple(_hook_ends(self.name, hook) for hook in self.hooks)
        # the same as JSON members, each after a comma
        self.fields_json = tuple(b"," + fragment(fields)[1:-1] for fields in self.fields)
        self.ends_json = tuple(b"," + fragment(ends)[1:-1] for ends in self.ends)


class PolicyListener(Protocol):
    """Told of every policy added to or removed from the registry (the ring recorder,
    tetra/observer/recording.py, writes them down for a replay)."""

    def policy_added(self, policy_id: int, name: str, hooks: Sequence[HookPlan]) -> None: ...
    def policy_removed(self, policy_id: int) -> None: ...


def _frames(symbols: list[str]) -> list[Json]:
    """bcc's "name+0x1f" as Tetragon's StackTraceEntry: the offset a uint64 (a JSON string), 0 left out."""
    frames = []
    for symbol in symbols:
        name, _, offset = symbol.partition("+")
        try:
            value = int(offset, 16) if offset else 0
        except ValueError:
            value = 0
        frames.append({"symbol": name, "offset": str(value)} if value else {"symbol": name})
    return frames


def _hook_fields(hook: HookPlan) -> Json:
    if hook.event == PROCESS_TRACEPOINT.key:
        return {"subsys": hook.subsys, "event": hook.tp_event}
    if hook.event == PROCESS_UPROBE.key:
        return {"path": hook.uprobe_path, "symbol": hook.function_name}
    if hook.event == PROCESS_USDT.key:
        provider, _, name = hook.attach.partition(":")
        return {"path": hook.uprobe_path, "provider": provider, "name": name}
    return {"function_name": hook.function_name}


def _hook_ends(policy: str, hook: HookPlan) -> Json:
    """The fields after the action; shared by the hook's events (which sinks do not modify)."""
    ends: Json = {"policy_name": policy}
    if hook.message:
        ends["message"] = hook.message
    if hook.tags:
        ends["tags"] = list(hook.tags)
    return ends


class PolicyEvents:
    """Loaded policies by id, and the events built from their records."""

    def __init__(self) -> None:
        self.policies: dict[int, PolicyHooks] = {}
        self.listeners: list[PolicyListener] = []

    def add(self, policy_id: int, loaded: LoadedPolicy) -> None:
        self.add_hooks(policy_id, loaded.compiled.policy.name, loaded.compiled.hooks, loaded.symbolize)

    def add_hooks(self, policy_id: int, name: str, hooks: Sequence[HookPlan], symbolize: Symbolizer) -> None:
        """Register a policy by what its events need (a replay has no CompiledPolicy: only this)."""
        self.policies[policy_id] = PolicyHooks(name, tuple(hooks), symbolize)
        for listener in self.listeners:
            listener.policy_added(policy_id, name, hooks)

    def remove(self, policy_id: int) -> None:
        """Its decoders go with it; its events still in the ring are then policy_unknown."""
        if self.policies.pop(policy_id, None) is not None:
            for listener in self.listeners:
                listener.policy_removed(policy_id)

    def build(self, rec: GenericRecord, process: Process | None, parent: Process | None, node: str,
              time: str) -> "PolicyEvent | None":
        """The event of ``rec`` (of ``process``, None if unknown), or None when the policy or hook
        is no longer loaded. Its arguments are decoded when a sink asks for the event."""
        loaded = self.policies.get(rec.policy_id)
        if loaded is None or rec.hook_id >= len(loaded.hooks):
            return None
        return PolicyEvent(rec, loaded, process, parent, node, time)


ACTION_JSON = {name: b',"action":"%s"' % name.encode()
                for name in (*TETRAGON_ACTIONS.values(), TETRAGON_UNKNOWN_ACTION)}


class PolicyEvent(ProcessEvent):
    """A policy hook's event: the fields after process and parent made from the record when a
    sink asks, as a dict or straight as JSON (the hook's fixed parts encoded at load)."""

    __slots__ = ("rec", "loaded", "action", "_stacks")

    def __init__(self, rec: GenericRecord, loaded: PolicyHooks, process: Process | None, parent: Process | None,
                 node: str, time: str) -> None:
        self._data = self._line = None  # ProcessEvent.__init__, inlined: one call less per event
        self.kind = loaded.hooks[rec.hook_id].event
        self.process, self.pid, self.tid, self.parent = process, rec.pid, rec.tid, parent
        self.tail, self.node, self.time, self.ancestors = {}, node, time, ()
        self.rec = rec
        self.loaded = loaded
        self.action = TETRAGON_ACTIONS.get(rec.action, TETRAGON_UNKNOWN_ACTION)
        self._stacks: Json | None = None

    def action_key(self) -> ActionKey:
        """What the pipeline counts the event by (the compiled path counts the same per hook)."""
        return ActionKey(self.loaded.name, MODE_WORDS[self.rec.flags & GEN_MONITOR != 0], self.action)

    def _tail(self) -> Json:
        rec, loaded = self.rec, self.loaded
        hook = loaded.hooks[rec.hook_id]
        body = loaded.fields[rec.hook_id].copy()
        args = loaded.decoders[rec.hook_id].decode(rec.blob)
        if args:  # protojson leaves out empty lists; so does Tetragon
            body["args"] = args
        flags = rec.flags
        if flags & GEN_RETURN and hook.return_arg is not None:
            body["return"] = loaded.decoders[rec.hook_id].returned(rec.blob, rec.ret)
        body["action"] = self.action
        if flags & GEN_MONITOR:  # the action is what enforcement would have done
            body["policy_mode"] = "monitor"
        if flags & GEN_PROTECTED:  # PID 1 or the agent: the action was withheld
            body["protected_process"] = True
        body.update(loaded.ends[rec.hook_id])
        body.update(self._stack_traces())
        return body

    def _tail_json(self) -> bytes:
        rec, loaded = self.rec, self.loaded
        hook = loaded.hooks[rec.hook_id]
        parts = [loaded.fields_json[rec.hook_id]]
        args = loaded.decoders[rec.hook_id].encode(rec.blob)
        if args:
            parts += (b',"args":', args)
        flags = rec.flags
        if flags & GEN_RETURN and hook.return_arg is not None:
            parts += (b',"return":', loaded.decoders[rec.hook_id].returned_json(rec.blob, rec.ret))
        parts.append(ACTION_JSON[self.action])
        if flags & GEN_MONITOR:
            parts.append(b',"policy_mode":"monitor"')
        if flags & GEN_PROTECTED:
            parts.append(b',"protected_process":true')
        parts.append(loaded.ends_json[rec.hook_id])
        stacks = self._stack_traces()
        if stacks:
            parts += (b",", fragment(stacks)[1:-1])
        return b"".join(parts)

    def _stack_traces(self) -> Json:
        """kernel_stack_trace and user_stack_trace, those the kernel sent: symbolized once."""
        if self._stacks is None:
            rec = self.rec
            self._stacks = {}
            if rec.kernel_stack_id >= 0 or rec.user_stack_id >= 0:
                for key, stack_id, user in (("kernel_stack_trace", rec.kernel_stack_id, False),
                                            ("user_stack_trace", rec.user_stack_id, True)):
                    frames = _frames(self.loaded.symbolize(stack_id, rec.pid, user)) if stack_id >= 0 else []
                    if frames:
                        self._stacks[key] = frames
        return self._stacks
