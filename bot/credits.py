"""Pause new submits after Segmind says the account is out of credits (HTTP 406).

Without it, every queued job would be submitted in turn only to earn its own 406 (and each
would page the operator). With it, the first 406 starts a cooldown during which jobs fail
at once with `CreditsPausedError`, and the operator is told once until credits come back.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from .segmind.errors import SegmindError

log = logging.getLogger(__name__)

# Called with Segmind's detail and the pause's end (epoch seconds; None when cooldown is 0).
TripListener = Callable[[str, float | None], None]


class CreditsPausedError(SegmindError):
    """Not sent: submits are paused after an out-of-credits answer. Never retryable (not
    one of retry.py's transient classes): retrying before `paused_until` is pointless."""

    summary = "The Segmind account is out of credits; new jobs are paused."

    def __init__(self, detail: str = "", *, paused_until: float | None) -> None:
        self.paused_until = paused_until
        super().__init__(detail, request_id=None)


class CreditPause:
    """Shared by all jobs of one runner. `paused_until` is wall-clock epoch seconds (users
    see it as a Discord <t:…:R> timestamp). Expiry lifts the pause but does not re-arm the
    notification: only `clear()` (a submit succeeded) does, so a still-empty account does
    not page the operator again every cooldown."""

    def __init__(self, cooldown: float, *, clock: Callable[[], float] = time.time) -> None:
        if not math.isfinite(cooldown) or cooldown < 0:
            raise ValueError("cooldown must be a finite number of seconds >= 0")
        self.cooldown = cooldown
        self.listeners: list[TripListener] = []
        self._clock = clock
        self._until: float | None = None
        self._notified = False

    @property
    def paused_until(self) -> float | None:
        return self._until if self.active() else None

    def active(self) -> bool:
        return self._until is not None and self._clock() < self._until

    def trip(self, detail: str) -> bool:
        """Start or extend the pause; True (and listeners called) only on the first trip
        since the last `clear()`. A cooldown of 0 never pauses, but still notifies once."""
        if self.cooldown > 0:
            until = self._clock() + self.cooldown
            self._until = until if self._until is None else max(self._until, until)
        if self._notified:
            return False
        self._notified = True
        # Listeners tell the operator; this line only dates the pause for the log.
        log.info("Submits paused for %.0f s (Segmind: %s)", self.cooldown, detail or "HTTP 406")
        for listener in list(self.listeners):
            try:
                listener(detail, self.paused_until)
            except Exception:  # the pause must hold even if a notification fails
                log.exception("Credit pause listener failed")
        return True

    def clear(self) -> None:
        self._until = None
        self._notified = False
