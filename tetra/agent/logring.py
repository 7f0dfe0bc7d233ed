"""The agent's last log records, kept in memory for `tetra bugtool`.

A bug report needs the log of the run that misbehaved, and an agent run by
hand, in a container or under a supervisor other than systemd leaves no log
file behind to collect. So the agent keeps its newest ``capacity`` records
(each message cut at ``MAX_MESSAGE_CHARS``), and the API serves them
(GetDiagnostics): memory stays bounded however long the agent runs, and the
records that fell out are counted, so a report says how much it lacks.

The ring records what the log records (--log-level decides), from the moment
the composition root attaches it to the root logger until the agent's run ends.
"""

import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone

LOG_RING_RECORDS = 2000
MAX_MESSAGE_CHARS = 4096  # a traceback or a policy's error list, but not an unbounded one


@dataclass(frozen=True)
class LogLine:
    """One record as the log printed it: RFC 3339 time (UTC), level, logger, message."""

    time: str
    level: str
    logger: str
    message: str


class LogRing(logging.Handler):
    """A logging handler that keeps the newest ``capacity`` records and counts the older ones it let go."""

    def __init__(self, capacity: int = LOG_RING_RECORDS) -> None:
        super().__init__()
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._evicted = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Called under the handler's lock (``Handler.handle``), from whichever thread logs."""
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # a record whose arguments do not format: logging's own report, not a crash
            self.handleError(record)
            return
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + f"… ({len(message) - MAX_MESSAGE_CHARS} more characters)"
        line = LogLine(datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
                       .replace("+00:00", "Z"), record.levelname.lower(), record.name, message)
        if len(self._lines) == self._lines.maxlen:
            self._evicted += 1
        self._lines.append(line)

    def snapshot(self) -> tuple[list[LogLine], int]:
        """The records kept, oldest first, and how many older ones were let go."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            return list(self._lines), self._evicted

    def attach(self, logger: logging.Logger) -> "LogRing":
        logger.addHandler(self)
        return self

    def detach(self, logger: logging.Logger) -> None:
        logger.removeHandler(self)
