"""A FIFO limit on jobs in flight that tells each waiter its place in line."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

PositionCallback = Callable[[int], None]


@dataclass(eq=False, slots=True)
class _Waiter:
    future: asyncio.Future[None]
    on_position: PositionCallback | None


class FifoSlots:
    """Like a semaphore, but strictly first come, first served (a freed slot goes to the
    head of the line, never to a newcomer) and waiters learn their 1-based position."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.in_use = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, on_position: PositionCallback | None = None) -> None:
        if self.in_use < self.capacity and not self._waiters:
            self.in_use += 1
            return
        waiter = _Waiter(asyncio.get_running_loop().create_future(), on_position)
        self._waiters.append(waiter)
        if on_position is not None:
            on_position(len(self._waiters))
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release()  # the slot was handed over just as we were cancelled
            else:
                self._waiters.remove(waiter)
                self._announce()
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_result(None)  # the slot passes on; in_use is unchanged
                self._announce()
                return
        self.in_use -= 1

    def _announce(self) -> None:
        for position, waiter in enumerate(self._waiters, start=1):
            if waiter.on_position is not None:
                waiter.on_position(position)
