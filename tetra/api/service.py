"""The API's calls, whichever service serves them: events from the Broadcaster, everything else via
the agent thread. tetra.api.v1.Tetra is GetStatus; tetragon_service serves Tetragon's
FineGuidanceSensors (events, health, version, policies) with the calls here.

Errors become gRPC statuses a client can act on, never a crash of the agent:

    invalid policy YAML, filter, mode,    INVALID_ARGUMENT
      policy name
    no such policy                        NOT_FOUND
    policy name taken                     ALREADY_EXISTS
    already enabled/disabled              FAILED_PRECONDITION
    the kernel refused a policy           FAILED_PRECONDITION (with its reason)
    too many event streams or policies    RESOURCE_EXHAUSTED (oversized requests too, by gRPC itself)
    agent stopping                        UNAVAILABLE
    agent did not take the call in time   DEADLINE_EXCEEDED
    a bug of ours                         INTERNAL (logged with its traceback)

A status message is kept under what a client accepts (``STATUS_MESSAGE_BYTES``):
past it the client would get an unrelated error instead of ours.

A policy to add is validated here, on the gRPC worker thread, within the call's
deadline; the agent thread only compiles and loads the validated model. A call
whose client stopped waiting (deadline passed, or cancelled) before the agent
thread took it never runs; an add that finishes after that is taken back, and
any other change that does is logged as done, so nothing changes unannounced
behind the back of a client that was told DEADLINE_EXCEEDED.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import grpc
import orjson
from google.protobuf import json_format

from tetra.agent.policies import (PolicyConflict, PolicyExists, PolicyLoadFailed, PolicyManager, PolicyNotFound,
                                  PolicyState, TooManyPolicies)
from tetra.api import pb, tetragon_events
from tetra.api.broadcast import Broadcaster, TooManySubscribers
from tetra.agent.commands import AgentUnavailable, CommandQueue, CommandTimeout
from tetra.api.convert import to_dict
from tetra.api.diagnostics import diagnostics_json
from tetra.api.status import status_message_of
from tetra.errors import TetraError
from tetra.filters import FilterError
from tetra.filters.events import ExportFilter, parse_filter_list
from tetra.filters.fields import FieldFilters, parse_field_filters
from tetra.policy.errors import PolicyErrors
from tetra.policy.loader import load_policies_text_report
from tetra.policy.values import check_dns_label, check_dns_subdomain
from tetra.status.model import PolicyStatus

if TYPE_CHECKING:
    from tetra.agent.runner import Agent

log = logging.getLogger(__name__)

T = TypeVar("T")
Context: TypeAlias = grpc.ServicerContext

CALL_TIMEOUT = 60.0  # longest wait for the agent thread (a policy compiles and loads in seconds)
POLL_S = 0.25  # how often an idle stream checks that its client and the server are still there
STATUS_MESSAGE_BYTES = 6000  # of the 8 KiB of metadata a gRPC client accepts, as sent (percent-encoded)

_CODES: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (PolicyErrors, grpc.StatusCode.INVALID_ARGUMENT),
    (FilterError, grpc.StatusCode.INVALID_ARGUMENT),
    (PolicyNotFound, grpc.StatusCode.NOT_FOUND),
    (PolicyExists, grpc.StatusCode.ALREADY_EXISTS),
    (PolicyConflict, grpc.StatusCode.FAILED_PRECONDITION),
    (PolicyLoadFailed, grpc.StatusCode.FAILED_PRECONDITION),
    (TooManySubscribers, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (TooManyPolicies, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (CommandTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (AgentUnavailable, grpc.StatusCode.UNAVAILABLE),
)


def status_code(err: Exception) -> grpc.StatusCode:
    """The first matching entry of _CODES (subclasses before their bases), else INTERNAL."""
    return next((code for kind, code in _CODES if isinstance(err, kind)), grpc.StatusCode.INTERNAL)


class TetraService:
    """tetra.api.v1.Tetra's RPCs (GetStatus, GetDiagnostics), and the calls both services are made of: event
    streams, policy changes on the agent thread, and the errors of both as gRPC statuses."""

    def __init__(self, agent: "Agent", broadcaster: Broadcaster, commands: CommandQueue,
                 stopping: threading.Event) -> None:
        self.agent = agent
        self.broadcaster = broadcaster
        self.commands = commands  # drained by the agent loop: when it last was says the loop is alive
        self.stopping = stopping

    def GetStatus(self, request: Any, context: Context) -> Any:
        status = self.on_agent(context, self.agent.status)
        return status_message_of(status)

    def GetDiagnostics(self, request: Any, context: Context) -> Any:
        """Settings, log and policy texts for `tetra bugtool`; the policies are read on the agent thread."""
        policies = self.on_agent(context, lambda: [state.policy for state in self.agent.policies.states.values()
                                                   if state.policy is not None])
        return json_format.ParseDict(diagnostics_json(self.agent.config, self.agent.log_ring, policies),
                                     pb.GetDiagnosticsResponse())

    # -- events ---------------------------------------------------------------------------

    def stream(self, context: Context, events: ExportFilter | None, fields: FieldFilters | None
               ) -> Iterator[bytes]:
        """A GetEvents stream (serialized GetEventsResponses) until the client or the server goes."""
        try:
            sub = self.broadcaster.subscribe(context.peer(), events, fields)
        except TooManySubscribers as err:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(err))
        log.info("event stream %d opened by %s", sub.id, sub.peer)
        try:
            while not self.stopping.is_set() and context.is_active():
                try:
                    envelope = sub.queue.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                data = self.broadcaster.encoded(sub, envelope)
                if data is not None:
                    sub.sent += 1
                    yield data
        finally:
            self.broadcaster.unsubscribe(sub)
            log.info("event stream %d closed: %d sent, %d dropped (queue full)", sub.id, sub.sent, sub.dropped)
            if sub.events is not None and sub.events.cel_errors:
                log.warning("event stream %d: %d CEL evaluations failed (each a non-match), e.g. %s", sub.id,
                            sub.events.cel_errors, sub.events.cel_last_error)

    def selection(self, request: Any, context: Context, field_filter_json: Callable[[Any], dict[str, Any]] = to_dict
                  ) -> tuple[ExportFilter | None, FieldFilters | None]:
        """The request's allow/deny lists and field filters (as JSON objects by ``field_filter_json``),
        checked by tetra.filters: the Filter message has the JSON shape they read."""
        cel_chars = sum(len(text) for f in (*request.allow_list, *request.deny_list) for text in f.cel_expression)
        if cel_chars:
            from tetra.filters.cel import MAX_REQUEST_CHARS  # with CEL's library: imported when a client uses it

            if cel_chars > MAX_REQUEST_CHARS:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cel_expression: {cel_chars} characters of CEL "
                              f"in one request: at most {MAX_REQUEST_CHARS} are accepted")
        try:
            allow = parse_filter_list(_json_lines(request.allow_list), "allow_list", cel_schema=tetragon_events)
            deny = parse_filter_list(_json_lines(request.deny_list), "deny_list", cel_schema=tetragon_events)
            fields = parse_field_filters(_json_lines(request.field_filters, field_filter_json), "field_filters")
        except FilterError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        return (ExportFilter(allow, deny) if allow or deny else None), (fields if fields.filters else None)

    # -- tracing policies ------------------------------------------------------------------

    def add_policies(self, request: Any, context: Context) -> list[PolicyStatus]:
        """Validated here, within the call's deadline (a costly document never holds up the agent
        loop); the agent loop loads the policies between its polls (serving events and calls
        meanwhile) and this call waits for them: past its deadline they are withdrawn, so an add
        nobody hears about never stays. The added policies' statuses."""
        deadline = time.monotonic() + _time_left(context)
        try:
            policies, warnings = load_policies_text_report(request.yaml, "api", deadline)
        except PolicyErrors as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, status_message(err))
        loading = self.on_agent(context, lambda: self.agent.policies.add_policies_later(policies, warnings, "api"))
        try:
            added = {state.id for state in self._answer(context, lambda: loading.result(_time_left(context)))}
            if _abandoned(context):  # loaded, but nobody hears of it
                raise FutureTimeout
        except FutureTimeout:
            # the client's deadline has passed: the withdrawal gets time of its own, it must happen
            self._answer(context, lambda: self.commands.call(lambda: self.agent.policies.withdraw(loading),
                                                             CALL_TIMEOUT))
            log.warning("policies %s not added: their client stopped waiting (deadline passed or cancelled) "
                        "while they loaded", ", ".join(policy.name for policy in policies))
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the policies did not load in time: withdrawn")
        return self.on_agent(context, lambda: [p for p in self.agent.policies.summary() if p.id in added])

    def delete_policy(self, request: Any, context: Context) -> None:
        name, namespace = _policy_name(request, context)
        self.on_agent(context, lambda: self.agent.policies.delete(name, namespace), f"delete of {name}")

    def enable_policy(self, request: Any, context: Context) -> PolicyStatus:
        name, namespace = _policy_name(request, context)
        return self._policy(context, lambda p: p.enable(name, namespace), f"enable of {name}")

    def disable_policy(self, request: Any, context: Context) -> PolicyStatus:
        name, namespace = _policy_name(request, context)
        return self._policy(context, lambda p: p.disable(name, namespace), f"disable of {name}")

    def set_policy_mode(self, request: Any, mode: str, context: Context) -> PolicyStatus:
        """``mode``: "enforce" or "monitor"."""
        name, namespace = _policy_name(request, context)
        return self._policy(context, lambda p: p.set_mode(name, mode, namespace), f"{mode} mode of {name}")

    # -- helpers ---------------------------------------------------------------------------

    def _policy(self, context: Context, fn: Callable[[PolicyManager], PolicyState], change: str) -> PolicyStatus:
        """``fn(policies)`` changes one policy on the agent thread; its status afterwards."""
        def changed() -> PolicyStatus:
            state = fn(self.agent.policies)
            return next(policy for policy in self.agent.policies.summary() if policy.id == state.id)

        return self.on_agent(context, changed, change)

    def on_agent(self, context: Context, fn: Callable[[], T], change: str | None = None) -> T:
        """``fn()`` on the agent thread, within the call's deadline; errors end the call with a status.

        ``change`` names what ``fn`` changes: when it is done after the client stopped waiting,
        the log says that it took effect all the same.
        """
        result = self._answer(context, lambda: self.commands.call(fn, _time_left(context)))
        if change is not None and _abandoned(context):
            log.warning("%s done after its client stopped waiting (deadline passed or cancelled): it took effect",
                        change)
        return result

    def _answer(self, context: Context, fn: Callable[[], T]) -> T:
        """``fn()``'s result; its TetraError ends the call with the matching status, anything else
        (a bug of ours) with INTERNAL. A future's TimeoutError is the caller's to handle."""
        try:
            return fn()
        except FutureTimeout:
            raise
        except TetraError as err:
            code = status_code(err)
            if code == grpc.StatusCode.INTERNAL:
                log.error("API call failed: %s", err)
            context.abort(code, status_message(err))
        except Exception as err:  # a bug of ours: the client gets INTERNAL, the log the traceback
            log.exception("API call failed")
            context.abort(grpc.StatusCode.INTERNAL, status_message(f"internal error: {err!r}"))


