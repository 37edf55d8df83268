"""The job state machine: each kind of transition as one SQL statement (the table below),
and the writer thread's half of each write, which runs it and builds the record it
committed.

A transition is an `UPDATE ... WHERE id = ? AND (state = ... OR ...)`, so the state check
and the write are atomic, and no second caller can slip in between. If it matches no row,
a read tells the caller why (`refusal`).

The record a write returns is the row as committed. `Transitions` keeps the last record
it wrote for each unfinished job: the next transition of that job builds its record from
that one and the values it just stored, instead of reading all 31 columns back with
`RETURNING` (that read and the dataclass built from it were ~40% of the store's CPU per
job). Only values SQLite stores unchanged take that path (`records.exact`); anything
else, or a job this writer has not written yet (after a restart, say), is read back.
This holds because the store is the database's only writer while open (`jobs.lock`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from . import records
from .models import InvalidTransition, JobRecord, JobState
from .records import COLUMNS, INDEX, STATE, Kinds, build, field_values, read_back

OPEN_STATES = tuple(s for s in JobState if not s.terminal)
FAILABLE_STATES = tuple(s for s in OPEN_STATES if s is not JobState.FAILED)
INSERT = (
    f"INSERT INTO jobs ({records.SELECT}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (id) DO NOTHING"
)
REFUSAL = "SELECT state, submit_started_at FROM jobs WHERE id = ?"
"""What `refusal` needs to know of a job a transition did not match."""
# Records kept by the writer for their next transition: far more than the jobs a bot has
# open at once; past it the oldest is dropped (its next transition reads the row back).
KNOWN_RECORDS = 4096
_ID = INDEX["id"]


@dataclass(frozen=True, slots=True)
class Change:
    """One kind of transition, its SQL written once: it moves a job from one of
    `sources` to `target` (None: same state), sets `columns` from its parameters
    (`updated_at` last), adds 1 to `increments`, and may set columns no record holds."""

    operation: str
    columns: tuple[str, ...]
    target: JobState | None
    increments: tuple[int, ...]
    fields: tuple[int, ...]  # each column's index in COLUMNS; -1 if no record holds it
    sql: str  # parameters: the columns' values, then the job id


def change(
    operation: str,
    sources: Sequence[JobState],
    target: JobState | None,
    columns: Sequence[str] = (),
    *,
    increments: Sequence[str] = (),
    more: str = "",
    condition: str = "",
) -> Change:
    names = (*columns, "updated_at")
    sets = [f"{name} = ?" for name in names] + [f"{name} = {name} + 1" for name in increments]
    if target is not None:
        sets.append(f"state = '{target.value}'")
    if more:
        sets.append(more)
    # The states are the enum's own constants: inlined, they need no binding per call. As
    # comparisons, not `state IN (...)`: SQLite builds a temporary index for an IN list of
    # three or more on every execution (+4 us per statement, measured).
    states = " OR ".join(f"state = '{state.value}'" for state in sources)
    sql = f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND ({states}){condition}"
    return Change(
        operation=operation,
        columns=names,
        target=target,
        increments=tuple(INDEX[name] for name in increments),
        fields=tuple(INDEX.get(name, -1) for name in names),
        sql=sql,
    )


SET_MESSAGE_ID = change("set_original_message_id", OPEN_STATES, None, ("original_message_id",))
# The voice owner allowed a waiting job: it may now be submitted. The message id rides
# along (the Speak cog has it in memory only until the submit-started write).
OWNER_ALLOWED = change(
    "mark_owner_allowed",
    (JobState.ACCEPTED,),
    None,
    ("owner_pending_until", "original_message_id"),
    condition=" AND submit_started_at IS NULL",
)
SUBMIT_STARTED = change(
    "mark_submit_started",
    (JobState.ACCEPTED,),
    None,
    ("submit_started_at",),
    condition=" AND submit_started_at IS NULL",
)
SUBMIT_STARTED_WITH_MESSAGE = change(
    "mark_submit_started",
    (JobState.ACCEPTED,),
    None,
    ("submit_started_at", "original_message_id"),
    condition=" AND submit_started_at IS NULL",
)
SUBMITTED = change(
    "mark_submitted",
    (JobState.ACCEPTED,),
    JobState.SUBMITTED,
    ("request_id", "poll_url", "submitted_at"),
    condition=" AND submit_started_at IS NOT NULL",
)
# A saved voice's storage URL had died (Segmind could not fetch the sample, so the job
# cost nothing): back to ACCEPTED with a fresh URL, for one deliberate second submit.
RESUBMIT = change(
    "mark_resubmit",
    (JobState.SUBMITTED,),
    JobState.ACCEPTED,
    ("sample_url", "sample_host", "submit_started_at", "request_id", "poll_url", "submitted_at"),
    increments=("sample_retries",),
    condition=" AND sample_retries = 0",
)
_RESULT_COLUMNS = (
    "audio",
    "audio_path",
    "audio_content_type",
    "audio_extension",
    "audio_url",
    "audio_size",
    "seen_running_s",
    "seen_done_s",
)
COMPLETED = change("mark_completed", (JobState.SUBMITTED,), JobState.COMPLETED, _RESULT_COLUMNS)
# Completed and about to be delivered, in one write: DELIVERING only claims an attempt
# may have reached Discord, which recovery checks before posting again.
COMPLETED_DELIVERING = change(
    "mark_completed",
    (JobState.SUBMITTED,),
    JobState.DELIVERING,
    _RESULT_COLUMNS,
    increments=("attempts",),
)
DELIVERING = change(
    "mark_delivering",
    (JobState.COMPLETED, JobState.DELIVERING),
    JobState.DELIVERING,
    increments=("attempts",),
)
FAILED = change(
    "mark_failed", FAILABLE_STATES, JobState.FAILED, ("failure_cause", "failure_message")
)


def refusal(job_id: str, operation: str, rows: Sequence[Sequence[object]]) -> InvalidTransition:
    """Why `operation` matched no row, from what `REFUSAL` read of the job."""
    if not rows:
        return InvalidTransition(job_id, operation, None)
    state, started = JobState(rows[0][0]), rows[0][1]
    detail = ""
    if state is JobState.ACCEPTED and operation == "mark_submit_started":
        detail = " and its submit was already started (it may have reached Segmind)"
    elif state is JobState.ACCEPTED and operation == "mark_submitted" and started is None:
        detail = " and its submit was never started (call mark_submit_started first)"
    return InvalidTransition(job_id, operation, state, detail)


class Transitions:
    """The transitions that end a job (they wipe what a finished job must not keep), and
    the records last committed. `apply` and `insert` run on the writer thread, inside
    its batch; so does `forget`, which the writer calls when a batch did not commit."""

    def __init__(self, *, keep_text: bool) -> None:
        # Privacy by default: a finished job keeps its text's length, not the text; its
        # interaction token (a credential for 15 minutes) is wiped either way.
        wiped = ("sample_url", "interaction_token")
        self.wiped = wiped if keep_text else (*wiped, "text")
        self.wipe = ("",) * len(self.wiped)
        """The values of `wiped`: the last parameters of the ending transitions."""

        def delivered(sources: Sequence[JobState]) -> Change:
            return change(
                "mark_delivered",
                sources,
                JobState.DELIVERED,
                (
                    "delivered_at",
                    "delivery_channel",
                    "delivery_message_id",
                    "result_sha256",
                    "result_audio_sha256",
                    *self.wiped,
                ),
                more="audio = NULL",
            )

        self.delivered = delivered((JobState.DELIVERING,))
        # A result delivered from memory when the store could not record it complete (or
        # even submitted): it ends from whatever open state the store has.
        self.delivered_from_memory = delivered(FAILABLE_STATES)
        self.explained = change(
            "mark_explained",
            (JobState.FAILED,),
            JobState.EXPLAINED,
            self.wiped,
            more="audio = NULL",
        )
        self.kinds: Kinds = {}  # set at open, from the migrated table
        # Job id -> its record as last committed; the writer thread's alone.
        self._known: dict[str, JobRecord] = {}

    def forget(self) -> None:
        """Drop every record kept: what they were built from may not have committed."""
        self._known.clear()

    def apply(
        self,
        conn: sqlite3.Connection,
        change: Change,
        job_id: str,
        values: tuple[object, ...],
        exact: bool,
    ) -> JobRecord | None:
        """One transition (`values`: its columns'); its committed record, or None if it
        matched no row. `exact`: every value is one SQLite hands back as it is."""
        if not conn.execute(change.sql, (*values, job_id)).rowcount:
            return None
        before = self._known.get(job_id) if exact else None
        if before is None:
            record = read_back(conn, job_id)
        else:
            fields = list(field_values(before))
            for index, value in zip(change.fields, values, strict=True):
                if index >= 0:
                    fields[index] = value
            for index in change.increments:
                fields[index] += 1
            if change.target is not None:
                fields[STATE] = change.target
            record = build(fields)
        self._remember(record)
        return record

    def insert(
        self, conn: sqlite3.Connection, values: list[object], exact: bool, deadline: float | None
    ) -> JobRecord | Literal["late"] | None:
        """Insert a new job (`values` in `COLUMNS` order, its state a string); its
        committed record, None if its id is present, "late" if the writer got here after
        `deadline` (a `time.monotonic()`; then nothing is inserted)."""
        if deadline is not None and time.monotonic() > deadline:
            return "late"
        if not conn.execute(INSERT, values).rowcount:
            return None
        if exact:
            values[STATE] = JobState.ACCEPTED
            record = build(values)
        else:
            record = read_back(conn, str(values[_ID]))
        self._remember(record)
        return record

    def _remember(self, record: JobRecord) -> None:
        """Keep an unfinished job's committed record for its next transition (a finished
        job has none)."""
        known = self._known
        if record.state.terminal:
            known.pop(record.id, None)
            return
        known[record.id] = record
        if len(known) > KNOWN_RECORDS:
            del known[next(iter(known))]
