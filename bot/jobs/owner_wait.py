"""Jobs waiting for their voice owner's answer: one future per job id.

The driver waits here before producing (`wait`), for at most what is left of the
job's stored deadline (`owner_pending_until`), so a restart simply waits again for
the rest of the time. The Discord side resolves it when the owner clicks (`answer`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import Enum


class OwnerVerdict(Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class OwnerAnswer:
    verdict: OwnerVerdict
    always: bool = False


class OwnerWaits:
    def __init__(self) -> None:
        self._futures: dict[int, asyncio.Future[OwnerAnswer]] = {}

    def _future(self, job_id: int) -> asyncio.Future[OwnerAnswer]:
        future = self._futures.get(job_id)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._futures[job_id] = future
        return future

    async def wait(self, job_id: int, deadline: float, *, now: float | None = None) -> OwnerAnswer:
        """The owner's answer, or TIMED_OUT once the stored deadline passes."""
        left = deadline - (time.time() if now is None else now)
        future = self._future(job_id)
        try:
            if left <= 0 and not future.done():
                return OwnerAnswer(OwnerVerdict.TIMED_OUT)
            return await asyncio.wait_for(asyncio.shield(future), timeout=max(left, 0.0))
        except TimeoutError:
            return OwnerAnswer(OwnerVerdict.TIMED_OUT)
        finally:
            if self._futures.get(job_id) is future:
                del self._futures[job_id]

    def answer(self, job_id: int, allowed: bool, always: bool = False) -> bool:
        """Resolve a waiting job; False when nothing waits (ended, or not yet resumed)."""
        future = self._futures.get(job_id)
        if future is None or future.done():
            return False
        verdict = OwnerVerdict.ALLOWED if allowed else OwnerVerdict.DENIED
        future.set_result(OwnerAnswer(verdict, always and allowed))
        return True

    def waiting(self, job_id: int) -> bool:
        return job_id in self._futures
