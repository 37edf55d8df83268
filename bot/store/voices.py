"""Saved-voice queries on the SQLite store (the `VoiceStore` half): a member's voices with
their kept bytes, the servers they are shared with, and which of them a request in a
server may use (never a voice whose owner opted out there)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# Everything but the bytes: listing and autocomplete never load clips.
_COLUMNS = (
    "id, owner_id, name, sha256, content_type, filename, storage_url, uploaded_at, "
    "is_default, created_at, length(sample)"
)
# The voice's owner has not opted out in the server asked about (the first parameter).
_NOT_OPTED_OUT = (
    "NOT EXISTS (SELECT 1 FROM members m WHERE m.guild_id = ? AND m.user_id = v.owner_id "
    "AND m.opted_out_at IS NOT NULL)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceRecord:
    """One saved voice, without its bytes (`voice_sample` reads them)."""

    id: int
    owner_id: int
    name: str
    sha256: str
    content_type: str
    filename: str
    storage_url: str | None
    uploaded_at: float | None
    is_default: bool
    created_at: float
    size: int
    shared: bool = False  # with the server it was looked up in


class VoiceLimitReached(Exception):
    """The owner already keeps as many voices as allowed."""


class VoiceNameTaken(Exception):
    """The owner has a voice of that name already (names ignore case)."""


# Refusals found on the writer thread come back as values: an exception there would
# make the writer distrust its connection.
_LIMIT = -1
_TAKEN = -2


def _raise_refusal(result: int) -> int:
    if result == _LIMIT:
        raise VoiceLimitReached
    if result == _TAKEN:
        raise VoiceNameTaken
    return result


def voice_from_row(row: Sequence[Any], shared: bool = False) -> VoiceRecord:
    """A `voices` row selected in this module's column order (both backends use it)."""
    return VoiceRecord(
        id=int(row[0]),
        owner_id=int(row[1]),
        name=str(row[2]),
        sha256=str(row[3]),
        content_type=str(row[4]),
        filename=str(row[5]),
        storage_url=row[6],
        uploaded_at=row[7],
        is_default=bool(row[8]),
        created_at=float(row[9]),
        size=int(row[10]),
        shared=shared,
    )


def _insert(
    conn: sqlite3.Connection,
    owner_id: int,
    name: str,
    sample: bytes,
    meta: tuple[str, str, str, str | None],
    limit: int,
    now: float,
) -> int:
    """On the writer thread, in one commit: the count and the insert cannot race."""
    (count,) = conn.execute(
        "SELECT COUNT(*) FROM voices WHERE owner_id = ?", (owner_id,)
    ).fetchone()
    if count >= limit:
        return _LIMIT
    taken = conn.execute(
        "SELECT 1 FROM voices WHERE owner_id = ? AND name = ? COLLATE NOCASE", (owner_id, name)
    ).fetchone()
    if taken:
        return _TAKEN
    sha256, content_type, filename, storage_url = meta
    cursor = conn.execute(
        "INSERT INTO voices (owner_id, name, sample, sha256, content_type, filename, "
        "storage_url, uploaded_at, is_default, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            owner_id,
            name,
            sample,
            sha256,
            content_type,
            filename,
            storage_url,
            now if storage_url else None,
            int(count == 0),  # the first voice is the default
            now,
        ),
    )
    assert cursor.lastrowid is not None
    return int(cursor.lastrowid)


def _delete(conn: sqlite3.Connection, owner_id: int, voice_id: int) -> bool:
    gone = conn.execute(
        "DELETE FROM voices WHERE id = ? AND owner_id = ?", (voice_id, owner_id)
    ).rowcount
    if gone:
        conn.execute("DELETE FROM voice_shares WHERE voice_id = ?", (voice_id,))
    return bool(gone)


def _rename(conn: sqlite3.Connection, owner_id: int, voice_id: int, name: str) -> int:
    taken = conn.execute(
        "SELECT 1 FROM voices WHERE owner_id = ? AND name = ? COLLATE NOCASE AND id != ?",
        (owner_id, name, voice_id),
    ).fetchone()
    if taken:
        return _TAKEN
    cursor = conn.execute(
        "UPDATE voices SET name = ? WHERE id = ? AND owner_id = ?", (name, voice_id, owner_id)
    )
    return int(bool(cursor.rowcount))


def _set_default(conn: sqlite3.Connection, owner_id: int, voice_id: int) -> bool:
    found = conn.execute(
        "SELECT 1 FROM voices WHERE id = ? AND owner_id = ?", (voice_id, owner_id)
    ).fetchone()
    if not found:
        return False
    conn.execute("UPDATE voices SET is_default = (id = ?) WHERE owner_id = ?", (voice_id, owner_id))
    return True


