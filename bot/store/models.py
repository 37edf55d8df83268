"""What the job store keeps and promises: the record, its states, the interface, the errors.

A job moves ACCEPTED -> SUBMITTED -> COMPLETED -> DELIVERING -> DELIVERED, or to FAILED
(cause recorded, user not yet told) and then EXPLAINED (user told) from any non-terminal
state. Every move is checked against the stored state, so a second submit of one job is
refused by the store rather than left to the caller's care.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

from ..audio import AudioFile

if TYPE_CHECKING:
    from .voices import VoiceRecord

# Failure cause recorded for a job whose submit may have reached Segmind before a crash:
# we cannot know, and submitting again could pay twice, so the user is told it was lost.
SUBMIT_UNKNOWN = "submit_unknown"
DELIVERY_CHANNELS = ("interaction", "channel", "dm")  # a voice message is a channel post
# How a job was asked for: /speak, "Speak in this voice", /say, "Say this in my voice",
# a result's Again and Edit text buttons.
ORIGINS = ("speak", "message", "say", "say_message", "again", "edit")
SEND_AS = ("file", "voice_message")


class JobState(enum.Enum):
    ACCEPTED = "accepted"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"  # cause recorded, user not yet told
    EXPLAINED = "explained"  # user told

    @property
    def terminal(self) -> bool:
        return self in (JobState.DELIVERED, JobState.EXPLAINED)


TERMINAL_STATES = (JobState.DELIVERED, JobState.EXPLAINED)


class NextStep(enum.Enum):
    """What recovery after a restart must do with an unfinished job."""

    SUBMIT = "submit"  # never sent: safe to submit
    GIVE_UP = "give_up"  # maybe sent: must not resubmit; mark_failed(SUBMIT_UNKNOWN, ...)
    POLL = "poll"  # Segmind has it: poll `poll_url`
    DELIVER = "deliver"  # audio spooled; if DELIVERING, an earlier attempt may have posted
    EXPLAIN = "explain"  # tell the user `failure_message`
    NOTHING = "nothing"  # terminal


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRecord:
    """One accepted `/speak` request and everything needed to finish it after a restart."""

    id: str  # the Discord interaction id
    state: JobState = JobState.ACCEPTED
    created_at: float
    updated_at: float = 0.0  # set by the store on every write
    # The request.
    sample_url: str
    text: str
    language: str
    # Where the answer goes. The token lets anyone with it post as the bot: never shown.
    application_id: int
    interaction_token: str = field(repr=False)
    token_expires_at: float
    channel_id: int
    guild_id: int | None
    user_id: int
    # Whose voice the clip is: the requester's own upload, the author of the message it
    # came from, or for a re-used result that job's; None: recorded before schema 5.
    voice_owner_id: int | None = None
    original_message_id: int | None = None
    # Segmind. `submit_started_at` is written before the submit is sent.
    submit_started_at: float | None = None
    request_id: str | None = None
    poll_url: str | None = None
    submitted_at: float | None = None
    # The result, kept until delivered: in the row, or (large audio) in `audio_path`.
    audio_path: str | None = None  # a file under the data directory (large audio)
    audio_content_type: str | None = None
    audio_extension: str | None = None
    audio_url: str | None = None
    audio_size: int | None = None
    # The failure.
    failure_cause: str | None = None  # short machine code, e.g. "JobFailedError"
    failure_message: str | None = None  # the text shown to the user
    # The delivery.
    delivered_at: float | None = None
    delivery_channel: str | None = None  # one of DELIVERY_CHANNELS
    delivery_message_id: int | None = None
    attempts: int = 0  # delivery attempts started
    # The audit entry: kept when the text and sample URL are wiped at the end.
    text_chars: int = 0  # set by the store from `text`
    sample_host: str = ""  # set by the store from `sample_url`
    # When polls saw it finish, in seconds after the submit (what the ETA learns from).
    seen_running_s: float | None = None  # the last poll that found it unfinished
    seen_done_s: float | None = None  # the first poll that found it done
    # Where the request came from and what it reuses (schema 6).
    origin: str = "speak"  # one of ORIGINS
    voice_id: int | None = None  # a saved voice (its clip's bytes are in the store)
    sample_sha256: str | None = None  # of the clip's bytes, once known (the cache's key)
    owner_pending_until: float | None = None  # waiting for the voice owner's answer
    cached_from: str | None = None  # answered with the stored result of this job
    result_sha256: str | None = None  # of the file as delivered (provenance)
    result_audio_sha256: str | None = None  # of its audio without the tags (schema 7)
    # Deliberate second submits after the saved voice's sample was re-uploaded (0 or 1).
    sample_retries: int = 0
    # How the member asked for the result (schema 11): one of SEND_AS; also played in
    # their voice channel when `play`.
    send_as: str = "file"
    play: bool = False

    @property
    def next_step(self) -> NextStep:
        if self.state is JobState.ACCEPTED:
            return NextStep.SUBMIT if self.submit_started_at is None else NextStep.GIVE_UP
        if self.state is JobState.SUBMITTED:
            return NextStep.POLL
        if self.state in (JobState.COMPLETED, JobState.DELIVERING):
            return NextStep.DELIVER
        if self.state is JobState.FAILED:
            return NextStep.EXPLAIN
        return NextStep.NOTHING


class StoreError(Exception):
    """The store cannot be used. The message names the path, the problem and the fix,
    and is meant to be printed as is."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


