"""The Tetra service's calls: events from the Broadcaster, everything else via the agent thread.

Errors become gRPC statuses a client can act on, never a crash of the agent:

    invalid policy YAML, filter, mode     INVALID_ARGUMENT
    no such policy                        NOT_FOUND
    policy name taken                     ALREADY_EXISTS
    already enabled/disabled              FAILED_PRECONDITION
    the kernel refused a policy           FAILED_PRECONDITION (with its reason)
    too many event streams                RESOURCE_EXHAUSTED (oversized requests too, by gRPC itself)
    agent stopping                        UNAVAILABLE
    agent did not take the call in time   DEADLINE_EXCEEDED
    a bug of ours                         INTERNAL (logged with its traceback)
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

from tetra import __version__
from tetra.agent.policies import (PolicyConflict, PolicyExists, PolicyLoadFailed, PolicyManager, PolicyNotFound,
                                  PolicyState)
from tetra.api import pb
from tetra.api.broadcast import Broadcaster, TooManySubscribers
from tetra.agent.commands import AgentUnavailable, CommandQueue, CommandTimeout
from tetra.api.convert import to_dict
from tetra.api.status import RateMeter, policy_status, snapshot
from tetra.errors import TetraError
from tetra.filters import FilterError
from tetra.filters.events import ExportFilter, parse_filter_list
from tetra.filters.fields import FieldFilters, parse_field_filters
from tetra.policy.errors import PolicyErrors

if TYPE_CHECKING:
    from tetra.agent.runner import Agent

log = logging.getLogger(__name__)

T = TypeVar("T")
Context: TypeAlias = grpc.ServicerContext

CALL_TIMEOUT = 60.0  # longest wait for the agent thread (a policy compiles and loads in seconds)
STALLED_AFTER = 5.0  # seconds without a loop iteration before health says so
POLL_S = 0.25  # how often an idle stream checks that its client and the server are still there

_CODES: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (PolicyErrors, grpc.StatusCode.INVALID_ARGUMENT),
    (FilterError, grpc.StatusCode.INVALID_ARGUMENT),
    (PolicyNotFound, grpc.StatusCode.NOT_FOUND),
    (PolicyExists, grpc.StatusCode.ALREADY_EXISTS),
    (PolicyConflict, grpc.StatusCode.FAILED_PRECONDITION),
    (PolicyLoadFailed, grpc.StatusCode.FAILED_PRECONDITION),
    (TooManySubscribers, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (CommandTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (AgentUnavailable, grpc.StatusCode.UNAVAILABLE),
)


def status_code(err: Exception) -> grpc.StatusCode:
    """The first matching entry of _CODES (subclasses before their bases), else INTERNAL."""
    return next((code for kind, code in _CODES if isinstance(err, kind)), grpc.StatusCode.INTERNAL)


class TetraService:
    """One method per RPC of tetra.proto's Tetra service, each (request, context) -> response."""

    def __init__(self, agent: "Agent", broadcaster: Broadcaster, commands: CommandQueue,
                 rates: RateMeter, stopping: threading.Event) -> None:
        self.agent = agent
        self.broadcaster = broadcaster
        self.commands = commands
        self.rates = rates
        self.stopping = stopping
        self.started = time.monotonic()
        self.heartbeat = time.monotonic()  # the agent loop's last iteration

    # -- events ---------------------------------------------------------------------------

    def GetEvents(self, request: Any, context: Context) -> Iterator[bytes]:
        """Each event that passes the request's filters, serialized once and shared."""
        events, fields = self._selection(request, context)
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

    def _selection(self, request: Any, context: Context) -> tuple[ExportFilter | None, FieldFilters | None]:
        """The request's allow/deny lists and field filters, checked by tetra.filters."""
        try:
            allow = parse_filter_list(_json_lines(request.allow_list), "allow_list")
            deny = parse_filter_list(_json_lines(request.deny_list), "deny_list")
            fields = parse_field_filters(_json_lines(request.field_filters), "field_filters")
        except FilterError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        return (ExportFilter(allow, deny) if allow or deny else None), (fields if fields.filters else None)

    # -- state --------------------------------------------------------------------------------

    def GetHealth(self, request: Any, context: Context) -> Any:
        idle = time.monotonic() - self.heartbeat
        if self.stopping.is_set():
            return pb.GetHealthStatusResponse(status="HEALTH_STATUS_STOPPED", details="the agent is stopping")
        if idle > STALLED_AFTER:
            return pb.GetHealthStatusResponse(status="HEALTH_STATUS_ERROR",
                                              details=f"the agent loop has not run for {idle:.0f}s")
        return pb.GetHealthStatusResponse(status="HEALTH_STATUS_RUNNING", details="running")

    def GetVersion(self, request: Any, context: Context) -> Any:
        return pb.GetVersionResponse(version=__version__)

    def GetStatus(self, request: Any, context: Context) -> Any:
        status = self._on_agent(context, lambda: snapshot(self.agent, self.broadcaster, self.rates, self.started))
        return json_format.ParseDict(status, pb.StatusResponse())

    # -- tracing policies ------------------------------------------------------------------

    def ListTracingPolicies(self, request: Any, context: Context) -> Any:
        return pb.ListTracingPoliciesResponse(policies=self._policies(context, lambda p: p.summary()))

    def AddTracingPolicy(self, request: Any, context: Context) -> Any:
        """The agent loop loads the policies between its polls (serving events and calls meanwhile);
        this call waits for them, within its deadline (past it, they are withdrawn)."""
        loading = self._on_agent(context, lambda: self.agent.policies.add_text_later(request.yaml, "api"))
        try:
            added = {state.id for state in self._answer(context, lambda: loading.result(self._timeout(context)))}
        except FutureTimeout:
            self._on_agent(context, lambda: self.agent.policies.withdraw(loading))
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the policies did not load in time: withdrawn")
        return pb.AddTracingPolicyResponse(policies=self._policies(
            context, lambda p: [entry for entry in p.summary() if entry["id"] in added]))

    def DeleteTracingPolicy(self, request: Any, context: Context) -> Any:
        self._on_agent(context, lambda: self.agent.policies.delete(request.name, request.namespace))
        return pb.DeleteTracingPolicyResponse()

    def EnableTracingPolicy(self, request: Any, context: Context) -> Any:
        policy = self._policy(context, lambda p: p.enable(request.name, request.namespace))
        return pb.EnableTracingPolicyResponse(policy=policy)

    def DisableTracingPolicy(self, request: Any, context: Context) -> Any:
        policy = self._policy(context, lambda p: p.disable(request.name, request.namespace))
        return pb.DisableTracingPolicyResponse(policy=policy)

    def SetTracingPolicyMode(self, request: Any, context: Context) -> Any:
        modes = {pb.TP_MODE_ENFORCE: "enforce", pb.TP_MODE_MONITOR: "monitor"}
        if request.mode not in modes:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "mode must be TP_MODE_ENFORCE or TP_MODE_MONITOR")
        mode = modes[request.mode]
        policy = self._policy(context, lambda p: p.set_mode(request.name, mode, request.namespace))
        return pb.SetTracingPolicyModeResponse(policy=policy)

    # -- helpers ---------------------------------------------------------------------------

    def _policies(self, context: Context, fn: Callable[[PolicyManager], list[dict[str, Any]]]) -> list[Any]:
        """``fn(policies)`` on the agent thread; its summary entries as TracingPolicyStatus messages."""
        entries = self._on_agent(context, lambda: fn(self.agent.policies))
        return [json_format.ParseDict(policy_status(e), pb.TracingPolicyStatus()) for e in entries]

    def _policy(self, context: Context, fn: Callable[[PolicyManager], PolicyState]) -> Any:
        """``fn(policies)`` changes one policy on the agent thread; its status afterwards."""
        def change(policies: PolicyManager) -> list[dict[str, Any]]:
            state = fn(policies)
            return [entry for entry in policies.summary() if entry["id"] == state.id]

        return self._policies(context, change)[0]

    def _on_agent(self, context: Context, fn: Callable[[], T]) -> T:
        """``fn()`` on the agent thread, within the call's deadline; errors end the call with a status."""
        return self._answer(context, lambda: self.commands.call(fn, self._timeout(context)))

    @staticmethod
    def _timeout(context: Context) -> float:
        remaining = context.time_remaining()
        return CALL_TIMEOUT if remaining is None else max(0.0, min(remaining, CALL_TIMEOUT))

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
            context.abort(code, str(err))
        except Exception as err:  # a bug of ours: the client gets INTERNAL, the log the traceback
            log.exception("API call failed")
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {err!r}")
        raise AssertionError("context.abort returns only by raising")


def _json_lines(messages: Any) -> str:
    """Filter messages as the JSON objects tetra.filters reads (their protojson form)."""
    return "\n".join(orjson.dumps(to_dict(message)).decode() for message in messages)
