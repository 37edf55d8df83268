"""Retry predicates and backoff: the rules that keep us from paying twice."""

from __future__ import annotations

import os
import random
import time

import pytest

from bot.segmind.errors import SegmindConnectionError, error_for_status
from bot.segmind.retry import (
    RetryPolicy,
    get_retryable,
    parse_reset_at,
    parse_retry_after,
    rate_limit_pause,
    submit_retryable,
)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 406])
def test_client_errors_never_retried(status: int) -> None:
    err = error_for_status(status)
    assert not get_retryable(err)
    assert not submit_retryable(err)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_retry_polls_but_not_submits(status: int) -> None:
    err = error_for_status(status)
    assert get_retryable(err)
    assert not submit_retryable(err)  # the job may exist: a re-send could bill twice


def test_rate_limit_and_unsent_connection_retry_submit() -> None:
    assert submit_retryable(error_for_status(429))
    assert submit_retryable(SegmindConnectionError("refused", request_sent=False))
    assert not submit_retryable(SegmindConnectionError("reset", request_sent=True))
    assert get_retryable(SegmindConnectionError("reset", request_sent=True))


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(1)
    for attempt in range(1, 8):
        ceiling = min(8.0, 2 ** (attempt - 1))
        for _ in range(50):
            d = policy.delay(attempt, None, rng)
            assert ceiling / 2 <= d <= ceiling
    assert policy.delay(1, 5.0, rng) >= 5.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-4", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date_in_past_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_backoff_jitter_spans_the_whole_upper_half() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(7)
    waits = [policy.delay(4, None, rng) for _ in range(500)]  # ceiling 8 s
    assert min(waits) < 4.2
    assert max(waits) > 7.8  # spread over [4, 8]: jobs retrying together drift apart


NOW = 1_796_160_840.0  # 2026-12-01T21:34:00Z


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2026-12-01T21:35:00.124Z", 60.124),
        ("2026-12-01T21:35:00.124z", 60.124),
        ("2026-12-01T21:35:00+00:00", 60.0),
        ("2026-12-02T03:05:00+05:30", 60.0),  # an offset is kept, not taken for UTC
        ("2026-12-01T21:35:00", 60.0),  # naive: UTC, whatever the host's time zone
        ("1796160900", 60.0),  # Unix seconds
        ("1796160900124", 60.124),  # Unix milliseconds
        ("Tue, 01 Dec 2026 21:35:00 GMT", 60.0),  # an HTTP-date
        ("  2026-12-01T21:35:00Z  ", 60.0),
        ("2026-12-01T21:33:00Z", 0.0),  # already past
        ("2027-12-01T21:35:00Z", 24 * 3600.0),  # capped
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_reset_at(header: str | None, expected: float | None) -> None:
    zone = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"  # a naive time must not be read as local time
    time.tzset()
    try:
        result = parse_reset_at(header, now=NOW)
    finally:
        if zone is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = zone
        time.tzset()
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1e-6)


def test_rate_limit_pause_takes_the_later_of_both_headers() -> None:
    now = time.time()
    both = {"Retry-After": "5", "x-rate-limit-reset-at-utc": f"{now + 60:.3f}"}
    assert rate_limit_pause(both) == pytest.approx(60, abs=2)
    assert rate_limit_pause({"Retry-After": "90", "x-rate-limit-reset-at-utc": f"{now}"}) == 90
    assert rate_limit_pause({"x-rate-limit-reset-at-utc": "garbage"}) is None
    assert rate_limit_pause({}) is None