class StoreUnavailable(StoreError):
    """The store stopped working as a whole (its writer thread died): nothing more can
    be recorded or read until the bot restarts."""


@dataclass(frozen=True, slots=True)
class Standing:
    """What fair use counts, as the database has it (every process's jobs): today's
    billable jobs and characters of one member in one server, of the server and of the
    bot, the member's open jobs there and their latest start."""

    user_jobs: int = 0
    user_chars: int = 0
    guild_jobs: int = 0
    guild_chars: int = 0
    total_jobs: int = 0
    open_jobs: int = 0
    last_start: float | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """The policy's last word on a new job, asked by a store several processes share,
    with the database's counts, in the same transaction as the insert: `decide` returns
    a refusal (then `add` raises AdmissionRefused) or None."""

    guild_id: int  # 0 for a DM
    user_id: int
    since: float  # the UTC day's start
    recent: float  # the latest start older than this is past its cooldown
    decide: Callable[[Standing], object | None]


class AdmissionRefused(Exception):
    """A new job that would break a fair-use limit counting other processes' jobs."""

    def __init__(self, refusal: object) -> None:
        super().__init__(f"refused by fair use: {refusal}")
        self.refusal = refusal


class LeaseLost(Exception):
    """Another process holds the job's lease now (this one stopped renewing it in time):
    this process must stop driving the job at once, without telling anyone anything."""

    def __init__(self, job_id: str, operation: str) -> None:
        super().__init__(f"job {job_id}: cannot {operation}: another bot process drives it now")
        self.job_id = job_id


class InvalidTransition(Exception):
    """The job is not in a state the operation may start from (a caller bug, or a
    second attempt at something that must happen once)."""

    def __init__(
        self, job_id: str, operation: str, state: JobState | None, detail: str = ""
    ) -> None:
        where = "does not exist" if state is None else f"is {state.name}"
        super().__init__(f"job {job_id}: cannot {operation}: it {where}{detail}")
        self.job_id = job_id
        self.operation = operation
        self.state = state


