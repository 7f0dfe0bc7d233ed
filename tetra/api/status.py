"""The agent's state for `tetra status`: read on the agent thread, in StatusResponse's JSON form.

Everything an operator needs to trust the event stream: which sensors and
hooks run by which mechanism, each policy's state and per-hook counters,
events per type and per second, and every place an event can be lost (the
kernel's ring buffer per opcode, decoding, the pipeline's counters, each
subscriber's queue, each exporter's writes).

Rates are measured here, not by clients: the agent samples its counters every
tick (RateMeter), and a rate is the growth over the last WINDOW seconds.
"""

import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tetra import __version__
from tetra.api.broadcast import Broadcaster

if TYPE_CHECKING:
    from tetra.agent.runner import Agent

Json = dict[str, Any]

WINDOW = 10.0  # seconds of history behind a rate

_STATES = {"loaded": "TP_STATE_ENABLED", "disabled": "TP_STATE_DISABLED", "error": "TP_STATE_LOAD_ERROR",
           "loading": "TP_STATE_LOADING"}
_MODES = {"enforce": "TP_MODE_ENFORCE", "monitor": "TP_MODE_MONITOR"}


class RateMeter:
    """Events per second by type over the last WINDOW seconds, from samples taken every tick."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, dict[str, int]]] = deque()

    def sample(self, now: float, counts: Mapping[str, int]) -> None:
        self._samples.append((now, dict(counts)))
        while len(self._samples) > 1 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rates(self, now: float, counts: Mapping[str, int]) -> dict[str, float]:
        if not self._samples or now <= self._samples[0][0]:
            return {kind: 0.0 for kind in counts}
        then, before = self._samples[0]
        return {kind: (count - before.get(kind, 0)) / (now - then) for kind, count in counts.items()}


def policy_status(entry: Json) -> Json:
    """One PolicyManager.summary() entry as a TracingPolicyStatus."""
    out: Json = {
        "id": str(entry["id"]),
        "name": entry["name"],
        "source": entry["source"],
        "state": _STATES.get(entry["state"], "TP_STATE_UNKNOWN"),
        "mode": _MODES.get(entry["mode"], "TP_MODE_UNKNOWN"),
        "hooks": [{"hook": h["hook"], "mechanism": h["mechanism"], "attach": h["attach"],
                   "return": h["return"], "seen": str(h.get("seen", 0)), "posted": str(h.get("posted", 0))}
                  for h in entry.get("hooks", ())],
    }
    for key in ("namespace", "error"):
        if entry.get(key):
            out[key] = entry[key]
    if "scope_cgroups" in entry:
        out["scope_cgroups"] = entry["scope_cgroups"]
    if "load_seconds" in entry:
        out["load_seconds"], out["origin"] = entry["load_seconds"], entry["origin"]
    return out


def snapshot(agent: "Agent", broadcaster: Broadcaster, rates: RateMeter, started: float) -> Json:
    """The StatusResponse of ``agent`` now; on the agent thread (it reads BPF maps)."""
    now = time.monotonic()
    summary = agent.summary()
    events = dict(agent.pipeline.stats.events)
    per_second = rates.rates(now, events)
    policies = [policy_status(entry) for entry in summary.policies]
    sinks = (*agent.exporters, agent.export_chain, *((broadcaster,) if agent.api is not None else ()))
    exporters = [sink.state() for sink in sinks if hasattr(sink, "state")]
    pipeline = {k: str(v) for k, v in summary.pipeline.items() if isinstance(v, int)}
    return {
        "version": __version__,
        "node_name": agent.cache.node,
        "uptime_seconds": round(now - started, 3),
        "sensors": [
            {"name": agent.sensor.name,
             "hooks": [{"hook": hook, "mechanism": how} for hook, how in agent.sensor.mechanisms.items()]},
            *({"name": f"policy {p['name']}", "hooks": [{"hook": h["hook"], "mechanism": h["mechanism"]}
                                                        for h in p["hooks"]]}
              for p in policies if p["state"] == "TP_STATE_ENABLED"),
        ],
        "policies": policies,
        "events": [{"type": kind, "total": str(count), "rate": round(per_second.get(kind, 0.0), 1)}
                   for kind, count in sorted(events.items())],
        "losses": {
            "kernel": [{"opcode": op, "sent": str(c["sent"]), "lost": str(c["lost"])}
                       for op, c in summary.kernel.items()],
            "kernel_lost": str(summary.kernel_lost),
            "ringbuf_received": str(summary.received),
            "decode_errors": str(summary.pipeline.get("decode_errors", 0)),
            "pipeline": pipeline,
            "subscriber_dropped": str(broadcaster.dropped),
            "convert_errors": str(broadcaster.convert_errors),
            "exporter_errors": str(sum(int(v) for e in exporters for k, v in e.get("counters", {}).items()
                                       if k in ("write_errors", "lines_dropped", "dropped_queue_full",
                                                "dropped_at_close", "dropped_writer_error"))),
        },
        "process_cache": {"size": str(summary.cache_size), "capacity": str(agent.cache.max_size),
                          "evictions": str(summary.cache_evictions)},
        "exporters": exporters,
        "subscribers": [{"id": str(s.id), "peer": s.peer, "queued": str(s.queue.qsize()), "sent": str(s.sent),
                         "dropped": str(s.dropped)} for s in broadcaster.subscribers],
    }
