"""The agent's status (tetra/status/model.py) as tetra.api.v1's StatusResponse, for `tetra status`,
and a policy's as Tetragon's TracingPolicyStatus, for every call that answers with one.

Everything an operator needs to trust the event stream: which sensors and
hooks run by which mechanism, each policy's state and per-hook counters,
events per type and per second, and every place an event can be lost (the
kernel's ring buffer per opcode, decoding, the pipeline's counters, each
subscriber's queue, each exporter's writes).

Only the formatting is here: the agent builds the numbers (``Agent.status``),
and /metrics and the exit summary read the same ones. Counters are ints here (json_format
takes them for uint64 fields); the CLI prints them as numbers (plainjson.py).
"""

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format

from tetra import __version__
from tetra.api import pb, tg_sensors
from tetra.status.model import AgentStatus, ExporterStatus, PolicyLoadState, PolicyStatus, user_action_table

Json = dict[str, Any]

_MODES = {"enforce": tg_sensors.TP_MODE_ENFORCE, "monitor": tg_sensors.TP_MODE_MONITOR}
# TracingPolicyActionCounters' fields by action: (taken, withheld in monitoring mode). A Sigkill is a signal.
_ACTION_COUNTERS = {"KPROBE_ACTION_SIGKILL": ("signal", "monitor_signal"),
                    "KPROBE_ACTION_SIGNAL": ("signal", "monitor_signal"),
                    "KPROBE_ACTION_OVERRIDE": ("override", "monitor_override"),
                    "KPROBE_ACTION_NOTIFYENFORCER": ("notify_enforcer", "monitor_notify_enforcer")}


def tracing_policy_status(policy: PolicyStatus, actions: Mapping[tuple[str, str, str], int] | None = None) -> Any:
    """``policy`` as Tetragon's TracingPolicyStatus: its hooks are its sensors, their posted events its
    ``stats.action_counters.post``; the hooks in full (mechanism, counters), the pod scope and the
    load time are tetra's ``tetra_*`` fields.

    ``actions``: the pipeline's events by (policy name, mode, action) (tetra/agent/stats.py's
    ActionKey), for the other action counters: taken, or withheld in monitoring mode (``monitor_*``).
    Counted by name, as the metric is: policies of one name in two namespaces share them."""
    hooks = [tg_sensors.TracingPolicyHook(hook=h.hook, mechanism=h.mechanism, attach=h.attach,
                                          **{"return": h.returns}, seen=h.seen or 0, posted=h.posted or 0)
             for h in policy.hooks]
    counters = tg_sensors.TracingPolicyActionCounters(post=sum(h.posted or 0 for h in policy.hooks))
    for (name, mode, action), count in (actions or {}).items():
        if name == policy.name and action in _ACTION_COUNTERS:
            field = _ACTION_COUNTERS[action][mode == "monitor"]
            setattr(counters, field, getattr(counters, field) + count)
    message = tg_sensors.TracingPolicyStatus(
        id=policy.id, name=policy.name, namespace=policy.namespace, info=policy.source,
        sensors=[h.hook for h in policy.hooks], enabled=policy.state is PolicyLoadState.ENABLED,
        error=policy.error, state=policy.state.api_name, mode=_MODES.get(policy.mode, tg_sensors.TP_MODE_UNKNOWN),
        stats=tg_sensors.TracingPolicyStats(action_counters=counters), tetra_hooks=hooks,
        tetra_scope_cgroups=policy.scope_cgroups)
    if policy.load_seconds is not None:
        message.tetra_load_seconds, message.tetra_origin = round(policy.load_seconds, 3), policy.origin
    return message


def _exporter(exporter: ExporterStatus) -> Json:
    return {"name": exporter.name, "target": exporter.target, "state": exporter.state,
            "counters": dict(exporter.counters)}


def status_message_of(status: AgentStatus) -> Any:
    """The StatusResponse of ``status``."""
    message = json_format.ParseDict(status_json(status), pb.StatusResponse())
    message.policies.extend(tracing_policy_status(p) for p in status.policies)
    return message


def status_json(status: AgentStatus) -> Json:
    """The StatusResponse of ``status`` but its policies, in its JSON form."""
    enabled = [p for p in status.policies if p.state is PolicyLoadState.ENABLED]
    streams = status.streams
    return {
        "version": __version__,
        "node_name": status.node_name,
        "uptime_seconds": round(status.uptime_seconds, 3),
        "sensors": [{"name": sensor.name, "hooks": [{"hook": hook, "mechanism": how}
                                                     for hook, how in sensor.hooks.items()]}
                    for sensor in status.sensors]
                   + [{"name": f"policy {p.name}", "hooks": [{"hook": h.hook, "mechanism": h.mechanism}
                                                              for h in p.hooks]} for p in enabled],
        "events": [{"type": kind, "total": count, "rate": round(status.rates.get(kind, 0.0), 1)}
                   for kind, count in sorted(status.events.items())],
        "losses": {
            "kernel": [{"opcode": k.opcode, "sent": k.sent, "lost": k.lost} for k in status.kernel],
            "kernel_lost": status.kernel_lost,
            "ringbuf_received": status.ringbuf_received,
            "decode_errors": status.pipeline.get("decode_errors", 0),
            "pipeline": dict(status.pipeline),
            "subscriber_dropped": streams.dropped if streams else 0,
            "convert_errors": streams.convert_errors if streams else 0,
            "cel_errors": streams.cel_errors if streams else 0,
            "exporter_errors": status.exporter_errors,
            "kernel_throttled": status.kernel_throttled,
            "throttled_cgroups": status.throttled_cgroups,
        },
        "process_cache": {"size": status.cache_size, "capacity": status.cache_capacity,
                          "evictions": status.cache_evictions},
        "exporters": [_exporter(e) for e in status.exporters],
        "subscribers": [{"id": s.id, "peer": s.peer, "queued": s.queued, "sent": s.sent, "dropped": s.dropped,
                         "cel_errors": s.cel_errors} for s in (streams.subscribers if streams else ())],
        "user_actions": [{"action": word, **outcomes}
                         for word, outcomes in user_action_table(status.user_actions).items()],
    }