class JobStore(Protocol):
    """Durable job state. Each write is committed before its method returns."""

    @property
    def writes(self) -> int: ...

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def add(
        self,
        record: JobRecord,
        *,
        deadline: float | None = None,
        admit: Admission | None = None,
    ) -> JobRecord: ...
    async def mark_submit_started(
        self, job_id: str, original_message_id: int | None = None
    ) -> JobRecord: ...
    async def mark_submitted(
        self, job_id: str, request_id: str, poll_url: str, at: float | None = None
    ) -> JobRecord: ...
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
    ) -> JobRecord: ...
    async def mark_delivering(self, job_id: str) -> JobRecord: ...
    async def mark_delivered(
        self,
        job_id: str,
        channel: str,
        message_id: int | None,
        *,
        from_memory: bool = False,
        hashes: tuple[str | None, str | None] = (None, None),
    ) -> JobRecord: ...
    async def mark_failed(self, job_id: str, cause: str, message: str) -> JobRecord: ...
    async def mark_explained(self, job_id: str) -> JobRecord: ...
    async def mark_owner_allowed(self, job_id: str, message_id: int | None) -> JobRecord: ...
    async def set_original_message_id(self, job_id: str, message_id: int) -> JobRecord: ...
    async def mark_resubmit(self, job_id: str, sample_url: str) -> JobRecord: ...

    async def get(self, job_id: str) -> JobRecord | None: ...
    async def job_for_message(self, guild_id: int, message_id: int) -> JobRecord | None: ...
    async def unfinished(self) -> list[JobRecord]: ...
    async def claim_unfinished(self) -> list[JobRecord]:
        """The unfinished jobs no live process drives, now this one's to drive, oldest
        first (SQLite: every unfinished job; its lock makes this the only process)."""
        ...

    async def finish_times(self, limit: int) -> list[tuple[int, float, float]]: ...
    async def count_by_state(self) -> dict[JobState, int]: ...
    async def read_audio(self, record: JobRecord) -> AudioFile | None: ...
    async def purge(self, older_than_seconds: float) -> int: ...
    def problem(self) -> str | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberRecord:
    """What a guild knows about one member: consent given, opted out, blocked."""

    guild_id: int
    user_id: int
    consent_at: float | None = None
    opted_out_at: float | None = None
    blocked_at: float | None = None
    blocked_by: int | None = None
    block_reason: str | None = None
    # The member, as a voice's owner, answered "Always allow" for this server.
    voice_allowed_at: float | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One member's billable jobs in one guild over a period (DMs have guild_id None)."""

    guild_id: int | None
    user_id: int
    jobs: int
    chars: int
    last_at: float


class PolicyStore(Protocol):
    """Durable fair-use state: per-guild settings, members, bot-wide flags, usage."""

    async def usage(self, since: float, guild_id: int | None = None) -> list[UsageRow]: ...
    async def recent_jobs(self, guild_id: int, limit: int) -> list[JobRecord]: ...
    async def delivered_matching(
        self, file_sha256: str, audio_sha256: str | None
    ) -> list[JobRecord]: ...
    async def guild_settings(self) -> dict[int, dict[str, object]]: ...
    async def save_guild_settings(
        self, guild_id: int, settings: dict[str, object], by: int | None
    ) -> None: ...
    async def members(self) -> list[MemberRecord]: ...
    async def save_member(self, member: MemberRecord) -> None: ...
    async def flags(self) -> dict[str, str]: ...
    async def set_flag(self, key: str, value: str) -> None: ...


@runtime_checkable
class JobSignals(Protocol):
    """Messages to the process driving a job, when several share the store (PostgreSQL)."""

    async def signal_job(self, job_id: str, kind: str, value: str) -> None: ...
    async def take_signals(self) -> list[tuple[str, str, str]]:
        """(job id, kind, value) for the jobs this process drives, each once."""
        ...


@runtime_checkable
class SharedPolicyStore(Protocol):
    """A policy store several processes write to (PostgreSQL): what changed elsewhere."""

    async def policy_version(self) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Replay:
    """What the Again and Edit text buttons of a delivered result need (`replays` table)."""

    job_id: str
    created_at: float
    guild_id: int | None
    user_id: int
    voice_owner_id: int | None
    text: str
    language: str
    sample_url: str  # the clip's CDN URL as last known ("" for a saved voice)
    voice_id: int | None
    sample_sha256: str | None
    send_as: str = "file"  # the result's form, again for Again and Edit text (schema 11)
    play: bool = False


