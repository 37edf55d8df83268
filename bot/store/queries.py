"""Reads of the jobs table: one job, what recovery resumes, the audit log, the history the
poll scheduler learns from, and the counts by state."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from .models import JobRecord, JobState
from .records import SELECT, SELECT_JOB, from_row
from .transitions import OPEN_STATES


def marks(count: int) -> str:
    return ", ".join("?" * count)


def state_values(states: Iterable[JobState]) -> tuple[str, ...]:
    return tuple(s.value for s in states)


class JobQueries:
    """Mixed into `SqliteJobStore`, whose `_query` runs a statement in the writer's next
    commit (reads included: the writer's connection is the store's only one)."""

    async def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def get(self, job_id: str) -> JobRecord | None:
        rows = await self._query(SELECT_JOB, (job_id,))
        return from_row(rows[0]) if rows else None

    async def job_for_message(self, guild_id: int, message_id: int) -> JobRecord | None:
        """The guild's job whose message `message_id` is (the interaction's message, or
        where its result was delivered), while its record is kept."""
        rows = await self._query(
            f"SELECT {SELECT} FROM jobs WHERE guild_id = ? "
            "AND (original_message_id = ? OR delivery_message_id = ?) "
            "ORDER BY created_at DESC LIMIT 1",
            (guild_id, message_id, message_id),
        )
        return from_row(rows[0]) if rows else None

    async def unfinished(self) -> list[JobRecord]:
        """Every job not DELIVERED or EXPLAINED, oldest first: what recovery resumes."""
        rows = await self._query(
            f"SELECT {SELECT} FROM jobs WHERE state IN ({marks(len(OPEN_STATES))}) "
            "ORDER BY created_at, rowid",
            state_values(OPEN_STATES),
        )
        return [from_row(row) for row in rows]

    async def claim_unfinished(self) -> list[JobRecord]:
        return await self.unfinished()  # jobs.lock: no other process drives any of them

    async def recent_jobs(self, guild_id: int, limit: int) -> list[JobRecord]:
        """The guild's latest jobs, newest first: the audit log."""
        rows = await self._query(
            f"SELECT {SELECT} FROM jobs WHERE guild_id = ? ORDER BY created_at DESC, rowid DESC "
            "LIMIT ?",
            (guild_id, limit),
        )
        return [from_row(row) for row in rows]

    async def finish_times(self, limit: int) -> list[tuple[int, float, float]]:
        """(text characters, seen running, seen done) of the latest `limit` jobs whose
        end polls saw, oldest first: the duration model replays them at start-up."""
        rows = await self._query(
            "SELECT text_chars, seen_running_s, seen_done_s FROM ("
            "SELECT text_chars, seen_running_s, seen_done_s, created_at, rowid AS r FROM jobs "
            "WHERE seen_done_s IS NOT NULL ORDER BY created_at DESC, rowid DESC LIMIT ?"
            ") ORDER BY created_at, r",
            (limit,),
        )
        return [(int(chars), float(running), float(done)) for chars, running, done in rows]

    async def count_by_state(self) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for state, count in await self._query("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            counts[JobState(state)] = int(count)
        return counts
