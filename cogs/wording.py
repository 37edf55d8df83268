"""What the bot says: progress lines, results, and one explanation per failure cause."""

from __future__ import annotations

import re

from bot.audio import MIB
from bot.credits import CreditsPausedError
from bot.jobs import Ending, Phase, Progress
from bot.languages import label
from bot.segmind.errors import (
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    JobFailedError,
    JobTimeoutError,
    OutputRejectedError,
    OutputTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    SegmindConnectionError,
    SegmindError,
    SegmindHTTPError,
    WorkflowNotFoundError,
)

from .echo import inline_code
from .echo import neutralise as neutralise  # the cogs' one way to echo input

QUOTE_CHARS = 200
DETAIL_CHARS = 300  # of the voice service's own explanation of a failure
REF_CHARS = 80
AI_LABEL = "AI-generated voice"


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """The member's text as a one-line block quote: nothing in it can start a line of
    its own under the bot's (see `echo.neutralise`)."""
    return f"> {neutralise(text, limit)}"


def started_line(started_unix: int) -> str:
    # Discord renders <t:…:R> as a live "x minutes ago": elapsed time without edits.
    return f"started <t:{started_unix}:R>"


def progress_text(progress: Progress, started_unix: int) -> str:
    since = started_line(started_unix)
    if progress.phase is Phase.QUEUED:
        return f"⏳ Waiting in line — position **{progress.position}** ({since})."
    left = f" {eta_text(progress.eta)}" if progress.eta is not None else ""
    if progress.phase in (Phase.SUBMITTING, Phase.SUBMITTED):
        return f"📨 Sent to the voice service, waiting for it to start ({since}).{left}"
    if progress.phase is Phase.PROCESSING:
        return f"🧬 Cloning the voice and speaking your text ({since}).{left}"
    if progress.phase is Phase.DOWNLOADING:
        return f"📥 Almost done: fetching the audio ({since})."
    return f"✅ Done ({since})."


def eta_text(seconds: float) -> str:
    """About how long is left, rounded so the message changes rarely."""
    if seconds < 5:
        return "Should be ready any moment now."
    if seconds < 60:
        return f"About {max(5, round(seconds / 5) * 5)} s left."
    return f"About {round(seconds / 60)} min left."


def result_text(text: str, language: str, user_id: int) -> str:
    return f"{quote(text)}\n-# 🌐 {label(language)} · 🤖 {AI_LABEL} · requested by <@{user_id}>"


CACHED_NOTE = "-# ♻️ From an earlier identical request: no new voice job was made."


def too_large_text(size: int, url: str) -> str:
    return (
        f"The audio is {size / MIB:.1f} MiB, over this channel's upload limit even "
        f"compressed, so here is a link instead (it expires within an hour): <{url}>"
    )


VOICE_MESSAGE_NOTE = "-# 🎙️ Sent as a voice message, in reply to this."
CANNOT_CONVERT = "this audio could not be made into one"


NO_PLAYBACK = "voice playback is not available in this bot"


def not_played_text(why: str) -> str:
    return f"-# 🔇 Not played in a voice channel: {why}."


def not_voice_message_text(why: str) -> str:
    return f"-# 📎 Sent as a file, not a voice message: {why}."


def long_job_text(started_unix: int, in_channel: bool, why: str = "") -> str:
    where = "posted here in the channel" if in_channel else "sent to you by DM"
    if why and not in_channel:
        where += f" ({why})"
    return (
        f"⏳ This is taking long ({started_line(started_unix)}). The result will be {where} "
        "when it is ready."
    )


