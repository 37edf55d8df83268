"""Reads for the operator's status page on the PostgreSQL store (the `StatusStore` half,
as `bot/store/status.py` on SQLite): summaries that leave out the text, the clip's URL,
the result's URL and the interaction token."""

from __future__ import annotations

from ..models import FailureSummary, JobSummary
from ..queries import state_values
from ..status import summary_from_row
from ..transitions import OPEN_STATES
from .base import PgBase
from .order import INSERTED

_SUMMARY = (
    "id, state, created_at, updated_at, guild_id, language, text_chars, "
    "submit_started_at, owner_pending_until"
)


class PgStatus(PgBase):
    """Mixed into `PostgresJobStore`."""

    async def open_jobs(self, limit: int) -> list[JobSummary]:
        """Jobs not DELIVERED or EXPLAINED, oldest first, at most `limit`."""
        rows = await self._fetch(
            f"SELECT {_SUMMARY} FROM jobs WHERE state = ANY($1::text[]) "
            f"ORDER BY created_at, {INSERTED} LIMIT $2",
            list(state_values(OPEN_STATES)),
            limit,
        )
        return [summary_from_row(r) for r in rows]

    async def recent_failures(self, limit: int) -> list[FailureSummary]:
        """Jobs that failed (told or not yet told), the latest first, at most `limit`."""
        rows = await self._fetch(
            "SELECT id, updated_at, guild_id, failure_cause, failure_message FROM jobs "
            f"WHERE failure_cause IS NOT NULL ORDER BY updated_at DESC, {INSERTED} DESC LIMIT $1",
            limit,
        )
        return [
            FailureSummary(
                id=str(r[0]), at=float(r[1]), guild_id=r[2], cause=str(r[3]), message=r[4] or ""
            )
            for r in rows
        ]
