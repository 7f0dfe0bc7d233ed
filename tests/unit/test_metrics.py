"""The Prometheus rendering of a status snapshot and the pipeline's counts."""

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from tetra.agent.stats import PipelineStats
from tetra.export.metrics import SnapshotCollector, parse_address

SNAPSHOT = {
    "events": [{"type": "process_exec", "total": "7", "rate": 1.0}],
    "policies": [{"name": "p", "state": "TP_STATE_ENABLED",
                  "hooks": [{"hook": "__x64_sys_openat", "seen": "10", "posted": "3"}]}],
    "losses": {"kernel": [{"opcode": "exec", "sent": "7", "lost": "2"}], "pipeline": {"decode_errors": "1"},
               "subscriber_dropped": "4", "convert_errors": "0"},
    "process_cache": {"size": "5", "capacity": "100", "evictions": "1"},
    "exporters": [{"name": "json", "counters": {"bytes_written": "99", "write_errors": "3", "lines_dropped": "5",
                                                 "bytes_dropped": "250", "reopens": "2"}},
                  {"name": "export-filters", "counters": {"filtered_out": "6", "rate_limited": "2"}}],
}


def render(stats: PipelineStats | None = None) -> str:
    collector = SnapshotCollector()
    collector.update(SNAPSHOT, stats)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


def test_every_loss_and_count_is_a_metric() -> None:
    stats = PipelineStats()
    stats.actions["KPROBE_ACTION_SIGKILL"] += 2
    stats.latency.observe(0.0002)
    stats.latency.observe(3.0)
    text = render(stats)
    for line in (
        'tetra_events_total{type="process_exec"} 7.0',
        'tetra_policy_events_total{hook="__x64_sys_openat",policy="p"} 3.0',
        'tetra_policy_hook_calls_total{hook="__x64_sys_openat",policy="p"} 10.0',
        'tetra_observer_ringbuf_events_lost_total{op="exec"} 2.0',
        'tetra_events_dropped_total{stage="decode"} 1.0',
        'tetra_events_dropped_total{stage="subscriber_queue"} 4.0',
        'tetra_events_dropped_total{stage="export_filter"} 6.0',
        'tetra_events_dropped_total{stage="export_rate_limit"} 2.0',
        "tetra_process_cache_evictions_total 1.0",
        'tetra_export_bytes_total{exporter="json"} 99.0',
        'tetra_events_dropped_total{stage="export_file"} 5.0',
        'tetra_export_errors_total{exporter="json"} 3.0',
        'tetra_export_dropped_bytes_total{exporter="json"} 250.0',
        'tetra_export_reopens_total{exporter="json"} 2.0',
        'tetra_policy_actions_total{action="KPROBE_ACTION_SIGKILL"} 2.0',
        'tetra_event_handling_latency_seconds_bucket{le="0.0005"} 1.0',
        'tetra_event_handling_latency_seconds_bucket{le="+Inf"} 2.0',
        "tetra_event_handling_latency_seconds_count 2.0",
    ):
        assert line in text, line


def test_nothing_before_the_first_snapshot() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector())
    assert b"tetra_" not in generate_latest(registry)


def test_addresses() -> None:
    assert parse_address(":2112") == ("0.0.0.0", 2112)
    assert parse_address("localhost:9090") == ("localhost", 9090)
    assert parse_address("[::1]:9090") == ("::1", 9090)
