"""Exactly once, everywhere: `kill -9` of the real bot process after its post of a result
reached Discord but before the bot recorded it, then a restart after the interaction token
expired and after Discord forgot the post's nonce (`nonce_window=0`). The restarted bot
must find its earlier post (the interaction's message, the channel or the DM) by the job's
mark and not post again: the member gets exactly one result message.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cogs.wording import VOICE_MESSAGE_NOTE
from tests.audio_files import real_mp3
from tests.fakes.discord import (
    DEFAULT_BOT_PERMISSIONS,
    IS_VOICE_MESSAGE,
    SEND_MESSAGES,
    FakeDiscord,
    FakeInteraction,
    FakeMessage,
)
from tests.fakes.segmind import FakeSegmind, JobScript, fake_mp3
from tests.proc import kill, start_bot, stop, until_state

LIFETIME = 2.0  # seconds the fake's interaction tokens live
OUTLASTS_TOKEN = JobScript(duration=LIFETIME + 1.0)  # finishes after its token died
UPLOADS = r"^/channels/\d+/messages$"

Fakes = tuple[FakeDiscord, FakeSegmind]


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with (
        FakeDiscord(token_lifetime=LIFETIME, nonce_window=0.0) as discord,
        FakeSegmind() as segmind,
    ):
        yield discord, segmind


def results(discord: FakeDiscord, interaction: FakeInteraction) -> list[FakeMessage]:
    """Every message with the job's audio the member can see: in the job's channel (its
    own message included) and in their DMs."""
    places = discord.channel_messages(interaction.channel_id) + discord.dm_messages(
        interaction.user_id
    )
    return [m for m in places if m.attachments]


def delivery(data_dir: Path, interaction: FakeInteraction) -> tuple[str, int]:
    """Where the bot recorded the job as delivered."""
    uri = f"file:{data_dir / 'jobs.sqlite3'}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=5) as db:
        row = db.execute(
            "SELECT delivery_channel, delivery_message_id FROM jobs WHERE id = ?",
            (str(interaction.id),),
        ).fetchone()
    return str(row[0]), int(row[1])


async def crash_mid_post(
    fakes: Fakes, data: Path, method: str, route: str, channel_id: int | None = None
) -> FakeInteraction:
    """Start the bot, run one job, and kill the bot once its post of the result was
    applied by Discord but not yet answered."""
    discord, segmind = fakes
    hold = discord.hold(method, route, when=lambda r: bool(r.files), after_apply=True)
    proc = await start_bot(discord, segmind, data)
    await discord.wait_for(lambda: discord.connected, 20)
    clip = discord.add_attachment("voice.mp3", fake_mp3(b"voice"), "audio/mpeg")
    interaction = await discord.slash(
        "speak", {"voice": clip, "text": "only once"}, channel_id=channel_id
    )
    await discord.wait_for(lambda: bool(hold.held), 20)
    await until_state(data, interaction.id, "delivering")
    await kill(proc)
    hold.release()
    assert len(results(discord, interaction)) == 1  # the post landed
    return interaction


async def restart_after_expiry(fakes: Fakes, data: Path, interaction: FakeInteraction) -> str:
    discord, segmind = fakes
    await discord.wait_until(interaction.expires_at)
    proc = await start_bot(discord, segmind, data)
    try:
        await until_state(data, interaction.id, "delivered", within=20)
    finally:
        _, log = await stop(proc)
    return log


async def test_crash_during_channel_post(fakes: Fakes, tmp_path: Path) -> None:
    discord, segmind = fakes
    data = tmp_path / "data"
    segmind.script_jobs(OUTLASTS_TOKEN)
    interaction = await crash_mid_post(fakes, data, "POST", UPLOADS)
    [posted] = results(discord, interaction)
    assert posted.channel_id == discord.channel_id  # the token was dead: a channel reply

    log = await restart_after_expiry(fakes, data, interaction)
    assert results(discord, interaction) == [posted]
    assert delivery(data, interaction) == ("channel", posted.id)
    assert "delivered before the restart (channel)" in log
    assert segmind.count("submit") == 1
    # The restarted bot recorded the hash of the file the killed one posted: the
    # provenance tags are built from stored values only, so they give the same bytes.
    uri = f"file:{data / 'jobs.sqlite3'}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=5) as db:
        [recorded] = db.execute(
            "SELECT result_sha256 FROM jobs WHERE id = ?", (str(interaction.id),)
        ).fetchone()
    assert recorded == hashlib.sha256(posted.attachments[0].data).hexdigest()


async def test_crash_during_dm_post(fakes: Fakes, tmp_path: Path) -> None:
    discord, segmind = fakes
    data = tmp_path / "data"
    segmind.script_jobs(OUTLASTS_TOKEN)
    locked = discord.add_channel(
        "read-only", bot_permissions=DEFAULT_BOT_PERMISSIONS & ~SEND_MESSAGES
    )
    interaction = await crash_mid_post(fakes, data, "POST", UPLOADS, channel_id=locked)
    [posted] = results(discord, interaction)
    assert posted in discord.dm_messages(interaction.user_id)

    log = await restart_after_expiry(fakes, data, interaction)
    assert results(discord, interaction) == [posted]
    assert delivery(data, interaction) == ("dm", posted.id)
    assert "delivered before the restart (dm)" in log


async def test_crash_during_interaction_edit_then_token_expired(
    fakes: Fakes, tmp_path: Path
) -> None:
    """The file reached the interaction's message; the restart comes after the token
    died, so the webhook can no longer read that message: the channel can."""
    discord, segmind = fakes
    data = tmp_path / "data"
    discord.token_lifetime = 6.0  # room to finish in time: the default job takes ~0.2 s
    interaction = await crash_mid_post(fakes, data, "PATCH", r"^/webhooks/")
    assert interaction.original is not None
    assert interaction.original.attachments

    log = await restart_after_expiry(fakes, data, interaction)
    assert results(discord, interaction) == [interaction.original]
    assert delivery(data, interaction) == ("interaction", interaction.original.id)
    assert "delivered before the restart (interaction)" in log
    assert segmind.count("submit") == 1


async def test_crash_after_the_voice_message_posts_only_its_label(
    fakes: Fakes, tmp_path: Path
) -> None:
    """Killed once the voice message reached Discord, before its label did: the restart
    finds the voice message (it replies to the job's message; it cannot carry the mark),
    does not post it again, and posts the label with the buttons as a reply to it."""
    discord, segmind = fakes
    data = tmp_path / "data"
    discord.token_lifetime = 6.0
    segmind.script_jobs(JobScript(audio=real_mp3(1.0)))
    hold = discord.hold("POST", UPLOADS, when=lambda r: bool(r.files), after_apply=True)
    proc = await start_bot(discord, segmind, data)
    await discord.wait_for(lambda: discord.connected, 20)
    clip = discord.add_attachment("voice.mp3", fake_mp3(b"voice"), "audio/mpeg")
    interaction = await discord.slash(
        "speak", {"voice": clip, "text": "only once", "as": "voice_message"}
    )
    await discord.wait_for(lambda: bool(hold.held), 20)
    await until_state(data, interaction.id, "delivering")
    await kill(proc)
    hold.release()

    def voice_messages() -> list[FakeMessage]:
        return [
            m for m in discord.channel_messages(discord.channel_id) if m.flags & IS_VOICE_MESSAGE
        ]

    [voice] = voice_messages()
    log = await restart_after_expiry(fakes, data, interaction)
    assert voice_messages() == [voice]
    assert delivery(data, interaction) == ("channel", voice.id)
    assert "delivered before the restart (channel)" in log
    [label] = [
        m
        for m in discord.channel_messages(discord.channel_id)
        if m.message_reference and m.message_reference["message_id"] == str(voice.id)
    ]
    assert VOICE_MESSAGE_NOTE in label.content
    assert label.components  # the buttons
    assert label.mentions == []
    assert segmind.count("submit") == 1
