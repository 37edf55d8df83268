"""A global budget of requests per minute to Segmind, shared by every job.

`SEGMIND_RPM` is a rate, not a bucket to empty: grants are spaced evenly over the minute
(`interval` apart, with a burst of a few after an idle spell), so the account never sits
idle while a request waits, and a sliding-window log makes sure no `window` ever holds
more than `per_minute` grants whatever the timing. Waiters are served by priority:
submits first (FIFO), then the poll whose job is most likely finished (its `rank`,
asked at grant time; FIFO among equals). A 429 pauses every grant until Segmind's reset.
One timer wakes the queue when the next grant fits; nothing polls.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Rank = Callable[[], float]


MIN_SLACK = 0.05  # seconds


class Priority(enum.IntEnum):
    SUBMIT = 0
    POLL = 1


@dataclass(order=True, slots=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)
    rank: Rank | None = field(compare=False)


def default_burst(per_minute: int) -> int:
    """Grants allowed back to back after an idle spell: 1 on the Free plan (5/min), a few
    on bigger plans, so a new job's submit rarely waits for a poll's spacing."""
    return 1 + per_minute // 25


class RequestBudget:
    def __init__(
        self,
        per_minute: int,
        *,
        window: float = 60.0,
        margin: float = 0.02,
        burst: int | None = None,
    ) -> None:
        if per_minute < 0 or window <= 0 or margin < 0:
            raise ValueError("per_minute must be >= 0, window > 0, margin >= 0")
        self.per_minute = per_minute  # 0: unlimited
        self.window = window
        # A grant leaves our window a little later than Segmind's: a request granted now
        # may reach Segmind later than one granted after it, and that must not count as
        # one too many there. Network jitter is absolute, hence a floor under the margin.
        self._hold = window + max(window * margin, MIN_SLACK)
        self.interval = self._hold / per_minute if per_minute else 0.0
        self.burst = max(1, burst if burst is not None else default_burst(per_minute))
        self._next_at = 0.0  # GCRA's theoretical time of the next evenly spaced grant
        self._grants: deque[float] = deque()
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._paused_until = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()
        self.granted_total = 0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def has_room(self) -> bool:
        """A request asked for now would be granted at once, ahead of nobody."""
        return not self._waiters and self._next_free(self._now()) <= 0

    def pause_for(self, seconds: float) -> None:
        """Hold every request (downloads too, see `wait_unpaused`) for `seconds`:
        Segmind said 429, with its Retry-After or its reset time."""
        until = self._now() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self._resumed.clear()
            self._schedule(asyncio.get_running_loop(), seconds)

    def available(self) -> float:
        """Requests that would be granted back to back right now (inf: no limit)."""
        if not self.per_minute:
            return 0.0 if self.paused_for > 0 else math.inf
        now = self._now()
        if now < self._paused_until:
            return 0.0
        burst_left = self.burst - max(0.0, self._next_at - now) / self.interval
        window_left = self.per_minute - sum(1 for t in self._grants if t > now - self._hold)
        return float(max(0, min(math.floor(burst_left + 1e-9), window_left)))

    @property
    def paused_for(self) -> float:
        """Seconds the budget stays paused (0: not paused)."""
        return max(0.0, self._paused_until - self._now())

    async def wait_unpaused(self) -> None:
        """Wait out a 429 pause without spending a grant (result downloads)."""
        while self.paused_for > 0:
            self._resumed.clear()
            self._schedule(asyncio.get_running_loop(), self.paused_for)
            await self._resumed.wait()

    async def acquire(self, priority: Priority = Priority.POLL, rank: Rank | None = None) -> None:
        """Wait for a grant. `rank` (polls): higher means more likely to find its job done."""
        loop = asyncio.get_running_loop()
        if not self._waiters and self._next_free(loop.time()) <= 0:
            self._grant(loop.time())
            return
        waiter = _Waiter(priority, next(self._seq), loop.create_future(), rank)
        self._waiters.append(waiter)
        self._drain()
        try:
            await waiter.future
        except asyncio.CancelledError:
            # Still queued: just leave. A grant we got but cannot use stays counted,
            # which errs on the side of sending less.
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _next_free(self, now: float) -> float:
        """Seconds until one more grant fits (<= 0: now)."""
        wait = self._paused_until - now
        if self.per_minute:
            wait = max(wait, self._next_at - (self.burst - 1) * self.interval - now)
            while self._grants and self._grants[0] <= now - self._hold:
                self._grants.popleft()
            if len(self._grants) >= self.per_minute:
                wait = max(wait, self._grants[0] + self._hold - now)
        return wait

    def _grant(self, now: float) -> None:
        self.granted_total += 1
        if self.per_minute:
            self._next_at = max(self._next_at, now) + self.interval
            self._grants.append(now)

    def _pick(self) -> _Waiter:
        """The submit that came first, else the poll most likely to find its job done."""
        best = min(self._waiters)
        if best.priority == Priority.POLL and len(self._waiters) > 1:
            best = max(self._waiters, key=lambda w: (w.rank() if w.rank else 0.0, -w.seq))
        return best

    def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()  # this run reschedules what it still needs
            self._timer = None
        now = loop.time()
        if now >= self._paused_until:
            self._resumed.set()
        while self._waiters:
            wait = self._next_free(now)
            if wait > 0:
                self._schedule(loop, wait)
                return
            waiter = self._pick()
            self._waiters.remove(waiter)
            if waiter.future.done():  # cancelled while queued
                continue
            self._grant(now)
            waiter.future.set_result(None)

    def _schedule(self, loop: asyncio.AbstractEventLoop, wait: float) -> None:
        if self._timer is not None:
            if self._timer.when() <= loop.time() + wait:
                return  # an earlier wake-up is set; it reschedules if needed
            self._timer.cancel()
        self._timer = loop.call_later(wait, self._drain)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
