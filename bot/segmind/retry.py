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
from collections.abc import Mapping
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


MAX_PAUSE = 24 * 3600.0  # no header may hold the bot longer than this


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
    return _bounded(seconds)


def parse_reset_at(value: str | None, now: float | None = None) -> float | None:
    """Seconds until `x-rate-limit-reset-at-utc` (None if unusable). Its format is not
    documented, so accept ISO 8601 (naive means UTC), Unix seconds or milliseconds, and
    an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    current = datetime.now(UTC).timestamp() if now is None else now
    try:
        number = float(value)
    except ValueError:
        when = _parse_date(value)
        if when is None:
            return None
        return _bounded(when.timestamp() - current)
    if number > 1e11:  # milliseconds
        number /= 1000.0
    return _bounded(number - current)


def _parse_date(value: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def rate_limit_pause(headers: Mapping[str, str]) -> float | None:
    """How long a 429 asks us to hold every request: the later of Retry-After and the
    reset time, None when it says neither."""
    pauses = [
        pause
        for pause in (
            parse_retry_after(headers.get("Retry-After")),
            parse_reset_at(headers.get("x-rate-limit-reset-at-utc")),
        )
        if pause is not None
    ]
    return max(pauses) if pauses else None


def _bounded(seconds: float) -> float | None:
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_PAUSE)
