"""Durable job state, so an accepted `/speak` is finished once (delivered, or its failure
explained) across restarts and crashes, and is never submitted to Segmind twice.

`JobStore` is the interface; `SqliteJobStore` the implementation. `JobRecord.next_step`
tells recovery what to do with each job `unfinished()` returns.
"""

from __future__ import annotations

from .models import (
    DELIVERY_CHANNELS,
    SUBMIT_UNKNOWN,
    TERMINAL_STATES,
    InvalidTransition,
    JobRecord,
    JobState,
    JobStore,
    MemberRecord,
    NextStep,
    PolicyStore,
    Store,
    StoreError,
    StoreUnavailable,
    UsageRow,
)
from .sqlite import SqliteJobStore

__all__ = [
    "DELIVERY_CHANNELS",
    "SUBMIT_UNKNOWN",
    "TERMINAL_STATES",
    "InvalidTransition",
    "JobRecord",
    "JobState",
    "JobStore",
    "MemberRecord",
    "NextStep",
    "PolicyStore",
    "SqliteJobStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UsageRow",
]
