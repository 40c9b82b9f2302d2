"""LOG_FORMAT=json: one JSON object per log line, with the fields of the plain format.

The fields are those of the text line (time, level, logger, process id, message) plus the
traceback when there is one: nothing is added from the log call's arguments, so a JSON line
carries exactly what the text line would (never a resident's message: see STYLE.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


class JsonFormatter(logging.Formatter):
    """{"time", "level", "logger", "process", "message"[, "exception"]} on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter of LOG_FORMAT (text or json)."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
