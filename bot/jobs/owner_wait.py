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
    UNREACHABLE = "unreachable"  # the owner could not be asked (DMs closed, no channel)


@dataclass(frozen=True)
class OwnerAnswer:
    verdict: OwnerVerdict
    always: bool = False


class OwnerWaits:
    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[OwnerAnswer]] = {}

    def _future(self, job_id: str) -> asyncio.Future[OwnerAnswer]:
        future = self._futures.get(job_id)
        if future is None:
            future = self._futures[job_id] = asyncio.get_running_loop().create_future()
        return future

    async def wait(self, job_id: str, deadline: float, *, now: float | None = None) -> OwnerAnswer:
        """The owner's answer, or TIMED_OUT once the stored deadline passes."""
        left = deadline - (time.time() if now is None else now)
        future = self._future(job_id)  # done already: answered before the wait began
        try:
            if left <= 0 and not future.done():
                return OwnerAnswer(OwnerVerdict.TIMED_OUT)
            return await asyncio.wait_for(asyncio.shield(future), timeout=max(left, 0.0))
        except TimeoutError:
            return OwnerAnswer(OwnerVerdict.TIMED_OUT)
        finally:
            if self._futures.get(job_id) is future:
                del self._futures[job_id]

    def answer(self, job_id: str, verdict: OwnerVerdict, always: bool = False) -> bool:
        """Resolve the job's wait. An answer that comes before the wait began (a click
        after a restart, before recovery reached the job) is kept for it: the caller
        checked that the stored job waits. False if it was answered already."""
        future = self._future(job_id)
        if future.done():
            return False
        future.set_result(OwnerAnswer(verdict, always and verdict is OwnerVerdict.ALLOWED))
        return True

    def waiting(self, job_id: str) -> bool:
        return job_id in self._futures