class ReplayStore(Protocol):
    """Replays of delivered results (`bot/store/replays.py`)."""

    async def keep_replay(self, job_id: str) -> None: ...
    async def replay(self, job_id: str) -> Replay | None: ...
    async def update_replay_url(self, job_id: str, sample_url: str) -> None: ...
    async def drop_replay(self, job_id: str) -> None: ...
    async def drop_replays_of(self, guild_id: int, user_id: int) -> int: ...


class VoiceStore(Protocol):
    """Saved voices (`voices.VoiceQueries`): kept bytes, names, defaults, shares."""

    async def add_voice(
        self,
        owner_id: int,
        name: str,
        sample: bytes,
        *,
        sha256: str,
        content_type: str,
        filename: str,
        storage_url: str | None,
        limit: int,
    ) -> int: ...
    async def own_voices(self, owner_id: int) -> list[VoiceRecord]: ...
    async def voice_named(self, owner_id: int, name: str) -> VoiceRecord | None: ...
    async def usable_voices(self, guild_id: int | None, user_id: int) -> list[VoiceRecord]: ...
    async def voice_sample(self, voice_id: int) -> bytes | None: ...
    async def get_voice(self, voice_id: int) -> VoiceRecord | None: ...
    async def rename_voice(self, owner_id: int, voice_id: int, name: str) -> bool: ...
    async def delete_voice(self, owner_id: int, voice_id: int) -> bool: ...
    async def set_default_voice(self, owner_id: int, voice_id: int) -> bool: ...
    async def share_voice(
        self, owner_id: int, voice_id: int, guild_id: int, share: bool
    ) -> bool: ...
    async def set_voice_url(self, voice_id: int, storage_url: str) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedResult:
    """A delivered result kept for identical requests (`key`: a hash of the clip's bytes,
    the language and the normalised text; the text itself is not kept)."""

    key: str
    sample_sha256: str
    language: str
    source_job: str  # the job that made it
    voice_owner_id: int | None  # whose voice it is (deleted on their /optout)
    voice_id: int | None  # the saved voice it was made with, if any
    guild_id: int | None
    audio: bytes = field(repr=False)
    content_type: str
    extension: str
    size: int
    created_at: float
    last_used_at: float


class ResultCacheStore(Protocol):
    """Results kept to answer identical requests without paying Segmind again."""

    async def cache_lookup(self, key: str, made_since: float) -> CachedResult | None: ...
    async def cache_put(self, entry: CachedResult, max_bytes: int) -> int: ...
    async def cache_expire(self, older_than_seconds: float) -> int: ...
    async def cache_forget(
        self,
        *,
        sample_sha256: str | None = None,
        voice_id: int | None = None,
        voice_owner_id: int | None = None,
    ) -> int: ...
    async def cache_usage(self) -> tuple[int, int]: ...
    async def mark_cached(
        self,
        job_id: str,
        source_job: str,
        audio: AudioFile,
        sample_sha256: str,
        original_message_id: int | None = None,
    ) -> JobRecord: ...
    async def set_sample_sha256(
        self, job_id: str, sample_sha256: str, original_message_id: int | None = None
    ) -> JobRecord: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSummary:
    """An open job as the status page shows it: no text, no URLs, no token."""

    id: str
    state: JobState
    created_at: float
    updated_at: float
    guild_id: int | None
    language: str
    text_chars: int
    submit_started_at: float | None
    owner_pending_until: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureSummary:
    """A failed job for the status page; `message` is the bot's own wording, which
    carries the error's ref ("ref abcd1234")."""

    id: str
    at: float
    guild_id: int | None
    cause: str
    message: str


class StatusStore(Protocol):
    """What the operator's status page reads (`bot/store/status.py`)."""

    async def open_jobs(self, limit: int) -> list[JobSummary]: ...
    async def recent_failures(self, limit: int) -> list[FailureSummary]: ...


class Store(
    JobStore, PolicyStore, ReplayStore, ResultCacheStore, StatusStore, VoiceStore, Protocol
):
    """Everything the bot keeps."""
