"""The words a member reads for each refusal: the core's reason codes and data, worded by
cogs/refusals.py exactly as bot/policy.py and bot/audio.py used to write them."""

from __future__ import annotations

import pytest

from bot.audio import MIB, ClipProblem, check_clip, check_head
from bot.policy import GLOBAL_DAILY_JOBS, OPERATOR, SERVER, Reason, Refusal
from cogs.refusals import clip_problem, head_problem, refusal_text

AT = 1_700_000_000.0

CASES: list[tuple[Refusal, str]] = [
    (Refusal(Reason.GLOBAL_OFF), "Voice cloning is paused by the bot's owner for now."),
    (Refusal(Reason.GUILD_NOT_ALLOWED), "This bot is not enabled for this server."),
    (Refusal(Reason.GUILD_OFF), "Voice cloning is turned off in this server by its admins."),
    (
        Refusal(Reason.CHANNEL, allowed=tuple(range(1, 13))),
        "Voice cloning isn't allowed in this channel. Try "
        + ", ".join(f"<#{c}>" for c in range(1, 11))
        + ".",
    ),
    (
        Refusal(Reason.ROLE, allowed=(5, 7)),
        "Voice cloning needs one of these roles: <@&5>, <@&7>.",
    ),
    (
        Refusal(Reason.BLOCKED),
        "You can't use voice cloning in this server (blocked by its admins).",
    ),
    (
        Refusal(Reason.OPTED_OUT_SELF),
        "You opted out of voice cloning in this server. Run /optin to allow it again.",
    ),
    (
        Refusal(Reason.OPTED_OUT),
        "That member has asked not to have their voice cloned here.",
    ),
    (
        Refusal(Reason.CREDITS, retry_at=AT + 0.9),
        "The bot's voice service account is out of credits; the bot's operator has been "
        "told. Try again <t:1700000000:R>.",
    ),
    (
        Refusal(
            Reason.COOLDOWN,
            retry_at=AT,
            limit="user_cooldown_seconds",
            setter=SERVER,
            cap=30.0,
        ),
        "Slow down: you can start another job <t:1700000000:R> (this server's limit: one "
        "job every 30 s).",
    ),
    (
        Refusal(
            Reason.COOLDOWN, retry_at=AT, limit="user_cooldown_seconds", setter=OPERATOR, cap=2.5
        ),
        "Slow down: you can start another job <t:1700000000:R> (the bot operator's limit: "
        "one job every 2.5 s).",
    ),
    (
        Refusal(Reason.IN_FLIGHT, limit="user_max_in_flight", setter=OPERATOR, cap=2, running=2),
        "You already have 2 job(s) running, the most allowed here (the bot operator's "
        "limit). Try again when one has finished.",
    ),
    (
        Refusal(
            Reason.USER_DAILY_CHARS,
            retry_at=AT,
            limit="user_daily_chars",
            setter=SERVER,
            cap=10_000_000,
            chars=41,
            left=40,
        ),
        "That is 41 characters and you have 40 left of your daily 10000000 (this server's "
        "limit). Your budget resets <t:1700000000:R>.",
    ),
    (
        Refusal(Reason.GUILD_DAILY, retry_at=AT, limit="guild_daily_jobs", setter=SERVER, cap=3),
        "This server has used its daily voice budget (this server's limit). It resets "
        "<t:1700000000:R>.",
    ),
    (
        Refusal(Reason.GLOBAL_DAILY, retry_at=AT, limit=GLOBAL_DAILY_JOBS, setter=OPERATOR, cap=9),
        "The bot has reached its daily limit across all servers (the bot operator's limit). "
        "It resets <t:1700000000:R>.",
    ),
]


@pytest.mark.parametrize(("refusal", "text"), CASES, ids=[r.code for r, _ in CASES])
def test_each_refusal_reads_as_before(refusal: Refusal, text: str) -> None:
    assert refusal_text(refusal) == text


def test_every_reason_is_worded() -> None:
    assert {r.reason for r, _ in CASES} == set(Reason)


def test_clip_problems_read_as_before() -> None:
    assert check_clip("a.png", "image/png", 10, MIB) is ClipProblem.NOT_AUDIO
    assert clip_problem("a.png", "image/png", 10, MIB) == (
        "That file isn't an audio clip. Attach a short recording of the voice "
        "(mp3, wav, ogg, opus, m4a, flac, webm, aac)."
    )
    assert check_clip("a.mp3", None, 0, MIB) is ClipProblem.EMPTY
    assert clip_problem("a.mp3", None, 0, MIB) == (
        "That audio file is empty. Attach a short recording of the voice."
    )
    assert check_clip("a.mp3", "audio/mpeg", 3 * MIB, 2 * MIB) is ClipProblem.TOO_BIG
    assert clip_problem("a.mp3", "audio/mpeg", 3 * MIB, 2 * MIB) == (
        "That clip is 3.0 MiB; the limit is 2 MiB. A clear 10–60 second clip is plenty."
    )
    assert check_clip("a.mp3", "audio/mpeg", MIB, MIB) is None
    assert clip_problem("a.mp3", "audio/mpeg", MIB, MIB) is None


def test_head_problems_read_as_before() -> None:
    assert check_head(b"%PDF-1.7 ...") is ClipProblem.CONTENTS_NOT_AUDIO
    assert head_problem(b"<html>") == (
        "That file's contents are not audio (it looks like another kind of file)."
    )
    assert head_problem(b"ID3\x04rest") is None
    assert head_problem(b"") is None
