"""--export-rate-limit: a token bucket of N a minute, and one rate_limit_info a minute after drops."""

import pytest

from tetra.filters import RateLimiter
from tetra.filters.ratelimit import utc_now


def limiter(per_minute: int, start: float = 1000.0) -> RateLimiter:
    return RateLimiter(per_minute, "node", start, stamp=lambda: "2026-11-26T10:00:00.000000000Z")


def admitted(rl: RateLimiter, count: int, now: float) -> int:
    return sum(rl.admit(now) for _ in range(count))


def test_a_burst_of_n_then_one_every_60_over_n_seconds() -> None:
    rl = limiter(60)  # one a second
    assert admitted(rl, 100, 1000.0) == 60  # the bucket starts full
    assert admitted(rl, 5, 1000.5) == 0  # half a token so far
    assert admitted(rl, 5, 1001.0) == 1
    assert admitted(rl, 15, 1011.0) == 10
    assert admitted(rl, 500, 2000.0) == 60  # never more than N saved up
    assert rl.dropped == 40 + 5 + 4 + 5 + 440


def test_zero_lets_nothing_through() -> None:
    rl = limiter(0)
    assert admitted(rl, 10, 5000.0) == 0
    assert rl.dropped == 10


def test_negative_is_refused() -> None:
    with pytest.raises(ValueError, match="0 or more, got -1"):
        limiter(-1)


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    rl = limiter(60)
    admitted(rl, 60, 1000.0)
    assert admitted(rl, 5, 990.0) == 0
    assert admitted(rl, 5, 1001.0) == 1


def test_one_report_per_minute_while_events_are_dropped() -> None:
    rl = limiter(2)
    assert admitted(rl, 5, 1000.0) == 2
    assert rl.report(1059.9) is None  # the minute is not over
    assert rl.report(1060.0) == {"rate_limit_info": {"number_of_dropped_process_events": 3},
                                 "node_name": "node", "time": "2026-11-26T10:00:00.000000000Z"}
    assert rl.report(1060.5) is None  # at most once per interval
    assert rl.report(1120.0) is None  # nothing dropped in that minute
    admitted(rl, 10, 1130.0)  # 2 tokens refilled since 1000 (capped at 2): 8 dropped
    assert rl.report(1179.0) is None
    assert rl.report(1180.0)["rate_limit_info"] == {"number_of_dropped_process_events": 8}  # type: ignore[index]
    assert rl.dropped == 11


def test_a_late_report_skips_missed_ticks() -> None:
    rl = limiter(1)
    admitted(rl, 3, 1000.0)
    assert rl.report(1000.0 + 60 * 10 + 5)["rate_limit_info"]["number_of_dropped_process_events"] == 2  # type: ignore[index]
    assert rl.report(1000.0 + 60 * 10 + 30) is None  # the next tick is at 1660, not one per missed minute
    admitted(rl, 3, 1661.0)
    assert rl.report(1661.0) is not None


def test_wall_clock_stamp_shape() -> None:
    assert len(utc_now()) == len("2026-11-26T10:00:00.123456789Z") and utc_now().endswith("Z")
