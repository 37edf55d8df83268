"""The job half of the PostgreSQL store: the state machine's transitions and the job
reads, on the same `Change` definitions as SQLite's (`transitions.py`), each run as one
`UPDATE … RETURNING` so that the state check, the write and the record read back are one
atomic statement, whichever process sends it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...audio import AudioFile
from ..models import (
    TERMINAL_STATES,
    Admission,
    InvalidTransition,
    JobRecord,
    JobState,
    LeaseLost,
)
from ..records import COLUMNS, SELECT, from_row, new_row
from ..transitions import (
    COMPLETED,
    COMPLETED_DELIVERING,
    OPEN_STATES,
    Change,
    Transitions,
    refusal,
)
from .admission import PgAdmission
from .base import numbered
from .leases import NOW
from .order import INSERTED

log = logging.getLogger(__name__)

# A new job is leased to the process that accepted it (leases.py).
_INSERT = (
    f"INSERT INTO jobs ({SELECT}, lease_owner, lease_until) VALUES "
    f"({', '.join(f'${n + 1}' for n in range(len(COLUMNS) + 1))}, "
    f"{NOW} + ${len(COLUMNS) + 2}::float8) ON CONFLICT (id) DO NOTHING RETURNING {SELECT}"
)
_OPEN = tuple(state.value for state in OPEN_STATES)
_TERMINAL = tuple(state.value for state in TERMINAL_STATES)


class PgJobs(PgAdmission):
    """Mixed into `PostgresJobStore`, first among its bases (the others' `_transition`
    placeholders resolve to this one)."""

    _machine: Transitions
    _updates: dict[str, str]

    if TYPE_CHECKING:  # replays.PgReplays, later in the store's bases

        async def _purge_replays(self, before: float) -> int: ...

    def _update_sql(self, change: Change) -> str:
        sql = self._updates.get(change.sql)
        if sql is None:
            # Only the lease holder moves a job (leases.py): its owner is the last parameter.
            owner = f"${change.sql.count('?') + 1}"
            sql = f"{numbered(change.sql)} AND lease_owner = {owner} RETURNING {SELECT}"
            self._updates[change.sql] = sql
        return sql

    async def _transition(
        self, job_id: str, change: Change, values: tuple[object, ...]
    ) -> JobRecord:
        """Apply `change` with `values` (for its columns but `updated_at`)."""
        row = await self._fetchrow(
            self._update_sql(change), *values, self._clock(), job_id, self.owner
        )
        if row is None:
            raise await self._refusal(job_id, change.operation)
        self._writes += 1
        record = from_row(row)
        log.debug("job %s: %s -> %s", job_id, change.operation, record.state.name)
        return record

    async def _refusal(self, job_id: str, operation: str) -> InvalidTransition | LeaseLost:
        rows = await self._fetch(
            "SELECT state, submit_started_at, lease_owner FROM jobs WHERE id = $1", job_id
        )
        if operation != "add" and rows and rows[0][0] in _OPEN and rows[0][2] != self.owner:
            return LeaseLost(job_id, operation)
        return refusal(job_id, operation, [tuple(row)[:2] for row in rows])

    async def add(
        self,
        record: JobRecord,
        *,
        deadline: float | None = None,
        admit: Admission | None = None,
    ) -> JobRecord:
        """Record a newly accepted job; an id already present is refused. `deadline` is
        kept for the interface: a statement here is sent at once, so it is never late.
        `admit`: fair use's last word with every process's jobs counted (admission.py)."""
        if record.state is not JobState.ACCEPTED:
            raise InvalidTransition(record.id, "add", record.state, " (a new job is ACCEPTED)")
        values = (*new_row(record, self._clock()), self.owner, self.lease_seconds)
        if admit is None:
            row = await self._fetchrow(_INSERT, *values)
        else:
            row = await self._admitted(admit, _INSERT, values)
        if row is None:
            raise await self._refusal(record.id, "add")
        self._writes += 1
        return from_row(row)

    async def mark_completed(
        self,
        job_id: str,
        audio: bytes,
        content_type: str,
        extension: str,
        audio_url: str,
        *,
        delivering: bool = False,
        seen: tuple[float, float] | None = None,
    ) -> JobRecord:
        """The result with its audio, in the row whatever its size (no files: several
        hosts may share this database)."""
        change = COMPLETED_DELIVERING if delivering else COMPLETED
        running, done = seen if seen is not None else (None, None)
        return await self._transition(
            job_id,
            change,
            (audio, None, content_type, extension, audio_url, len(audio), running, done),
        )

    # -- reads ----------------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        row = await self._fetchrow(f"SELECT {SELECT} FROM jobs WHERE id = $1", job_id)
        return from_row(row) if row is not None else None

    async def job_for_message(self, guild_id: int, message_id: int) -> JobRecord | None:
        row = await self._fetchrow(
            f"SELECT {SELECT} FROM jobs WHERE guild_id = $1 "
            "AND (original_message_id = $2 OR delivery_message_id = $2) "
            f"ORDER BY created_at DESC, {INSERTED} DESC LIMIT 1",
            guild_id,
            message_id,
        )
        return from_row(row) if row is not None else None

    async def unfinished(self) -> list[JobRecord]:
        rows = await self._fetch(
            f"SELECT {SELECT} FROM jobs WHERE state = ANY($1::text[]) "
            f"ORDER BY created_at, {INSERTED}",
            list(_OPEN),
        )
        return [from_row(row) for row in rows]

    async def finish_times(self, limit: int) -> list[tuple[int, float, float]]:
        rows = await self._fetch(
            "SELECT text_chars, seen_running_s, seen_done_s FROM ("
            f"SELECT text_chars, seen_running_s, seen_done_s, created_at, {INSERTED} AS r "
            f"FROM jobs WHERE seen_done_s IS NOT NULL ORDER BY created_at DESC, {INSERTED} DESC "
            "LIMIT $1) AS latest ORDER BY created_at, r",
            limit,
        )
        return [(int(chars), float(running), float(done)) for chars, running, done in rows]

    async def count_by_state(self) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for state, count in await self._fetch("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            counts[JobState(state)] = int(count)
        return counts

    async def read_audio(self, record: JobRecord) -> AudioFile | None:
        data = await self._fetchval("SELECT audio FROM jobs WHERE id = $1", record.id)
        if data is None:
            return None
        return AudioFile(
            bytes(data),
            record.audio_content_type or "application/octet-stream",
            record.audio_extension or "bin",
            record.audio_url or "",
        )

    async def purge(self, older_than_seconds: float) -> int:
        """Delete DELIVERED/EXPLAINED jobs last changed more than `older_than_seconds`
        ago (their audio is in the row: nothing else to sweep). Returns the rows deleted."""
        before = self._clock() - older_than_seconds
        rows = await self._fetch(
            "DELETE FROM jobs WHERE state = ANY($1::text[]) AND updated_at < $2 RETURNING id",
            list(_TERMINAL),
            before,
        )
        if rows:
            self._writes += 1
        # Clicks no process took (their job ended first, or its process with it).
        await self._fetch("DELETE FROM job_signals WHERE at < $1", before)
        await self._purge_replays(before)
        return len(rows)