class VoiceQueries:
    """Mixed into `SqliteJobStore`: `_query` runs one statement, `_write` a function on
    the writer thread, each in the writer's next commit."""

    _clock: Callable[[], float]

    async def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def _write(self, work: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    async def add_voice(
        self,
        owner_id: int,
        name: str,
        sample: bytes,
        *,
        sha256: str,
        content_type: str,
        filename: str,
        storage_url: str | None,
        limit: int,
    ) -> int:
        """Keep a new voice; its id. Raises `VoiceLimitReached` or `VoiceNameTaken`."""
        meta = (sha256, content_type, filename, storage_url)
        now = self._clock()
        return _raise_refusal(await self._write(_insert, owner_id, name, sample, meta, limit, now))

    async def own_voices(self, owner_id: int) -> list[VoiceRecord]:
        rows = await self._query(
            f"SELECT {_COLUMNS} FROM voices WHERE owner_id = ? ORDER BY name COLLATE NOCASE",
            (owner_id,),
        )
        return [voice_from_row(row) for row in rows]

    async def voice_named(self, owner_id: int, name: str) -> VoiceRecord | None:
        rows = await self._query(
            f"SELECT {_COLUMNS} FROM voices WHERE owner_id = ? AND name = ? COLLATE NOCASE",
            (owner_id, name),
        )
        return voice_from_row(rows[0]) if rows else None

    async def usable_voices(self, guild_id: int | None, user_id: int) -> list[VoiceRecord]:
        """What `user_id` may speak with in `guild_id`: their own voices and the voices
        shared with that server, minus those whose owner opted out there."""
        if guild_id is None:  # a DM: one's own voices only
            return await self.own_voices(user_id)
        columns = ", ".join(f"v.{c.strip()}" for c in _COLUMNS.split(", ")[:-1])
        rows = await self._query(
            f"SELECT {columns}, length(v.sample), s.guild_id IS NOT NULL FROM voices v "
            "LEFT JOIN voice_shares s ON s.voice_id = v.id AND s.guild_id = ? "
            f"WHERE (v.owner_id = ? OR s.guild_id IS NOT NULL) AND {_NOT_OPTED_OUT} "
            "ORDER BY v.owner_id != ?, v.name COLLATE NOCASE",
            (guild_id, user_id, guild_id, user_id),
        )
        return [voice_from_row(row, bool(row[11])) for row in rows]

    async def voice_sample(self, voice_id: int) -> bytes | None:
        rows = await self._query("SELECT sample FROM voices WHERE id = ?", (voice_id,))
        return bytes(rows[0][0]) if rows else None

    async def get_voice(self, voice_id: int) -> VoiceRecord | None:
        rows = await self._query(f"SELECT {_COLUMNS} FROM voices WHERE id = ?", (voice_id,))
        return voice_from_row(rows[0]) if rows else None

    async def rename_voice(self, owner_id: int, voice_id: int, name: str) -> bool:
        """False if the voice is not theirs; raises `VoiceNameTaken`."""
        return bool(_raise_refusal(await self._write(_rename, owner_id, voice_id, name)))

    async def delete_voice(self, owner_id: int, voice_id: int) -> bool:
        """Bytes, record and shares go in one commit."""
        return await self._write(_delete, owner_id, voice_id)

    async def set_default_voice(self, owner_id: int, voice_id: int) -> bool:
        return await self._write(_set_default, owner_id, voice_id)

    async def share_voice(self, owner_id: int, voice_id: int, guild_id: int, share: bool) -> bool:
        """Share with (or stop sharing with) a server; False if the voice is not theirs."""
        if not await self._query(
            "SELECT 1 FROM voices WHERE id = ? AND owner_id = ?", (voice_id, owner_id)
        ):
            return False
        if share:
            await self._query(
                "INSERT OR IGNORE INTO voice_shares (voice_id, guild_id, shared_at) "
                "VALUES (?, ?, ?)",
                (voice_id, guild_id, self._clock()),
            )
        else:
            await self._query(
                "DELETE FROM voice_shares WHERE voice_id = ? AND guild_id = ?",
                (voice_id, guild_id),
            )
        return True

    async def set_voice_url(self, voice_id: int, storage_url: str) -> None:
        await self._query(
            "UPDATE voices SET storage_url = ?, uploaded_at = ? WHERE id = ?",
            (storage_url, self._clock(), voice_id),
        )
