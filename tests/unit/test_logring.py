"""The agent's in-memory log (tetra/agent/logring.py): bounded, counting what it let go, never raising."""

import logging
import threading

from tetra.agent.logring import MAX_MESSAGE_CHARS, LogRing


def _logger(ring: LogRing) -> logging.Logger:
    logger = logging.getLogger(f"tetra.test.logring.{id(ring)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    ring.attach(logger)
    return logger


def test_keeps_the_newest_records_and_counts_the_others() -> None:
    ring = LogRing(capacity=3)
    log = _logger(ring)
    for n in range(5):
        log.warning("record %d", n)
    log.debug("below the level: not kept")
    lines, evicted = ring.snapshot()
    assert [line.message for line in lines] == ["record 2", "record 3", "record 4"]
    assert evicted == 2
    assert lines[0].level == "warning" and lines[0].logger == log.name and lines[0].time.endswith("Z")


def test_cuts_long_messages_and_keeps_tracebacks() -> None:
    ring = LogRing()
    log = _logger(ring)
    log.info("x" * (MAX_MESSAGE_CHARS + 10))
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    (long, failed), _ = ring.snapshot()
    assert len(long.message) < MAX_MESSAGE_CHARS + 40 and long.message.endswith("(10 more characters)")
    assert failed.message.startswith("failed\nTraceback") and "ValueError: boom" in failed.message


def test_a_record_that_does_not_format_is_not_kept_and_raises_nothing() -> None:
    ring = LogRing()
    log = _logger(ring)
    raise_exceptions, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        log.info("%d", "not a number")
    finally:
        logging.raiseExceptions = raise_exceptions
    assert ring.snapshot() == ([], 0)


def test_threads_logging_at_once_lose_nothing_but_the_oldest() -> None:
    ring = LogRing(capacity=100)
    log = _logger(ring)
    threads = [threading.Thread(target=lambda: [log.info("r") for _ in range(500)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines, evicted = ring.snapshot()
    assert len(lines) == 100 and evicted == 1900


def test_detach_stops_recording() -> None:
    ring = LogRing()
    log = _logger(ring)
    log.info("in")
    ring.detach(log)
    log.info("out")
    assert [line.message for line in ring.snapshot()[0]] == ["in"]
