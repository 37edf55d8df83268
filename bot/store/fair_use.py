"""Fair-use queries on the SQLite store (the `PolicyStore` half): usage from the jobs
table (each job row is also its audit entry), per-guild settings, member flags and
bot-wide flags."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import astuple, fields

from .models import JobState, MemberRecord, UsageRow

_MEMBER_COLUMNS = tuple(f.name for f in fields(MemberRecord))
# A job that ended without its submit ever starting cost nothing: it is not counted.
BILLABLE = (
    f"NOT (state IN ('{JobState.FAILED.value}', '{JobState.EXPLAINED.value}') "
    "AND submit_started_at IS NULL)"
)


class FairUseQueries:
    """Mixed into `SqliteJobStore`, whose `_query` runs a statement in the writer's next
    commit."""

    _clock: Callable[[], float]

    async def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def usage(self, since: float, guild_id: int | None = None) -> list[UsageRow]:
        where = "" if guild_id is None else " AND guild_id = ?"
        rows = await self._query(
            "SELECT guild_id, user_id, COUNT(*), SUM(text_chars), MAX(created_at) FROM jobs "
            f"WHERE created_at >= ? AND {BILLABLE}{where} GROUP BY guild_id, user_id",
            (since,) if guild_id is None else (since, guild_id),
        )
        return [UsageRow(row[0], row[1], row[2], row[3] or 0, row[4]) for row in rows]

    async def guild_settings(self) -> dict[int, dict[str, object]]:
        rows = await self._query("SELECT guild_id, settings FROM guild_settings")
        return {int(row[0]): dict(json.loads(row[1])) for row in rows}

    async def save_guild_settings(
        self, guild_id: int, settings: dict[str, object], by: int | None
    ) -> None:
        await self._query(
            "INSERT INTO guild_settings (guild_id, settings, updated_at, updated_by) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET "
            "settings = excluded.settings, updated_at = excluded.updated_at, "
            "updated_by = excluded.updated_by",
            (guild_id, json.dumps(settings, sort_keys=True), self._clock(), by),
        )

    async def members(self) -> list[MemberRecord]:
        rows = await self._query(f"SELECT {', '.join(_MEMBER_COLUMNS)} FROM members")
        return [MemberRecord(**dict(zip(_MEMBER_COLUMNS, row, strict=True))) for row in rows]

    async def save_member(self, member: MemberRecord) -> None:
        updates = ", ".join(f"{name} = excluded.{name}" for name in _MEMBER_COLUMNS[2:])
        await self._query(
            f"INSERT INTO members ({', '.join(_MEMBER_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_MEMBER_COLUMNS))}) "
            f"ON CONFLICT (guild_id, user_id) DO UPDATE SET {updates}",
            astuple(member),
        )

    async def flags(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in await self._query("SELECT key, value FROM bot_state")}

    async def set_flag(self, key: str, value: str) -> None:
        await self._query(
            "INSERT INTO bot_state (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
