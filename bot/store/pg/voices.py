"""Saved-voice queries on the PostgreSQL store (the `VoiceStore` half, as
`bot/store/voices.py` on SQLite): a member's voices with their kept bytes, the servers
they are shared with, and which of them a request in a server may use.

Names are unique per owner whatever their case, as SQLite's `COLLATE NOCASE`: checked
with the unique index's own expression, `lower(name)`. The count against the limit and
the name check run in the insert's transaction under a per-owner advisory lock, so two
saves racing from two processes cannot both pass them.
"""

from __future__ import annotations

import asyncpg

from ..voices import VoiceLimitReached, VoiceNameTaken, VoiceRecord, voice_from_row
from .base import PgBase

# Everything but the bytes: listing and autocomplete never load clips.
_FIELDS = (
    "id",
    "owner_id",
    "name",
    "sha256",
    "content_type",
    "filename",
    "storage_url",
    "uploaded_at",
    "is_default",
    "created_at",
)
_COLUMNS = ", ".join((*_FIELDS, "octet_length(sample)"))
# SQLite's NOCASE orders by the bytes of the ASCII-lowered name.
_BY_NAME = 'lower(name) COLLATE "C"'
# pg_advisory_xact_lock(int, int): this class of lock, keyed by the owner.
_LOCK_OWNER = "SELECT pg_advisory_xact_lock(1987011, hashtext($1::bigint::text))"
_TAKEN = "SELECT 1 FROM voices WHERE owner_id = $1 AND lower(name) = lower($2) AND id <> $3"


async def _lock_owner(conn: asyncpg.Connection, owner_id: int) -> None:
    await conn.execute(_LOCK_OWNER, owner_id)


class PgVoices(PgBase):
    """Mixed into `PostgresJobStore`. Writes go through `_fetch` and `_transaction`: as
    on SQLite, `writes` counts the jobs' transitions, not these."""

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
        now = self._clock()
        async with self._transaction() as conn:
            await _lock_owner(conn, owner_id)
            count = int(
                await conn.fetchval("SELECT COUNT(*) FROM voices WHERE owner_id = $1", owner_id)
            )
            if count >= limit:
                raise VoiceLimitReached
            if await conn.fetchval(_TAKEN, owner_id, name, -1) is not None:
                raise VoiceNameTaken
            voice_id = await conn.fetchval(
                "INSERT INTO voices (owner_id, name, sample, sha256, content_type, filename, "
                "storage_url, uploaded_at, is_default, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                owner_id,
                name,
                sample,
                sha256,
                content_type,
                filename,
                storage_url,
                now if storage_url else None,
                count == 0,  # the first voice is the default
                now,
            )
        return int(voice_id)

    async def own_voices(self, owner_id: int) -> list[VoiceRecord]:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM voices WHERE owner_id = $1 ORDER BY {_BY_NAME}", owner_id
        )
        return [voice_from_row(row) for row in rows]

    async def voice_named(self, owner_id: int, name: str) -> VoiceRecord | None:
        row = await self._fetchrow(
            f"SELECT {_COLUMNS} FROM voices WHERE owner_id = $1 AND lower(name) = lower($2)",
            owner_id,
            name,
        )
        return None if row is None else voice_from_row(row)

    async def usable_voices(self, guild_id: int | None, user_id: int) -> list[VoiceRecord]:
        """What `user_id` may speak with in `guild_id`: their own voices and the voices
        shared with that server, minus those whose owner opted out there."""
        if guild_id is None:  # a DM: one's own voices only
            return await self.own_voices(user_id)
        columns = ", ".join(f"v.{name}" for name in _FIELDS)
        rows = await self._fetch(
            f"SELECT {columns}, octet_length(v.sample), s.guild_id IS NOT NULL FROM voices v "
            "LEFT JOIN voice_shares s ON s.voice_id = v.id AND s.guild_id = $1 "
            "WHERE (v.owner_id = $2 OR s.guild_id IS NOT NULL) "
            # The voice's owner has not opted out in this server.
            "AND NOT EXISTS (SELECT 1 FROM members m WHERE m.guild_id = $1 "
            "AND m.user_id = v.owner_id AND m.opted_out_at IS NOT NULL) "
            f'ORDER BY v.owner_id <> $2, lower(v.name) COLLATE "C"',
            guild_id,
            user_id,
        )
        return [voice_from_row(row, bool(row[11])) for row in rows]

    async def voice_sample(self, voice_id: int) -> bytes | None:
        row = await self._fetchrow("SELECT sample FROM voices WHERE id = $1", voice_id)
        return None if row is None else bytes(row[0])

    async def get_voice(self, voice_id: int) -> VoiceRecord | None:
        row = await self._fetchrow(f"SELECT {_COLUMNS} FROM voices WHERE id = $1", voice_id)
        return None if row is None else voice_from_row(row)

    async def rename_voice(self, owner_id: int, voice_id: int, name: str) -> bool:
        """False if the voice is not theirs; raises `VoiceNameTaken`."""
        async with self._transaction() as conn:
            await _lock_owner(conn, owner_id)
            if await conn.fetchval(_TAKEN, owner_id, name, voice_id) is not None:
                raise VoiceNameTaken
            status = await conn.execute(
                "UPDATE voices SET name = $1 WHERE id = $2 AND owner_id = $3",
                name,
                voice_id,
                owner_id,
            )
        return str(status) != "UPDATE 0"

    async def delete_voice(self, owner_id: int, voice_id: int) -> bool:
        """Bytes, record and shares go in one statement."""
        gone = await self._fetchval(
            "WITH gone AS (DELETE FROM voices WHERE id = $1 AND owner_id = $2 RETURNING id), "
            "shares AS (DELETE FROM voice_shares WHERE voice_id IN (SELECT id FROM gone)) "
            "SELECT COUNT(*) FROM gone",
            voice_id,
            owner_id,
        )
        return bool(gone)

    async def set_default_voice(self, owner_id: int, voice_id: int) -> bool:
        rows = await self._fetch(
            "UPDATE voices SET is_default = (id = $1) WHERE owner_id = $2 "
            "AND EXISTS (SELECT 1 FROM voices WHERE id = $1 AND owner_id = $2) RETURNING id",
            voice_id,
            owner_id,
        )
        return bool(rows)

    async def share_voice(self, owner_id: int, voice_id: int, guild_id: int, share: bool) -> bool:
        """Share with (or stop sharing with) a server; False if the voice is not theirs."""
        if (
            await self._fetchrow(
                "SELECT 1 FROM voices WHERE id = $1 AND owner_id = $2", voice_id, owner_id
            )
            is None
        ):
            return False
        if share:
            await self._fetch(
                "INSERT INTO voice_shares (voice_id, guild_id, shared_at) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                voice_id,
                guild_id,
                self._clock(),
            )
        else:
            await self._fetch(
                "DELETE FROM voice_shares WHERE voice_id = $1 AND guild_id = $2",
                voice_id,
                guild_id,
            )
        return True

    async def set_voice_url(self, voice_id: int, storage_url: str) -> None:
        await self._fetch(
            "UPDATE voices SET storage_url = $1, uploaded_at = $2 WHERE id = $3",
            storage_url,
            self._clock(),
            voice_id,
        )
