"""A global budget of requests per minute to Segmind, shared by every job.

A sliding-window log: at most `per_minute` grants in any `window` seconds. Waiters are
served by priority (submits before polls, so a new job is not starved by the polling of
old ones), FIFO within a priority (so polls rotate fairly over jobs). One timer wakes
the queue when the oldest grant leaves the window; nothing polls.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque


class Priority(enum.IntEnum):
    SUBMIT = 0
    POLL = 1


class RequestBudget:
    def __init__(self, per_minute: int, *, window: float = 60.0, margin: float = 0.05) -> None:
        if per_minute < 0 or window <= 0 or margin < 0:
            raise ValueError("per_minute must be >= 0, window > 0, margin >= 0")
        self.per_minute = per_minute  # 0: unlimited
        self.window = window
        # A grant leaves our window a little later than Segmind's: a request granted now
        # may reach Segmind later than one granted after it, and that must not count as
        # one too many there.
        self._hold = window * (1 + margin)
        self._grants: deque[float] = deque()
        self._queues: tuple[deque[asyncio.Future[None]], ...] = tuple(deque() for _ in Priority)
        self._paused_until = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.granted_total = 0

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues)

    def pause_for(self, seconds: float) -> None:
        """Hold every request for `seconds` (Segmind said Retry-After)."""
        loop = asyncio.get_running_loop()
        self._paused_until = max(self._paused_until, loop.time() + max(0.0, seconds))

    async def acquire(self, priority: Priority = Priority.POLL) -> None:
        loop = asyncio.get_running_loop()
        if not self.waiting and self._next_free(loop.time()) <= 0:
            self._grant(loop.time())
            return
        future: asyncio.Future[None] = loop.create_future()
        queue = self._queues[priority]
        queue.append(future)
        self._drain()
        try:
            await future
        except asyncio.CancelledError:
            # Still queued: just leave. A grant we got but cannot use stays counted,
            # which errs on the side of sending less.
            if (not future.done() or future.cancelled()) and future in queue:
                queue.remove(future)
            raise

    def _next_free(self, now: float) -> float:
        """Seconds until one more grant fits (<= 0: now)."""
        wait = self._paused_until - now
        if self.per_minute:
            while self._grants and self._grants[0] <= now - self._hold:
                self._grants.popleft()
            if len(self._grants) >= self.per_minute:
                wait = max(wait, self._grants[0] + self._hold - now)
        return wait

    def _grant(self, now: float) -> None:
        self.granted_total += 1
        if self.per_minute:
            self._grants.append(now)

    def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = None
        for queue in self._queues:
            while queue:
                now = loop.time()
                wait = self._next_free(now)
                if wait > 0:
                    self._schedule(loop, wait)
                    return
                future = queue.popleft()
                if future.done():  # cancelled while queued
                    continue
                self._grant(now)
                future.set_result(None)

    def _schedule(self, loop: asyncio.AbstractEventLoop, wait: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(wait, self._drain)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
