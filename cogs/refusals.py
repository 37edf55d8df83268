"""What a member reads when a request is refused: the core's reason codes, worded.

`bot.policy` (fair use) and `bot.audio` (the clip) say why with a code and its data;
the sentences, and Discord's markup (`<t:…:R>` timestamps, channel and role mentions),
live here.
"""

from __future__ import annotations

from bot.audio import CLIP_EXTENSIONS, MIB, ClipProblem, check_clip, check_head
from bot.policy import OPERATOR, SERVER, Reason, Refusal

SETTER_WORDS = {SERVER: "this server's limit", OPERATOR: "the bot operator's limit"}
MENTIONED = 10  # allowed channels or roles named in a refusal

FIXED = {
    Reason.GLOBAL_OFF: "Voice cloning is paused by the bot's owner for now.",
    Reason.GUILD_NOT_ALLOWED: "This bot is not enabled for this server.",
    Reason.GUILD_OFF: "Voice cloning is turned off in this server by its admins.",
    Reason.BLOCKED: "You can't use voice cloning in this server (blocked by its admins).",
    Reason.OPTED_OUT_SELF: (
        "You opted out of voice cloning in this server. Run /optin to allow it again."
    ),
    Reason.OPTED_OUT: "That member has asked not to have their voice cloned here.",
}


def when(moment: float) -> str:
    """A moment as Discord shows it to each reader: "in 5 minutes", "tomorrow"."""
    return f"<t:{int(moment)}:R>"


def _retry(refusal: Refusal) -> str:
    assert refusal.retry_at is not None, refusal.reason
    return when(refusal.retry_at)


def _by(refusal: Refusal) -> str:
    assert refusal.setter is not None, refusal.reason
    return SETTER_WORDS[refusal.setter]


def _mentions(ids: tuple[int, ...], mention: str) -> str:
    return ", ".join(mention.format(i) for i in ids[:MENTIONED])


def refusal_text(refusal: Refusal) -> str:
    """The sentence shown to the member for a fair-use refusal."""
    reason = refusal.reason
    fixed = FIXED.get(reason)
    if fixed is not None:
        return fixed
    if reason is Reason.CHANNEL:
        where = _mentions(refusal.allowed, "<#{}>")
        return f"Voice cloning isn't allowed in this channel. Try {where}."
    if reason is Reason.ROLE:
        return f"Voice cloning needs one of these roles: {_mentions(refusal.allowed, '<@&{}>')}."
    if reason is Reason.CREDITS:
        return (
            "The bot's voice service account is out of credits; the bot's operator has "
            f"been told. Try again {_retry(refusal)}."
        )
    if reason is Reason.COOLDOWN:
        return (
            f"Slow down: you can start another job {_retry(refusal)} "
            f"({_by(refusal)}: one job every {refusal.cap:g} s)."
        )
    if reason is Reason.IN_FLIGHT:
        return (
            f"You already have {refusal.running} job(s) running, the most allowed here "
            f"({_by(refusal)}). Try again when one has finished."
        )
    if reason is Reason.USER_DAILY_CHARS:
        return (
            f"That is {refusal.chars} characters and you have {refusal.left} left of your "
            f"daily {int(refusal.cap)} ({_by(refusal)}). Your budget resets {_retry(refusal)}."
        )
    if reason is Reason.GUILD_DAILY:
        return (
            f"This server has used its daily voice budget ({_by(refusal)}). "
            f"It resets {_retry(refusal)}."
        )
    assert reason is Reason.GLOBAL_DAILY, reason
    return (
        f"The bot has reached its daily limit across all servers ({_by(refusal)}). "
        f"It resets {_retry(refusal)}."
    )


def clip_text(problem: ClipProblem, size: int = 0, max_bytes: int = 0) -> str:
    """The sentence for a clip that cannot be a voice sample."""
    if problem is ClipProblem.NOT_AUDIO:
        return (
            "That file isn't an audio clip. Attach a short recording of the voice "
            f"({', '.join(CLIP_EXTENSIONS)})."
        )
    if problem is ClipProblem.EMPTY:
        return "That audio file is empty. Attach a short recording of the voice."
    if problem is ClipProblem.TOO_BIG:
        return (
            f"That clip is {size / MIB:.1f} MiB; the limit is {max_bytes / MIB:.0f} MiB. "
            "A clear 10–60 second clip is plenty."
        )
    assert problem is ClipProblem.CONTENTS_NOT_AUDIO, problem
    return "That file's contents are not audio (it looks like another kind of file)."


def clip_problem(filename: str, content_type: str | None, size: int, max_bytes: int) -> str | None:
    """Why an attachment cannot be a voice sample, from its metadata, worded; None if it
    may be."""
    problem = check_clip(filename, content_type, size, max_bytes)
    return None if problem is None else clip_text(problem, size, max_bytes)


def head_problem(head: bytes) -> str | None:
    """Why a clip's first bytes show it is not audio, worded; None if they may be audio."""
    problem = check_head(head)
    return None if problem is None else clip_text(problem)
