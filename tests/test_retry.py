"""Retry predicates and backoff: the rules that keep us from paying twice."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from bot.segmind.errors import SegmindConnectionError, error_for_status
from bot.segmind.retry import (
    MAX_PAUSE,
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


NOW = datetime(2027, 1, 15, 8, 0, 0, tzinfo=UTC).timestamp()  # "now" for the reset parser


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2027-01-15T08:00:10.500Z", 10.5),  # ISO 8601 with Z and milliseconds
        ("2027-01-15T08:00:10+00:00", 10.0),
        ("2027-01-15T08:00:10", 10.0),  # naive means UTC
        (str(NOW + 7), 7.0),  # Unix seconds
        (str(int((NOW + 3) * 1000)), 3.0),  # Unix milliseconds
        ("Fri, 15 Jan 2027 08:00:04 GMT", 4.0),  # HTTP-date
        ("2027-01-15T07:59:00Z", 0.0),  # in the past: no wait
    ],
)
def test_reset_at_in_every_plausible_form(value: str, seconds: float) -> None:
    assert parse_reset_at(value, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf"])
def test_unusable_reset_at_is_none(value: str | None) -> None:
    assert parse_reset_at(value, now=NOW) is None


def test_reset_at_is_bounded() -> None:
    assert parse_reset_at(str(NOW + 10 * 24 * 3600), now=NOW) == MAX_PAUSE


def test_a_429_pause_is_the_later_of_both_headers() -> None:
    assert rate_limit_pause({"Retry-After": "2"}) == 2.0
    assert rate_limit_pause({}) is None
    reset = datetime.now(UTC).timestamp() + 30
    pause = rate_limit_pause({"Retry-After": "2", "x-rate-limit-reset-at-utc": str(reset)})
    assert pause is not None
    assert 28 < pause <= 30
