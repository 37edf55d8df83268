"""Fair use across processes: a new job is inserted only after the policy has seen the
database's counts (`Standing`: every process's jobs) and agreed, in one transaction
that holds an advisory lock, so two processes admitting at the same instant are seen one
after the other and cannot both slip under a limit. Each process's policy has already
checked its own counts (bot/policy/rules.py); this is the check no process can make
alone."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from ..fair_use import BILLABLE
from ..models import Admission, AdmissionRefused, Standing
from .base import PgBase

ADMISSION_LOCK = 0x766F6978  # pg_advisory_xact_lock key: "voix"
_OPEN = "ARRAY['accepted', 'submitted', 'completed', 'delivering', 'failed']"
# $1 the day's start, $2 the guild (0: DMs), $3 the member, $4 the cooldown's start.
_MINE = "COALESCE(guild_id, 0) = $2 AND user_id = $3"
_HERE = "COALESCE(guild_id, 0) = $2"
_TODAY = f"created_at >= $1 AND {BILLABLE}"
_STANDING = (
    f"SELECT count(*) FILTER (WHERE {_MINE} AND {_TODAY}), "
    f"COALESCE(sum(text_chars) FILTER (WHERE {_MINE} AND {_TODAY}), 0), "
    f"count(*) FILTER (WHERE {_HERE} AND {_TODAY}), "
    f"COALESCE(sum(text_chars) FILTER (WHERE {_HERE} AND {_TODAY}), 0), "
    f"count(*) FILTER (WHERE {_TODAY}), "
    f"count(*) FILTER (WHERE {_MINE} AND state = ANY({_OPEN})), "
    f"max(created_at) FILTER (WHERE {_MINE} AND created_at >= $4 AND {BILLABLE}) "
    f"FROM jobs WHERE created_at >= least($1, $4) OR ({_MINE} AND state = ANY({_OPEN}))"
)


class PgAdmission(PgBase):
    """Mixed into `PostgresJobStore` (through `PgJobs`)."""

    async def _admitted(
        self, admit: Admission, insert: str, values: Sequence[object]
    ) -> asyncpg.Record | None:
        """`insert` the job if `admit` agrees with the database's counts; else
        AdmissionRefused (nothing is written)."""
        async with self._transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ADMISSION_LOCK)
            row = await conn.fetchrow(
                _STANDING, admit.since, admit.guild_id, admit.user_id, admit.recent
            )
            assert row is not None  # an aggregate answers one row
            counts = [int(value) for value in row[:6]]  # SUMs are NUMERIC (Decimals)
            standing = Standing(
                user_jobs=counts[0],
                user_chars=counts[1],
                guild_jobs=counts[2],
                guild_chars=counts[3],
                total_jobs=counts[4],
                open_jobs=counts[5],
                last_start=row[6],
            )
            refusal = admit.decide(standing)
            if refusal is not None:
                raise AdmissionRefused(refusal)
            added: asyncpg.Record | None = await conn.fetchrow(insert, *values)
            return added
