"""The agent's status (tetra/status/model.py) in StatusResponse's JSON form, for `tetra status`.

Everything an operator needs to trust the event stream: which sensors and
hooks run by which mechanism, each policy's state and per-hook counters,
events per type and per second, and every place an event can be lost (the
kernel's ring buffer per opcode, decoding, the pipeline's counters, each
subscriber's queue, each exporter's writes).

Only the formatting is here: the agent builds the numbers (``Agent.status``),
and /metrics and the exit summary read the same ones. Counters are ints here (json_format
takes them for uint64 fields); the CLI prints them as numbers (plainjson.py).
"""

from typing import Any

from tetra import __version__
from tetra.status.model import AgentStatus, ExporterStatus, PolicyLoadState, PolicyStatus

Json = dict[str, Any]

_MODES = {"enforce": "TP_MODE_ENFORCE", "monitor": "TP_MODE_MONITOR"}


def policy_status(policy: PolicyStatus) -> Json:
    """One policy as a TracingPolicyStatus."""
    out: Json = {
        "id": policy.id,
        "name": policy.name,
        "source": policy.source,
        "state": policy.state.api_name,
        "mode": _MODES.get(policy.mode, "TP_MODE_UNKNOWN"),
        "hooks": [{"hook": h.hook, "mechanism": h.mechanism, "attach": h.attach, "return": h.returns,
                   "seen": h.seen or 0, "posted": h.posted or 0} for h in policy.hooks],
    }
    if policy.namespace:
        out["namespace"] = policy.namespace
    if policy.error:
        out["error"] = policy.error
    if policy.scope_cgroups is not None:
        out["scope_cgroups"] = policy.scope_cgroups
    if policy.load_seconds is not None:
        out["load_seconds"], out["origin"] = round(policy.load_seconds, 3), policy.origin
    return out


def _exporter(exporter: ExporterStatus) -> Json:
    return {"name": exporter.name, "target": exporter.target, "state": exporter.state,
            "counters": dict(exporter.counters)}


def status_json(status: AgentStatus) -> Json:
    """The StatusResponse of ``status``."""
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
        "policies": [policy_status(p) for p in status.policies],
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
            "exporter_errors": status.exporter_errors,
            "kernel_throttled": status.kernel_throttled,
            "throttled_cgroups": status.throttled_cgroups,
        },
        "process_cache": {"size": status.cache_size, "capacity": status.cache_capacity,
                          "evictions": status.cache_evictions},
        "exporters": [_exporter(e) for e in status.exporters],
        "subscribers": [{"id": s.id, "peer": s.peer, "queued": s.queued, "sent": s.sent,
                         "dropped": s.dropped} for s in (streams.subscribers if streams else ())],
    }