ENDINGS = {
    Ending.SUBMIT_UNKNOWN: (
        "❌ The bot restarted while sending your request to the voice service, so it can't "
        "tell whether the clip was made. Please run /speak again."
    ),
    Ending.RESULT_EXPIRED: (
        "❌ The bot was offline for over an hour and the voice service no longer holds your "
        "result. Please run /speak again."
    ),
    Ending.AUDIO_LOST: (
        "❌ The bot lost the finished audio (its storage was cleared). Please try again."
    ),
    Ending.CANCELLED: "🚫 Cancelled. Nothing was sent to the voice service, so it costs nothing.",
    Ending.CANCELLED_AFTER_SUBMIT: (
        "🚫 Cancelled. The voice service had already received the request, so it may still "
        "be billed; the bot stopped waiting for it."
    ),
    Ending.BUG: "Something went wrong on the bot's side (ref `{ref}`). Please try again.",
    Ending.OWNER_DENIED: (
        "🚫 The voice's owner said no, so nothing was sent to the voice service and it costs "
        "nothing."
    ),
    Ending.OWNER_TIMED_OUT: (
        "⌛ The voice's owner did not answer in time, so nothing was sent and it costs nothing."
    ),
    Ending.OWNER_UNREACHABLE: (
        "🚫 I couldn't ask the voice's owner (their DMs are closed and I can't post in this "
        "channel), so nothing was sent and it costs nothing."
    ),
}


def ending_text(ending: Ending, ref: str = "") -> str:
    """What the member is told when a job ends without audio for a reason of the bot's."""
    return ENDINGS[ending].format(ref=ref)


def failure_text(error: SegmindError) -> str:
    """Say what happened and what to do, by cause; the ref lets an admin find the log."""
    ref = f" (ref {inline_code(error.request_id, REF_CHARS)})" if error.request_id else ""
    if isinstance(error, CreditsPausedError):
        when = f" Try again <t:{int(error.paused_until)}:R>." if error.paused_until else ""
        return (
            "❌ The bot's voice service account is out of credits, so nothing was sent "
            "(it costs nothing). The bot's operator has been told." + when
        )
    if isinstance(error, InsufficientCreditsError):
        return (
            "❌ The bot's Segmind account is out of credits, so no clip could be made. "
            "Please tell a server admin." + ref
        )
    if isinstance(error, AuthenticationError | PermissionDeniedError | WorkflowNotFoundError):
        if isinstance(error, WorkflowNotFoundError) and error.request_id:
            return (
                "❌ The voice service lost track of this job (results expire after an hour). "
                "Please try again." + ref
            )
        return (
            "❌ The bot is misconfigured: the voice service rejected its API key or workflow. "
            "Please tell a server admin." + ref
        )
    if isinstance(error, RateLimitedError) or (
        isinstance(error, SegmindHTTPError | SegmindConnectionError)
        and not isinstance(error, BadRequestError)
    ):
        wait = max(30, int(error.retry_after or 0))
        return f"⏳ The voice service is busy or unreachable. Try again in {wait} s." + ref
    if isinstance(error, BadRequestError | JobFailedError):
        # Segmind's words, posted publicly: flattened, shortened, no mentions or markdown.
        detail = neutralise(error.detail, DETAIL_CHARS)
        reason = f": {detail}" if detail else "."
        return (
            f"❌ The voice service could not use this clip or text{reason} "
            "Try a clear 10–60 second recording of one speaker, without music." + ref
        )
    if isinstance(error, JobTimeoutError):
        return (
            "⌛ The voice service took too long, so the bot stopped waiting. "
            "Try again later, perhaps with shorter text." + ref
        )
    if isinstance(error, OutputTooLargeError):
        return "❌ The voice service made an audio file too large to fetch." + ref
    if isinstance(error, OutputRejectedError):
        return "❌ The voice service's result could not be used. Please try again." + ref
    return (
        "❌ The voice service sent an answer the bot could not understand. Please try again; "
        "if it keeps happening, tell a server admin." + ref
    )


_SLUG = re.compile(r"[^a-z0-9]+")


def audio_filename(text: str, extension: str) -> str:
    slug = _SLUG.sub("-", text.lower())[:40].strip("-") or "clip"
    return f"voiceclone-{slug}.{extension}"
