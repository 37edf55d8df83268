"""Retry predicates and backoff: the rules that keep us from paying twice."""

from __future__ import annotations

import random

import pytest

from bot.segmind.errors import SegmindConnectionError, error_for_status
from bot.segmind.retry import RetryPolicy, get_retryable, parse_retry_after, submit_retryable


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
