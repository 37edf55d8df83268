"""What the job driver needs from the Discord layer, and nothing more: a small protocol the
cogs implement (`cogs/delivery.py`), so the core never imports discord.py's message API.

The driver hands over facts (a progress update, the finished audio, why a job ended) and
the implementation words them, edits the job's message, and finds a path to the member.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from ..audio import AudioFile
from ..segmind.errors import SegmindError
from ..store import JobRecord
from .runner import Progress


class Undeliverable(Exception):
    """No path to the member is left."""


@dataclass(frozen=True, slots=True)
class Sent:
    channel: str  # one of bot.store.DELIVERY_CHANNELS
    message_id: int | None


class Ending(enum.Enum):
    """Why a job ends without audio, when it is not Segmind's own error."""

    SUBMIT_UNKNOWN = "submit_unknown"  # the bot died while the submit was on the wire
    RESULT_EXPIRED = "result_expired"  # offline longer than Segmind keeps a result
    AUDIO_LOST = "audio_lost"  # the finished audio is gone from the store
    CANCELLED = "cancelled"  # by the member, before anything was sent
    CANCELLED_AFTER_SUBMIT = "cancelled_after_submit"  # by the member, maybe billed
    BUG = "bug"  # an unexpected error on the bot's side (with a reference)
    OWNER_DENIED = "owner_denied"  # the voice's owner said no: nothing was sent
    OWNER_TIMED_OUT = "owner_timed_out"  # the owner did not answer in time
    OWNER_UNREACHABLE = "owner_unreachable"  # the owner could not be asked


class Delivery(Protocol):
    """One job's way to its member. Built from the stored record alone, so it works the
    same after a restart."""

    def show(self, update: Progress) -> None:
        """The job moved (cheap, synchronous: the implementation edits on its own time)."""
        ...

    async def close_progress(self, grace: float) -> None:
        """No more progress: wait up to `grace` s for an edit in flight, then stop."""
        ...

    async def watch_token(self) -> None:
        """Until cancelled: shortly before the token dies, tell the member where the
        result will go instead (a job may outlast the token)."""
        ...

    async def posted_before(self) -> Sent | None:
        """After a crash mid-delivery: where an earlier run already posted the result."""
        ...

    def largest_upload(self) -> int:
        """The most any path to the member may upload (larger audio goes as a link)."""
        ...

    def upload_limit(self) -> int:
        """The upload limit of the path the result takes first (larger audio is re-encoded
        to fit, or goes as a link)."""
        ...

    async def voice_message_refused(self) -> str | None:
        """Why the result cannot go as a voice message where it is going (None: it can)."""
        ...

    async def send_result(self, record: JobRecord, audio: AudioFile) -> Sent:
        """Post the result by the first path that works; `Undeliverable` if none."""
        ...

    async def send_failure(self, text: str) -> None:
        """Tell the member why the job ended (the text the store kept)."""
        ...

    def failure_text(self, error: SegmindError) -> str:
        """What to tell the member about Segmind's `error` (stored with the job)."""
        ...

    def ending_text(self, ending: Ending, ref: str = "") -> str:
        """What to tell the member about an `ending` (stored with the job)."""
        ...