def _time_left(context: Context) -> float:
    """Seconds until the call's deadline, at most CALL_TIMEOUT."""
    remaining = context.time_remaining()
    return CALL_TIMEOUT if remaining is None else max(0.0, min(remaining, CALL_TIMEOUT))


def _abandoned(context: Context) -> bool:
    """The client no longer waits for the answer: its deadline passed, or it cancelled the call."""
    remaining = context.time_remaining()
    return not context.is_active() or (remaining is not None and remaining <= 0)


def _policy_name(request: Any, context: Context) -> tuple[str, str]:
    """The request's policy name and namespace, as Kubernetes names them (an RFC 1123 subdomain of at
    most 253 characters, and a label), or INVALID_ARGUMENT: nothing else can name a loaded policy."""
    problem = check_dns_subdomain(request.name) if request.name else "a policy name is needed"
    if problem is None and request.namespace:
        problem = check_dns_label(request.namespace)
    if problem is not None:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
    return request.name, request.namespace


def status_message(err: Exception | str) -> str:
    """``err`` as a status message of at most STATUS_MESSAGE_BYTES once percent-encoded: its lines
    (policy problems) while they fit, then how many were left out."""
    lines = str(err).split("\n")
    kept: list[str] = []
    size = 0
    for line in lines:
        size += grpc_message_size(line) + 3  # and its newline, %0A
        if size > STATUS_MESSAGE_BYTES - 200:  # room for the last line
            break
        kept.append(line)
    if len(kept) == len(lines):
        return str(err)
    if not kept:  # a single line that is too long: its beginning
        data = lines[0].encode()[:(STATUS_MESSAGE_BYTES - 200) // 3]
        return data.decode(errors="ignore") + "…"
    more = len(lines) - len(kept)
    hint = ": `tetra tracingpolicy validate` lists them all" if isinstance(err, PolicyErrors) else ""
    return "\n".join([*kept, f"… and {more} more line{'s' if more > 1 else ''}{hint}"])


def grpc_message_size(text: str) -> int:
    """Bytes of ``text`` in grpc-message: printable ASCII as is, other bytes (and %) as %XX."""
    return sum(1 if 0x20 <= byte <= 0x7E and byte != 0x25 else 3 for byte in text.encode())


def _json_lines(messages: Any, json: Callable[[Any], dict[str, Any]] = to_dict) -> str:
    """Filter messages as the JSON objects tetra.filters reads (their protojson form, or ``json``'s)."""
    return "\n".join(orjson.dumps(json(message)).decode() for message in messages)
