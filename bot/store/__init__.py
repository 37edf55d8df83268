"""Durable job state, so an accepted `/speak` is finished once (delivered, or its failure
explained) across restarts and crashes, and is never submitted to Segmind twice.

`JobStore` is the interface; `SqliteJobStore` the implementation. `JobRecord.next_step`
tells recovery what to do with each job `unfinished()` returns.

The package, one job per module: `models` (records, states, errors, the protocols),
`sqlite` (the store class: open, close, the lock, the public methods), `writer` (the one
thread that talks to SQLite, group-committing), `transitions` (the state machine: each
transition's SQL and the record it commits), `records` (rows <-> `JobRecord`), `queries`
`fair_use`, `status` and `voices` (reads; fair use's settings and flags), `result_cache` (results
kept for identical requests), `errors` (sqlite3 errors as
`StoreError`, the retry while locked), `migrations` (the schema's versions), `spool`
(blocking file work: the data directory, the lock, audio files), `audio_files` (audio
files seen from the event loop).
"""

from __future__ import annotations

from .models import (
    DELIVERY_CHANNELS,
    ORIGINS,
    SEND_AS,
    SUBMIT_UNKNOWN,
    TERMINAL_STATES,
    Admission,
    AdmissionRefused,
    CachedResult,
    FailureSummary,
    InvalidTransition,
    JobRecord,
    JobSignals,
    JobState,
    JobStore,
    JobSummary,
    LeaseLost,
    MemberRecord,
    NextStep,
    PolicyStore,
    Replay,
    ReplayStore,
    ResultCacheStore,
    SharedPolicyStore,
    Standing,
    StatusStore,
    Store,
    StoreError,
    StoreUnavailable,
    UsageRow,
    VoiceStore,
)
from .sqlite import SqliteJobStore
from .voices import VoiceLimitReached, VoiceNameTaken, VoiceRecord

__all__ = [
    "DELIVERY_CHANNELS",
    "ORIGINS",
    "SEND_AS",
    "SUBMIT_UNKNOWN",
    "TERMINAL_STATES",
    "Admission",
    "AdmissionRefused",
    "CachedResult",
    "FailureSummary",
    "InvalidTransition",
    "JobRecord",
    "JobSignals",
    "JobState",
    "JobStore",
    "JobSummary",
    "LeaseLost",
    "MemberRecord",
    "NextStep",
    "PolicyStore",
    "Replay",
    "ReplayStore",
    "ResultCacheStore",
    "SharedPolicyStore",
    "SqliteJobStore",
    "Standing",
    "StatusStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UsageRow",
    "VoiceLimitReached",
    "VoiceNameTaken",
    "VoiceRecord",
    "VoiceStore",
]
