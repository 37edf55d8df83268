"""The credit pause on its own: cooldown, one notification per outage, re-arming."""

from __future__ import annotations

import logging

import pytest

from bot.credits import CreditPause, CreditsPausedError
from bot.segmind.errors import SegmindError
from bot.segmind.retry import get_retryable, submit_retryable


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def recorder(pause: CreditPause) -> list[tuple[str, float | None]]:
    calls: list[tuple[str, float | None]] = []
    pause.listeners.append(lambda detail, until: calls.append((detail, until)))
    return calls


def state(pause: CreditPause) -> tuple[bool, float | None]:
    return pause.active(), pause.paused_until


def test_first_trip_pauses_and_notifies_once() -> None:
    clock = Clock()
    pause = CreditPause(60, clock=clock)
    calls = recorder(pause)
    assert state(pause) == (False, None)
    assert pause.trip("no credits") is True
    assert state(pause) == (True, clock.now + 60)
    for _ in range(9):
        assert pause.trip("no credits") is False
    assert calls == [("no credits", clock.now + 60)]


def test_pause_ends_after_the_cooldown_without_re_arming() -> None:
    clock = Clock()
    pause = CreditPause(60, clock=clock)
    calls = recorder(pause)
    pause.trip("x")
    clock.now += 59.9
    assert pause.active()
    clock.now += 0.1
    assert state(pause) == (False, None)
    # Still no credits: pauses again, but the operator was already told.
    assert pause.trip("x") is False
    assert pause.paused_until == clock.now + 60
    assert len(calls) == 1


def test_a_later_trip_extends_the_pause() -> None:
    clock = Clock()
    pause = CreditPause(60, clock=clock)
    pause.trip("x")
    clock.now += 30
    pause.trip("x")
    assert pause.paused_until == clock.now + 60


def test_clear_lifts_the_pause_and_re_arms_the_notification() -> None:
    clock = Clock()
    pause = CreditPause(60, clock=clock)
    calls = recorder(pause)
    pause.trip("first")
    pause.clear()
    assert not pause.active()
    assert pause.paused_until is None
    assert pause.trip("second") is True
    assert [detail for detail, _ in calls] == ["first", "second"]


def test_zero_cooldown_notifies_but_never_pauses() -> None:
    pause = CreditPause(0, clock=Clock())
    calls = recorder(pause)
    assert pause.trip("x") is True
    assert pause.trip("x") is False
    assert not pause.active()
    assert pause.paused_until is None
    assert calls == [("x", None)]


def test_a_failing_listener_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pause = CreditPause(60, clock=Clock())

    def broken(detail: str, until: float | None) -> None:
        raise RuntimeError("webhook down")

    pause.listeners.append(broken)
    calls = recorder(pause)
    with caplog.at_level(logging.ERROR, logger="bot.credits"):
        assert pause.trip("x") is True
    assert len(calls) == 1
    assert pause.active()
    assert "listener failed" in caplog.text


@pytest.mark.parametrize("cooldown", [-1.0, float("nan"), float("inf")])
def test_invalid_cooldown_is_refused(cooldown: float) -> None:
    with pytest.raises(ValueError, match="cooldown"):
        CreditPause(cooldown)


def test_paused_error_is_a_segmind_error_that_is_never_retried() -> None:
    error = CreditsPausedError(paused_until=1234.5)
    assert isinstance(error, SegmindError)
    assert error.request_id is None
    assert error.paused_until == 1234.5
    assert "out of credits" in str(error)
    assert get_retryable(error) is False
    assert submit_retryable(error) is False
