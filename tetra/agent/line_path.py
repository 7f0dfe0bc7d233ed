"""The compiled line path: which hooks it takes, and when it may run.

The compiled module (tetra/_speed/lines.pyx) writes a policy event's JSON line
without building the event; it only executes the pieces decided here, once per
hook, from the same helpers the Python path uses (tetra/decode/generic.py for
the arguments, tetra/agent/policy_events.py for the hook's fields), so the two
write the same bytes. It runs for a batch only when every sink takes lines
(``Pipeline.line_targets``): with filters, compact output or a gRPC subscriber
the records go the Python way, where the event's dict is made for them.

    ring ──> LinePath.drain_ring ──┬─ handled: lines ──> the line sinks' hand-offs
                                   └─ the rest, in order ──> Pipeline.handle_raw
"""

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tetra._speed import lines_module
from tetra.agent.policy_events import ACTION_JSON, PolicyHooks
from tetra.agent.stats import MODE_WORDS, ActionKey
from tetra.export.sinks import LineTarget
from tetra.status.model import LATENCY_BUCKETS
from tetra.compiler.argtypes import ArgType, Encoding
from tetra.compiler.plan import ArgPlan, HookPlan
from tetra.decode.generic import TEXT_INT_KEYS, int_json_ends, int_width, is_text, text_json, text_json_ends
from tetra.process.events import closing, opening
from tetra.wire.constants import TETRAGON_ACTIONS, TETRAGON_UNKNOWN_ACTION, Op

if TYPE_CHECKING:
    from tetra.agent.pipeline import Pipeline

# Integers the line path writes as they are; capabilities and syscall ids carry names.
_PLAIN_INT_KEYS = frozenset({"int_arg", "uint_arg", "long_arg", "size_arg"})


def _int_line(lines: ModuleType, atype: ArgType, label: str | None) -> Any:
    """An integer's encoder: the same JSON as generic.py's ``_int_readers``."""
    kind = lines.INT_TEXT if atype.json_key in TEXT_INT_KEYS else lines.INT
    return lines.ArgLine(kind, int_width(atype), atype.unsigned, *int_json_ends(atype, label))


def _arg_line(lines: ModuleType, arg: ArgPlan) -> Any:
    """The argument's encoder, or None where only the Python path has one."""
    atype = arg.atype
    if atype.encoding is Encoding.INT and atype.json_key in _PLAIN_INT_KEYS:
        return _int_line(lines, atype, arg.label)
    if is_text(atype):
        return lines.ArgLine(lines.TEXT, 0, False, *text_json_ends(atype, arg.label))
    return None


def hook_line(lines: ModuleType, loaded: PolicyHooks, hook_id: int) -> Any:
    """The compiled module's HookLine for one hook, or None: the Python path takes its events."""
    hook: HookPlan = loaded.hooks[hook_id]
    if not loaded.decoders[hook_id].in_order:  # returnCopy arguments come last in the blob
        return None
    if loaded.agent_actions[hook_id]:  # GetUrl / DnsLookup: the Python path hands them to the agent's worker
        return None
    args = tuple(_arg_line(lines, arg) for arg in hook.args)
    if any(arg is None for arg in args):
        return None
    ret = hook.return_arg
    ret_line = None
    if ret is not None and ret.encoding is Encoding.INT and ret.json_key in _PLAIN_INT_KEYS:
        ret_line = _int_line(lines, ret, None)
    return lines.HookLine(hook.event, loaded.name, opening(hook.event), loaded.fields_json[hook_id],
                          loaded.ends_json[hook_id], args, ret_line, ret is not None and ret_line is None)


class LinePath:
    """The compiled module bound to one pipeline: its cache, its policies, its counters."""

    def __init__(self, lines: ModuleType, pipeline: "Pipeline") -> None:
        self.pipeline = pipeline
        policies = pipeline.policies.policies
        names = [*(TETRAGON_ACTIONS.get(n, TETRAGON_UNKNOWN_ACTION) for n in range(max(TETRAGON_ACTIONS) + 1)),
                 TETRAGON_UNKNOWN_ACTION]

        def for_hook(policy_id: int, hook_id: int) -> Any:
            loaded = policies.get(policy_id)
            if loaded is None or hook_id >= len(loaded.hooks):
                return None  # the Python path counts it (policy_unknown)
            return hook_line(lines, loaded, hook_id)

        self.encoder = lines.LineEncoder(
            by_pid=pipeline.cache.by_pid, parent_of=pipeline.cache.parent_of, hook_line=for_hook,
            text_json=text_json, stats=pipeline.stats, action_key=ActionKey, mode_names=MODE_WORDS,
            closing=closing(pipeline.cache.node),
            epoch_ns=pipeline.clock.epoch_ns, action_names=names, action_json=[ACTION_JSON[n] for n in names],
            latency_bounds=LATENCY_BUCKETS, generic_op=int(Op.GENERIC))
        pipeline.policies.listeners.append(self)
        self.tee: Callable[[bytes], None] | None = None  # the ring recorder: told of each record made a line

    @classmethod
    def create(cls, pipeline: "Pipeline") -> "LinePath | None":
        """None when the compiled module is missing or switched off (TETRA_PURE_PYTHON=1)."""
        lines = lines_module()
        return None if lines is None else cls(lines, pipeline)

    def policy_added(self, policy_id: int, name: str, hooks: Any) -> None:
        self.encoder.forget_hooks()

    def policy_removed(self, policy_id: int) -> None:
        self.encoder.forget_hooks()

    def _send(self) -> LineTarget | None:
        """What takes a batch of lines now, or None: some sink needs events, not lines."""
        targets = self.pipeline.line_targets()
        if targets is None:
            return None
        if len(targets) == 1:
            return targets[0]

        def send(batch: list[bytes]) -> None:
            for target in targets:
                target(batch)

        return send

    def drain_ring(self, ring: Any, consumer: Any, data: int, mask: int,
                   on_record: Callable[[bytes], None]) -> int | None:
        """The ring's records, delivered (their number), or None: the Python path must drain it."""
        send = self._send()
        if send is None:
            return None
        return int(self.encoder.drain_ring(ring, consumer, data, mask, on_record, send, self.tee))

    def feed(self, records: list[bytes], on_record: Callable[[bytes], None]) -> bool:
        """Recorded records in order; False (nothing done) when the Python path must take them."""
        send = self._send()
        if send is None:
            return False
        self.encoder.feed(records, on_record, send)
        return True
