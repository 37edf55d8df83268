"""What an operator watches: Prometheus metrics, the health checks, the HTTP server that
serves them (`METRICS_PORT`), and JSON log lines (`LOG_FORMAT=json`)."""

from __future__ import annotations

from .json_logs import JsonFormatter, current_job
from .metrics import Metrics

__all__ = ["JsonFormatter", "Metrics", "current_job"]
