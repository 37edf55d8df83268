"""A fair limit on jobs in flight: round-robin between requesters, each told its place."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

PositionCallback = Callable[[int], None]


@dataclass(eq=False, slots=True)
class _Waiter:
    key: Hashable
    future: asyncio.Future[None]
    on_position: PositionCallback | None
    reported: int | None = None  # last position told to on_position
    queued: bool = True  # still in its key's line (False once served or skipped)


class FairSlots:
    """Like a semaphore, but a freed slot goes to the next requester (key) in round-robin
    order, never to a newcomer while anyone waits. Each key with waiters gets one turn per
    round; a key that starts waiting joins the end of the rotation; within a key, first
    come first served. So a key with 20 jobs queued delays a later key by at most one job.
    Waiters learn their 1-based place in that service order whenever it changes."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.in_use = 0
        self.waiting = 0
        # Rotation of keys with waiters: the first key is served next, then moves to the end.
        self._lines: OrderedDict[Hashable, deque[_Waiter]] = OrderedDict()
        self._watched = 0  # waiters with an on_position: skip the order when none

    async def acquire(self, key: Hashable, on_position: PositionCallback | None = None) -> None:
        if self.in_use < self.capacity and not self.waiting:
            self.in_use += 1
            return
        waiter = _Waiter(key, asyncio.get_running_loop().create_future(), on_position)
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = deque()
        line.append(waiter)
        self.waiting += 1
        if on_position is not None:
            self._watched += 1
        self._announce()  # a new key can move others back: announce to everyone
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release()  # the slot was handed over just as we were cancelled
            elif waiter.queued:  # release() may already have dropped our cancelled future
                self._unqueue(waiter)
                self._lines[key].remove(waiter)
                if not self._lines[key]:
                    del self._lines[key]
                self._announce()
            raise

    def release(self) -> None:
        while self._lines:
            key, line = next(iter(self._lines.items()))
            waiter = line.popleft()
            if line:
                self._lines.move_to_end(key)  # served its turn: back of the rotation
            else:
                del self._lines[key]
            self._unqueue(waiter)
            if not waiter.future.done():  # done = cancelled, its task not yet resumed
                waiter.future.set_result(None)  # the slot passes on; in_use is unchanged
                self._announce()
                return
        self.in_use -= 1

    def snapshot(self) -> list[Hashable]:
        """Keys of the waiters in the order they will be served (for tests and status)."""
        return [waiter.key for waiter in self._service_order()]

    def _unqueue(self, waiter: _Waiter) -> None:
        waiter.queued = False
        self.waiting -= 1
        if waiter.on_position is not None:
            self._watched -= 1

    def _service_order(self) -> Iterator[_Waiter]:
        """Round r serves the r-th waiter of every key that has one, in rotation order;
        exhausted lines drop out, so this is O(waiters + keys)."""
        lines = [iter(line) for line in self._lines.values()]
        while lines:
            remaining = []
            for line in lines:
                waiter = next(line, None)
                if waiter is not None:
                    yield waiter
                    remaining.append(line)
            lines = remaining

    def _announce(self) -> None:
        if not self._watched:
            return
        # Listed first: a callback must not see (or disturb) the lines mid-iteration.
        order = list(self._service_order())
        for position, waiter in enumerate(order, start=1):
            if waiter.on_position is not None and waiter.reported != position:
                waiter.reported = position
                try:
                    waiter.on_position(position)
                except Exception:  # one bad callback must not break the queue for all
                    log.exception("Slot position callback failed")
