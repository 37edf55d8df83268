"""A global budget of requests per minute to Segmind, shared by every job.

`SEGMIND_RPM` is a rate, not a bucket to empty: grants are spaced evenly over the minute
(`interval` apart, with a burst of a few after an idle spell), so the account never sits
idle while a request waits, and a sliding-window log makes sure no `window` ever holds
more than `per_minute` grants whatever the timing. Waiters are served by priority:
submits first (FIFO), then the poll whose job is most likely finished (its `rank`,
asked at grant time; FIFO among equals). A 429 pauses every grant until Segmind's reset.
One timer wakes the queue when the next grant fits; nothing polls.

Several processes on one account share it through `SharedGrants` (PostgreSQL's
`segmind_budget` row): a grant then needs the shared one too, asked by one dispatcher
task per process, and a 429 seen by one pauses all. The rule (`grant_wait`) is written
once, here, and applied to the local log and the shared row alike.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

Rank = Callable[[], float]

log = logging.getLogger(__name__)

MIN_SLACK = 0.05  # seconds
SHARED_TIMEOUT = 5.0  # seconds a shared call may take before it counts as failed
SHARED_BACKOFF = (0.5, 5.0)  # seconds before asking again after a failure: first, at most
TIMER_SLACK = 0.002  # asyncio may wake a timer a clock tick early: not worth a round trip


class Priority(enum.IntEnum):
    SUBMIT = 0
    POLL = 1


@dataclass(order=True, slots=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)
    rank: Rank | None = field(compare=False)


@dataclass(frozen=True, slots=True)
class GrantRule:
    """What one budget allows: `per_minute` (0: unlimited) grants per `hold` seconds
    (Segmind's window plus a margin), `interval` apart after a `burst`."""

    per_minute: int
    hold: float
    interval: float
    burst: int


def grant_wait(
    rule: GrantRule, now: float, next_at: float, paused_until: float, grants: Sequence[float]
) -> float:
    """Seconds until one more grant fits (<= 0: now), given GCRA's `next_at`, the pause and
    the log of grant times (any order; those older than the hold are ignored)."""
    wait = paused_until - now
    if rule.per_minute:
        wait = max(wait, next_at - (rule.burst - 1) * rule.interval - now)
        live = sorted(t for t in grants if t > now - rule.hold)
        excess = len(live) - rule.per_minute
        if excess >= 0:  # one fits when all but per_minute - 1 of them have left
            wait = max(wait, live[excess] + rule.hold - now)
    return wait


def next_at_after(rule: GrantRule, now: float, next_at: float) -> float:
    """GCRA's `next_at` once a grant is made at `now`."""
    return max(next_at, now) + rule.interval


class SharedGrants(Protocol):
    """The budget every process on the account shares (the store implements it; the core
    never imports the store). Calls may raise anything: the budget logs and retries."""

    async def take(self, rule: GrantRule) -> float:
        """Atomically for all processes: record a grant now and return 0, or return the
        seconds to wait before one could fit by `rule` (nothing recorded)."""
        ...

    async def pause(self, seconds: float) -> None:
        """Hold every process's grants until now + `seconds`."""
        ...


@runtime_checkable
class OffersSharedGrants(Protocol):
    def shared_budget(self) -> SharedGrants: ...


def shared_grants_of(store: object) -> SharedGrants | None:
    """The store's shared budget, if it has one (PostgreSQL: several processes)."""
    return store.shared_budget() if isinstance(store, OffersSharedGrants) else None


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
        shared: SharedGrants | None = None,
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
        self.rule = GrantRule(per_minute, self._hold, self.interval, self.burst)
        self._shared = shared
        self._shared_free_at = 0.0  # loop time the shared row last said a grant may fit
        self._dispatcher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # the dispatcher looks again: queue or pause changed
        self._tasks: set[asyncio.Task[None]] = set()  # pauses on their way to `shared`
        self._closed = False

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def has_room(self) -> bool:
        """A request asked for now would be granted at once, ahead of nobody."""
        now = self._now()
        return not self._waiters and self._next_free(now) <= 0 and now >= self._shared_free_at

    def pause_for(self, seconds: float) -> None:
        """Hold every request (downloads too, see `wait_unpaused`) for `seconds`:
        Segmind said 429, with its Retry-After or its reset time. With `shared`, every
        process's grants are held too (sent in the background: the caller must not wait
        on the database)."""
        until = self._now() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self._resumed.clear()
            self._schedule(asyncio.get_running_loop(), seconds)
        if self._shared is not None and not self._closed:
            task = asyncio.get_running_loop().create_task(self._share_pause(seconds))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def available(self) -> float:
        """Requests that would be granted back to back right now (inf: no limit)."""
        if not self.per_minute:
            return 0.0 if self.paused_for > 0 else math.inf
        now = self._now()
        if now < max(self._paused_until, self._shared_free_at):
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
        if self._shared is None and not self._waiters and self._next_free(loop.time()) <= 0:
            self._grant(loop.time())
            return
        waiter = _Waiter(priority, next(self._seq), loop.create_future(), rank)
        self._waiters.append(waiter)
        if self._shared is None:
            self._drain()
        else:
            self._dispatch_soon()
        try:
            await waiter.future
        except asyncio.CancelledError:
            # Still queued: just leave. A grant we got but cannot use stays counted,
            # which errs on the side of sending less.
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                self._wake.set()  # with `shared`: the dispatcher may have nobody left
            raise

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _next_free(self, now: float) -> float:
        """Seconds until one more grant fits here (<= 0: now)."""
        while self._grants and self._grants[0] <= now - self._hold:
            self._grants.popleft()
        return grant_wait(self.rule, now, self._next_at, self._paused_until, self._grants)

    def _grant(self, now: float) -> None:
        self.granted_total += 1
        if self.per_minute:
            self._next_at = next_at_after(self.rule, now, self._next_at)
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
        if self._shared is not None:
            self._wake.set()  # the dispatcher grants; the timer only ends pauses
            return
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

    # -- with `shared`: one dispatcher task grants, one waiter at a time ------------------

    def _dispatch_soon(self) -> None:
        self._wake.set()
        if not self._closed and (self._dispatcher is None or self._dispatcher.done()):
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    def _drop_cancelled(self) -> None:
        self._waiters = [w for w in self._waiters if not w.future.done()]

    async def _dispatch(self) -> None:
        """Until the queue is empty: wait for room here and in `shared`, then grant the
        waiter picked at that moment. Stopped by `close()`."""
        assert self._shared is not None
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            self._wake.clear()  # before looking, so a change meanwhile wakes the sleep
            self._drop_cancelled()
            if not self._waiters:
                return
            now = loop.time()
            wait = max(self._next_free(now), self._shared_free_at - now)
            if wait > 0:
                # At most a hold, so a queue emptied by cancellations (or a pause lifted
                # elsewhere) is seen in time.
                await self._sleep(min(wait, self._hold) + TIMER_SLACK)
                continue
            try:
                async with asyncio.timeout(SHARED_TIMEOUT):
                    shared_wait = await self._shared.take(self.rule)
            except Exception as exc:
                if not failures:
                    log.warning("shared Segmind budget unavailable, retrying: %s", _said(exc))
                failures += 1
                # Through _shared_free_at: new waiters wake the sleep, not the database.
                backoff = min(SHARED_BACKOFF[0] * 2 ** (failures - 1), SHARED_BACKOFF[1])
                self._shared_free_at = loop.time() + backoff
                continue
            if failures:
                log.info("shared Segmind budget answers again")
                failures = 0
            now = loop.time()
            if shared_wait > 0:
                # Asked again after that wait, or once a hold at most (another process's
                # pause may be long, or lifted by an operator).
                self._shared_free_at = now + min(shared_wait, self._hold)
                continue
            self._shared_free_at = 0.0
            self._drop_cancelled()
            self._grant(now)  # counted even if nobody is left to use it: errs on less
            # A 429 seen while we asked: this grant would only meet another one.
            if self._waiters and now >= self._paused_until:
                try:
                    waiter = self._pick()
                except Exception:  # a broken rank must not stop every grant
                    log.exception("a poll's rank failed; serving the queue in order")
                    waiter = min(self._waiters)
                self._waiters.remove(waiter)
                waiter.future.set_result(None)

    async def _sleep(self, seconds: float) -> None:
        """Bounded, and cut short when the queue or a pause changes."""
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _share_pause(self, seconds: float) -> None:
        assert self._shared is not None
        try:
            async with asyncio.timeout(SHARED_TIMEOUT):
                await self._shared.pause(seconds)
        except Exception as exc:
            log.warning("could not pause the shared Segmind budget: %s", _said(exc))

    def close(self) -> None:
        """Stop the timer and, with `shared`, the dispatcher and pauses in flight (queued
        waiters stay queued: their callers have deadlines)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks: list[asyncio.Task[None]] = [*self._tasks]
        if self._dispatcher is not None:
            tasks.append(self._dispatcher)
            self._dispatcher = None
        for task in tasks:
            task.cancel()


def _said(exc: BaseException) -> str:
    """An error for the log: the store's messages name the database, never its URL;
    anything else is named by its type only, in case its text holds one."""
    if type(exc).__module__.startswith("bot.") and str(exc):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__
