"""Reads for the operator's status page (the `StatusStore` half): the open jobs and the
latest failures, each as a summary that leaves out the text, the clip's URL, the result's
URL and the interaction token, so the page cannot show what it never read."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .models import FailureSummary, JobState, JobSummary
from .queries import marks, state_values
from .transitions import OPEN_STATES

_SUMMARY = (
    "id, state, created_at, updated_at, guild_id, language, text_chars, "
    "submit_started_at, owner_pending_until"
)


class StatusQueries:
    """Mixed into `SqliteJobStore`, whose `_query` runs a statement in the writer's next
    commit."""

    async def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def open_jobs(self, limit: int) -> list[JobSummary]:
        """Jobs not DELIVERED or EXPLAINED, oldest first, at most `limit`."""
        rows = await self._query(
            f"SELECT {_SUMMARY} FROM jobs WHERE state IN ({marks(len(OPEN_STATES))}) "
            "ORDER BY created_at, rowid LIMIT ?",
            (*state_values(OPEN_STATES), limit),
        )
        return [summary_from_row(r) for r in rows]

    async def recent_failures(self, limit: int) -> list[FailureSummary]:
        """Jobs that failed (told or not yet told), the latest first, at most `limit`.
        `updated_at` stands for when: explaining a failure is its last write."""
        rows = await self._query(
            "SELECT id, updated_at, guild_id, failure_cause, failure_message FROM jobs "
            "WHERE failure_cause IS NOT NULL ORDER BY updated_at DESC, rowid DESC LIMIT ?",
            (limit,),
        )
        return [
            FailureSummary(
                id=str(r[0]), at=float(r[1]), guild_id=r[2], cause=str(r[3]), message=r[4] or ""
            )
            for r in rows
        ]


def summary_from_row(r: Sequence[Any]) -> JobSummary:
    """An open job's summary from a row in `open_jobs`' column order (both backends)."""
    return JobSummary(
        id=str(r[0]),
        state=JobState(r[1]),
        created_at=float(r[2]),
        updated_at=float(r[3]),
        guild_id=r[4],
        language=str(r[5]),
        text_chars=int(r[6]),
        submit_started_at=r[7],
        owner_pending_until=r[8],
    )
