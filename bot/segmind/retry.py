"""When to retry a Segmind request, and how long to wait: small pure functions.

The submit POST is not idempotent: Segmind bills every job it starts. So it is retried
only when no job can have started: a 429 (refused at the door) or a connection that
failed before the request was sent. A timeout, a reset or a 5xx after sending is
ambiguous and never re-sent. Polls and downloads are GETs and retry on every transient
failure.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .errors import (
    BadGatewayError,
    GatewayTimeoutError,
    RateLimitedError,
    SegmindConnectionError,
    SegmindError,
    ServerError,
    ServiceUnavailableError,
)

_TRANSIENT = (
    RateLimitedError,
    ServerError,
    BadGatewayError,
    ServiceUnavailableError,
    GatewayTimeoutError,
    SegmindConnectionError,
)


def get_retryable(error: SegmindError) -> bool:
    """A GET (poll, download) may be repeated after this error."""
    return isinstance(error, _TRANSIENT)


def submit_retryable(error: SegmindError) -> bool:
    """The submit may be re-sent: no job can have been created."""
    if isinstance(error, RateLimitedError):
        return True
    return isinstance(error, SegmindConnectionError) and not error.request_sent


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # tries in all, the first included
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_total: float = 45.0  # give up rather than wait longer than this in all

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Wait before try `attempt + 1` (attempt counts from 1): exponential backoff
        with "equal jitter", never less than Segmind's Retry-After."""
        ceiling: float = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        wait = ceiling / 2 + rng.uniform(0, ceiling / 2)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), 24 * 3600.0)
