"""The agent's log as text or JSON lines (--log-format, Tetragon's flag): JSON for a log
collector that would otherwise have to parse "tetra: LEVEL: message" lines, one object per
record with the fields Tetragon's JSON log has (time, level, msg)."""

import logging
import sys
from datetime import datetime, timezone

import orjson

from tetra.cli.options import LOG_FORMAT

LOG_FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (RFC 3339, UTC), level, msg, logger, and error (a traceback) if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            "logger": record.name,
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure_logging(level: str, log_format: str) -> None:
    """The root logger writes ``level`` and above to stderr in ``log_format``; replaces what an
    earlier ``tetra -d`` set up (its level is passed in ``level``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
