"""Event-loop lag: a ticker that sleeps a short period and records how late it wakes.

Anything that holds the loop (CPU work in callbacks, the GIL held by other threads) shows
up directly as lateness, which is what a Discord gateway heartbeat would suffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a value really seen)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = math.ceil(pct / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


class LagTicker:
    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.lags: list[float] = []
        """Seconds each wake came after the intended time."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _tick(self) -> None:
        # perf_counter, not loop.time(): uvloop's clock only moves in whole milliseconds.
        while True:
            intended = time.perf_counter() + self.period
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, time.perf_counter() - intended))

    def stats_ms(self) -> tuple[float, float, float]:
        """(p50, p99, max) in milliseconds."""
        if not self.lags:
            return math.nan, math.nan, math.nan
        return (
            percentile(self.lags, 50) * 1000,
            percentile(self.lags, 99) * 1000,
            max(self.lags) * 1000,
        )
