"""The result cache on the SQLite store (the `ResultCacheStore` half): delivered results
kept under a hash of (clip bytes, language, text), looked up, bounded by age and size,
and deleted by clip, saved voice or voice owner; and the two job transitions a cache
hit needs (a job answered from the cache, and a one-off clip's hash recorded).

An entry's audio is kept in its row: results worth caching are small (the bot caps
them at `CACHE_AUDIO_MAX`), and a row is written, read and deleted in one statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import astuple, fields
from typing import Any, TypeVar

from .models import CachedResult, JobState
from .transitions import OPEN_STATES, change

T = TypeVar("T")

_COLUMNS = tuple(f.name for f in fields(CachedResult))
_SELECT = ", ".join(_COLUMNS)
# The least recently used entries past the first `max_bytes` (newest use first).
_EVICT = (
    "DELETE FROM result_cache WHERE key IN (SELECT key FROM (SELECT key, SUM(size) OVER "
    "(ORDER BY last_used_at DESC, rowid DESC) AS running FROM result_cache) WHERE running > ?)"
)
# Answered from the cache: straight to DELIVERING with the stored audio, from a job that
# never started a submit (so it can never have cost anything, nor cost anything later).
CACHED = change(
    "mark_cached",
    (JobState.ACCEPTED,),
    JobState.DELIVERING,
    (
        "audio",
        "audio_path",
        "audio_content_type",
        "audio_extension",
        "audio_url",
        "audio_size",
        "cached_from",
        "sample_sha256",
        "original_message_id",
    ),
    increments=("attempts",),
    condition=" AND submit_started_at IS NULL",
)
# The interaction's message id rides along: until the submit-started mark it is known
# only in memory (see `StoreJournal`), and the record these return replaces the caller's.
SAMPLE_SHA256 = change(
    "set_sample_sha256", OPEN_STATES, None, ("sample_sha256", "original_message_id")
)


def _entry(row: Sequence[Any]) -> CachedResult:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["audio"] = bytes(values["audio"])
    return CachedResult(**values)


def _put(conn: sqlite3.Connection, values: tuple[object, ...], max_bytes: int) -> int:
    """Writer thread: store the entry (replacing an older take) and evict, atomically."""
    conn.execute(
        f"INSERT OR REPLACE INTO result_cache ({_SELECT}) "
        f"VALUES ({', '.join('?' * len(_COLUMNS))})",
        values,
    )
    return int(conn.execute(_EVICT, (max_bytes,)).rowcount)


class ResultCacheQueries:
    """Mixed into `SqliteJobStore` (its `_query` and `_write`)."""

    _clock: Callable[[], float]

    async def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def _write(self, work: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    async def cache_lookup(self, key: str, made_since: float) -> CachedResult | None:
        """The entry for `key` made at or after `made_since`, marked used now; None if
        there is none (or only an older one, which the next purge removes)."""
        rows = await self._query(
            f"UPDATE result_cache SET last_used_at = ? WHERE key = ? AND created_at >= ? "
            f"RETURNING {_SELECT}",
            (self._clock(), key, made_since),
        )
        return _entry(rows[0]) if rows else None

    async def cache_put(self, entry: CachedResult, max_bytes: int) -> int:
        """Keep `entry` (an entry with its key is replaced: a fresh take is the newest),
        then evict the least recently used past `max_bytes` in all; return how many."""
        return await self._write(_put, astuple(entry), max_bytes)

    async def cache_expire(self, older_than_seconds: float) -> int:
        """Delete the entries made more than `older_than_seconds` ago; return how many."""
        rows = await self._query(
            "DELETE FROM result_cache WHERE created_at < ? RETURNING key",
            (self._clock() - older_than_seconds,),
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
        rows = await self._query(*statement)
        return len(rows)

    async def cache_usage(self) -> tuple[int, int]:
        """(entries, bytes of audio) in the cache."""
        rows = await self._query("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM result_cache")
        return int(rows[0][0]), int(rows[0][1])


def forget_statement(
    sample_sha256: str | None, voice_id: int | None, voice_owner_id: int | None
) -> tuple[str, tuple[object, ...]] | None:
    """`cache_forget`'s DELETE (with `?` parameters) and its values, for whichever of the
    three are given; None if none is."""
    wanted = {
        "sample_sha256": sample_sha256,
        "voice_id": voice_id,
        "voice_owner_id": voice_owner_id,
    }
    given = {name: value for name, value in wanted.items() if value is not None}
    if not given:
        return None
    where = " OR ".join(f"{name} = ?" for name in given)
    return f"DELETE FROM result_cache WHERE {where} RETURNING key", tuple(given.values())
