"""Rows of the `jobs` table as `JobRecord`s, both ways: the column list (the record's
fields, in order), building a record from a row or from values just written, and the
Python type SQLite hands back unchanged from each column (which says whether a value
written may go into a record as it is, or must be read back)."""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any
from urllib.parse import urlsplit

from .models import JobRecord, JobState

COLUMNS = tuple(f.name for f in fields(JobRecord))
SELECT = ", ".join(COLUMNS)
INDEX = {name: index for index, name in enumerate(COLUMNS)}
STATE, UPDATED_AT, TEXT_CHARS, SAMPLE_HOST = (
    INDEX[name] for name in ("state", "updated_at", "text_chars", "sample_host")
)
SELECT_JOB = f"SELECT {SELECT} FROM jobs WHERE id = ?"
# What Python type SQLite hands back unchanged from a column of each declared type.
_AFFINITY: dict[str, type] = {"TEXT": str, "INTEGER": int, "REAL": float, "BLOB": bytes}
field_values = operator.attrgetter(*COLUMNS)
"""A record's field values, in `COLUMNS` order."""
# Each field's slot setter: bypasses the frozen dataclass's __setattr__, as its own
# __init__ does.
_SETTERS = tuple(JobRecord.__dict__[name].__set__ for name in COLUMNS)

Kinds = dict[str, type]
"""Column name -> the type SQLite returns as given (from the table's declared types)."""


def build(values: Sequence[Any]) -> JobRecord:
    """A `JobRecord` from its field values in `COLUMNS` order. Sets the slots directly:
    the dataclass's keyword `__init__` (31 arguments, each through `object.__setattr__`
    as the class is frozen) costs three times as much."""
    record: JobRecord = object.__new__(JobRecord)
    for set_field, value in zip(_SETTERS, values, strict=True):
        set_field(record, value)
    return record


def from_row(row: Sequence[Any]) -> JobRecord:
    """The record of a row selected as `SELECT` (its state a string)."""
    values = list(row)
    values[STATE] = JobState(values[STATE])
    return build(values)


def read_back(conn: sqlite3.Connection, job_id: str) -> JobRecord:
    """The job's row as a read gives it. Not `RETURNING`: that hands back an integral
    value written to a REAL column as an int, where every later read gives a float."""
    return from_row(conn.execute(SELECT_JOB, (job_id,)).fetchall()[0])


def column_kinds(conn: sqlite3.Connection) -> Kinds:
    """The `jobs` table's columns and the type each hands back unchanged."""
    columns = conn.execute("PRAGMA table_info(jobs)").fetchall()
    return {str(c[1]): _AFFINITY[str(c[2])] for c in columns if c[2] in _AFFINITY}


def exact(kinds: Kinds, columns: Iterable[str], values: Iterable[object]) -> bool:
    """Whether SQLite will hand back each value as it is (so a record may hold it
    without reading it back): a str in a TEXT column, an int in an INTEGER one, a float
    that is not NaN in a REAL one."""
    for column, value in zip(columns, values, strict=True):
        if value is None:
            continue
        kind = type(value)
        if kind is not kinds.get(column) or (kind is float and value != value):
            return False
    return True


def new_row(record: JobRecord, now: float) -> list[Any]:
    """A newly accepted job's values in `COLUMNS` order as both stores insert them: its
    state as text, and the fields the store sets itself (`updated_at`, `text_chars`,
    `sample_host`)."""
    values = list(field_values(record))
    values[STATE] = record.state.value
    values[UPDATED_AT] = now
    values[TEXT_CHARS] = len(record.text)
    values[SAMPLE_HOST] = urlsplit(record.sample_url).hostname or ""
    return values
