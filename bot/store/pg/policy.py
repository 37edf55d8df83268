"""Fair-use queries on the PostgreSQL store (the `PolicyStore` half, as
`bot/store/fair_use.py` on SQLite): usage from the jobs table (each job row is also its
audit entry), the audit log, per-guild settings, member flags and bot-wide flags."""

from __future__ import annotations

import json
from dataclasses import astuple, fields

from ..fair_use import BILLABLE
from ..models import JobRecord, MemberRecord, UsageRow
from ..records import SELECT, from_row
from .base import PgBase
from .order import INSERTED

_MEMBER_COLUMNS = tuple(f.name for f in fields(MemberRecord))
_MEMBER_UPDATES = ", ".join(f"{name} = excluded.{name}" for name in _MEMBER_COLUMNS[2:])
_MEMBER_VALUES = ", ".join(f"${i}" for i in range(1, len(_MEMBER_COLUMNS) + 1))
VERSION_KEY = "policy_version"
# Each write of settings, members or flags also counts up this version, in the same
# statement: other processes reload what the policy keeps in memory when it moved.
_BUMP = (
    "WITH bump AS (INSERT INTO bot_state (key, value) VALUES ('policy_version', '1') "
    "ON CONFLICT (key) DO UPDATE SET value = (bot_state.value::bigint + 1)::text) "
)


class PgPolicy(PgBase):
    """Mixed into `PostgresJobStore`. Its writes go through `_fetch`, not `_execute`:
    as on SQLite, `writes` counts the jobs' transitions, not these."""

    async def usage(self, since: float, guild_id: int | None = None) -> list[UsageRow]:
        where = "" if guild_id is None else " AND guild_id = $2"
        rows = await self._fetch(
            "SELECT guild_id, user_id, COUNT(*), SUM(text_chars), MAX(created_at) FROM jobs "
            f"WHERE created_at >= $1 AND {BILLABLE}{where} GROUP BY guild_id, user_id",
            *((since,) if guild_id is None else (since, guild_id)),
        )
        # SUM of a BIGINT is NUMERIC (a Decimal): the row holds ints, as on SQLite.
        return [
            UsageRow(row[0], int(row[1]), int(row[2]), int(row[3] or 0), float(row[4]))
            for row in rows
        ]

    async def recent_jobs(self, guild_id: int, limit: int) -> list[JobRecord]:
        """The guild's latest jobs, newest first: the audit log."""
        rows = await self._fetch(
            f"SELECT {SELECT} FROM jobs WHERE guild_id = $1 "
            f"ORDER BY created_at DESC, {INSERTED} DESC LIMIT $2",
            guild_id,
            limit,
        )
        return [from_row(row) for row in rows]

    async def guild_settings(self) -> dict[int, dict[str, object]]:
        rows = await self._fetch("SELECT guild_id, settings FROM guild_settings")
        return {int(row[0]): dict(json.loads(row[1])) for row in rows}

    async def save_guild_settings(
        self, guild_id: int, settings: dict[str, object], by: int | None
    ) -> None:
        await self._fetch(
            _BUMP + "INSERT INTO guild_settings (guild_id, settings, updated_at, updated_by) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (guild_id) DO UPDATE SET "
            "settings = excluded.settings, updated_at = excluded.updated_at, "
            "updated_by = excluded.updated_by",
            guild_id,
            json.dumps(settings, sort_keys=True),
            self._clock(),
            by,
        )

    async def members(self) -> list[MemberRecord]:
        rows = await self._fetch(f"SELECT {', '.join(_MEMBER_COLUMNS)} FROM members")
        return [MemberRecord(**dict(zip(_MEMBER_COLUMNS, row, strict=True))) for row in rows]

    async def save_member(self, member: MemberRecord) -> None:
        await self._fetch(
            _BUMP + f"INSERT INTO members ({', '.join(_MEMBER_COLUMNS)}) VALUES ({_MEMBER_VALUES}) "
            f"ON CONFLICT (guild_id, user_id) DO UPDATE SET {_MEMBER_UPDATES}",
            *astuple(member),
        )

    async def policy_version(self) -> int:
        """Counts up with every change of settings, members or flags, by any process."""
        value = await self._fetchval("SELECT value FROM bot_state WHERE key = $1", VERSION_KEY)
        return int(value or 0)

    async def flags(self) -> dict[str, str]:
        rows = await self._fetch("SELECT key, value FROM bot_state WHERE key <> $1", VERSION_KEY)
        return {str(k): str(v) for k, v in rows}

    async def set_flag(self, key: str, value: str) -> None:
        await self._fetch(
            _BUMP + "INSERT INTO bot_state (key, value) VALUES ($1, $2) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            key,
            value,
        )
