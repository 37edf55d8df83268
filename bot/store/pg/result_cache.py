"""The result cache on the PostgreSQL store (the `ResultCacheStore` half, as
`bot/store/result_cache.py` on SQLite): delivered results kept under a hash of (clip
bytes, language, text), looked up, bounded by age and size, deleted by clip, saved voice
or voice owner; and the two job transitions a cache hit needs.

A put replaces the entry of its key, then evicts the least recently used past
`max_bytes`, in one transaction under an advisory lock: two processes putting at once
cannot leave the cache over its bound, nor evict on a total the other changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, fields
from typing import Any

from ..models import CachedResult
from ..result_cache import forget_statement
from .base import PgBase, numbered

_COLUMNS = tuple(f.name for f in fields(CachedResult))
_SELECT = ", ".join(_COLUMNS)
_LOCK_CACHE = "SELECT pg_advisory_xact_lock(1987012, 0)"
# The least recently used entries past the first `max_bytes` (newest use first; of two
# used at the same time, the later put first, as SQLite's rowid orders them).
_EVICT = (
    "DELETE FROM result_cache WHERE key IN (SELECT key FROM (SELECT key, SUM(size) OVER "
    "(ORDER BY last_used_at DESC, seq DESC ROWS UNBOUNDED PRECEDING) AS running "
    "FROM result_cache) AS kept WHERE running > $1)"
)


def _entry(row: Sequence[Any]) -> CachedResult:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["audio"] = bytes(values["audio"])
    return CachedResult(**values)


def _count(status: str) -> int:
    """The rows a command's status names ("DELETE 3")."""
    return int(status.rsplit(" ", 1)[-1])


class PgResultCache(PgBase):
    """Mixed into `PostgresJobStore`. Writes go through `_fetch` and `_transaction`: as on
    SQLite, `writes` counts the jobs' transitions, not these."""

    async def cache_lookup(self, key: str, made_since: float) -> CachedResult | None:
        """The entry for `key` made at or after `made_since`, marked used now; None if
        there is none (or only an older one, which the next purge removes)."""
        row = await self._fetchrow(
            "UPDATE result_cache SET last_used_at = $1 WHERE key = $2 AND created_at >= $3 "
            f"RETURNING {_SELECT}",
            self._clock(),
            key,
            made_since,
        )
        return None if row is None else _entry(row)

    async def cache_put(self, entry: CachedResult, max_bytes: int) -> int:
        """Keep `entry` (an entry with its key is replaced: a fresh take is the newest),
        then evict the least recently used past `max_bytes` in all; return how many."""
        values = astuple(entry)
        async with self._transaction() as conn:
            await conn.execute(_LOCK_CACHE)
            # Delete and insert, as SQLite's INSERT OR REPLACE: the new row is the newest.
            await conn.execute("DELETE FROM result_cache WHERE key = $1", entry.key)
            await conn.execute(
                f"INSERT INTO result_cache ({_SELECT}) "
                f"VALUES ({', '.join(f'${i}' for i in range(1, len(_COLUMNS) + 1))})",
                *values,
            )
            return _count(await conn.execute(_EVICT, max_bytes))

    async def cache_expire(self, older_than_seconds: float) -> int:
        """Delete the entries made more than `older_than_seconds` ago; return how many."""
        rows = await self._fetch(
            "DELETE FROM result_cache WHERE created_at < $1 RETURNING key",
            self._clock() - older_than_seconds,
        )
        return len(rows)

    async def cache_forget(
        self,
        *,
        sample_sha256: str | None = None,
        voice_id: int | None = None,
        voice_owner_id: int | None = None,
    ) -> int:
        """Delete every entry made from that clip, that saved voice or that owner's voice
        (any of those given); return how many."""
        statement = forget_statement(sample_sha256, voice_id, voice_owner_id)
        if statement is None:
            return 0
        sql, values = statement
        rows = await self._fetch(numbered(sql), *values)
        return len(rows)

    async def cache_usage(self) -> tuple[int, int]:
        """(entries, bytes of audio) in the cache."""
        row = await self._fetchrow("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM result_cache")
        assert row is not None
        return int(row[0]), int(row[1])
