"""The Segmind request budget every bot process on the database shares (`SharedGrants`):
one row, `segmind_budget` (id 1), holding GCRA's `next_at`, the 429 pause and the log of
grant times, all on the database's clock so processes on several hosts agree. A grant is
one short transaction holding the row's lock; the rule itself is the local budget's
(`bot.segmind.budget.grant_wait`), applied to the row."""

from __future__ import annotations

from pathlib import Path

from ...segmind.budget import GrantRule, SharedGrants, grant_wait, next_at_after
from ..models import StoreError
from .base import PgBase

_NOW = "extract(epoch FROM clock_timestamp())::float8"
# The clock is read outside the locking subquery, so after the lock is ours: a time read
# while waiting for another process's grant would record ours before theirs.
_LOCKED = (
    f"SELECT {_NOW}, b.next_at, b.paused_until, b.grants FROM (SELECT next_at, paused_until, "
    "grants FROM segmind_budget WHERE id = 1 FOR UPDATE) AS b"
)
_GRANTED = "UPDATE segmind_budget SET next_at = $1, grants = $2 WHERE id = 1"
_PAUSE = (
    f"UPDATE segmind_budget SET paused_until = greatest(paused_until, {_NOW} + $1) WHERE id = 1"
)


class PgSharedGrants:
    """`SharedGrants` on a `PgBudget` store's pool (errors are the store's)."""

    def __init__(self, store: PgBudget) -> None:
        self._store = store

    async def take(self, rule: GrantRule) -> float:
        return await self._store.take_grant(rule)

    async def pause(self, seconds: float) -> None:
        await self._store.pause_grants(seconds)


class PgBudget(PgBase):
    """Mixed into `PostgresJobStore`."""

    def shared_budget(self) -> SharedGrants:
        return PgSharedGrants(self)

    async def take_grant(self, rule: GrantRule) -> float:
        """Record a grant now and return 0, or return the seconds until one fits."""
        async with self._transaction() as conn:
            row = await conn.fetchrow(_LOCKED)
            if row is None:
                raise StoreError(Path("postgresql"), f"{self.where}: segmind_budget has no row")
            now, next_at, paused_until, grants = float(row[0]), row[1], row[2], row[3]
            wait = grant_wait(rule, now, next_at, paused_until, grants)
            if wait > 0:
                return wait
            if rule.per_minute:  # unlimited: only the pause is shared, nothing to record
                live = [t for t in grants if t > now - rule.hold]
                await conn.execute(_GRANTED, next_at_after(rule, now, next_at), [*live, now])
            return 0.0

    async def pause_grants(self, seconds: float) -> None:
        """Hold every process's grants until the database's now + `seconds`."""
        with self._translated():
            await self._ready().execute(_PAUSE, max(0.0, seconds))
