"""`LOG_FORMAT=json`: one JSON object per line, with the job's id on every line written
while that job's task runs (`current_job`, set by the driver; tasks it starts inherit it)."""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar

current_job: ContextVar[str | None] = ContextVar("current_job", default=None)


class JsonFormatter(logging.Formatter):
    """Keys: time (UTC, ISO 8601), level, logger, message, job (when there is one),
    exception (a traceback's text). Runs after the handler's filters, so the redaction
    filter (bot/logs.py) has already scrubbed the message and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = getattr(record, "job", None) or current_job.get()
        if job is not None:
            line["job"] = str(job)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


def _utc(created: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{stamp}.{int(created % 1 * 1000):03d}Z"
