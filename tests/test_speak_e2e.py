"""/speak end to end: real discord.py against the fake Discord and the fake Segmind."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.audio_files import untagged
from tests.fakes.discord import FAKE_TOKEN, FakeInteraction
from tests.fakes.segmind import FAKE_API_KEY, Injection, JobScript, fake_mp3
from tests.harness import World, world

EPHEMERAL = 64


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path) as running:
        yield running


def ack_seconds(interaction: FakeInteraction) -> float:
    assert interaction.acknowledged_at is not None
    return interaction.acknowledged_at - interaction.dispatched_at


async def refused(w: World, interaction: FakeInteraction) -> str:
    await w.discord.wait_for(lambda: interaction.original is not None)
    msg = interaction.original
    assert msg is not None
    assert msg.ephemeral
    return msg.content


async def test_happy_path_delivers_the_cloned_audio(w: World) -> None:
    clip = w.clip(data=fake_mp3(b"the member's voice"))
    interaction = await w.speak("Namaste duniya", "hi", clip=clip)
    msg = await w.answered(interaction)
    assert ack_seconds(interaction) < 3
    assert not msg.ephemeral
    [job] = w.segmind.jobs.values()
    # Segmind got the attachment's URL, the text and the language, and could fetch the clip.
    assert job.voice_samples == clip["url"]
    assert (job.text, job.language) == ("Namaste duniya", "hi")
    assert job.sample_bytes == fake_mp3(b"the member's voice")
    [audio] = msg.attachments
    assert untagged(audio.data) == untagged(fake_mp3(job.request_id.encode()))
    assert audio.filename == "voiceclone-namaste-duniya.mp3"
    assert "Namaste duniya" in msg.content
    assert "Hindi (hi)" in msg.content
    assert "AI-generated" in msg.content
    assert f"<@{w.discord.user_id}>" in msg.content
    assert msg.mentions == []
    assert w.segmind.count("submit") == 1


async def test_progress_is_shown_while_the_job_runs(w: World) -> None:
    w.segmind.script_jobs(
        JobScript(statuses=("QUEUED",) * 5 + ("PROCESSING",) * 8 + ("COMPLETED",))
    )
    interaction = await w.speak()
    msg = await w.answered(interaction)
    shown = [h["content"] for h in msg.history]
    assert any("Cloning the voice" in text for text in shown)
    assert msg.attachments


async def test_queue_position_is_shown(tmp_path: Path) -> None:
    async with world(tmp_path, SEGMIND_MAX_CONCURRENT="1") as w:
        w.segmind.script_jobs(JobScript(statuses=("PROCESSING",) * 15 + ("COMPLETED",)))
        first = await w.speak("first")
        await w.segmind.wait_for(lambda: w.segmind.count("submit") == 1)
        second = await w.speak("second")
        await w.discord.wait_for(
            lambda: second.original is not None and "position **1**" in second.original.content
        )
        await w.answered(first)
        await w.answered(second)


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (
            lambda s: s.script_jobs(JobScript(statuses=("FAILED",), failure_reason="too noisy")),
            "too noisy",
        ),
        (lambda s: s.inject("submit", Injection(status=406)), "out of credits"),
        (lambda s: s.inject("submit", Injection(status=401)), "misconfigured"),
        (
            lambda s: s.inject("submit", Injection(status=400, body={"error": "bad sample"})),
            "bad sample",
        ),
        # A 503 at the submit is ambiguous (never re-sent): the member is told to retry.
        # (A 429 is not a failure: the job waits it out; see tests/test_budget_e2e.py.)
        (lambda s: s.inject("submit", Injection(status=503)), "Try again in"),
        (
            lambda s: s.inject("poll", Injection(status=200, body="<html>", times=20)),
            "could not understand",
        ),
        # Segmind's documented object form of a failure reason: shown as text, not a dict.
        (
            lambda s: s.script_jobs(
                JobScript(
                    statuses=("FAILED",), failure_form="error_message", failure_reason="too quiet"
                )
            ),
            "too quiet",
        ),
        # A ZIP declared audio/mpeg is not posted as an .mp3.
        (
            lambda s: s.script_jobs(JobScript(audio=b"PK\x03\x04" + bytes(64))),
            "result could not be used",
        ),
    ],
)
async def test_each_failure_is_explained(w: World, setup: object, needle: str) -> None:
    setup(w.segmind)  # type: ignore[operator]
    interaction = await w.speak()
    msg = await w.answered(interaction)
    assert needle in msg.content
    assert "{" not in msg.content  # never a Python dict or raw JSON
    assert not msg.attachments


async def test_answers_that_arrive_in_pieces_still_deliver(tmp_path: Path) -> None:
    # Over a real network Segmind's answers come in several reads: the job is read whole,
    # not taken as malformed (and billed for nothing).
    async with world(tmp_path) as w:
        w.segmind.pieces, w.segmind.piece_pause = 3, 0.02
        w.segmind.transfer = "chunked"
        msg = await w.answered(await w.speak("in pieces"))
        [audio] = msg.attachments
        [job] = w.segmind.jobs.values()
        assert untagged(audio.data) == untagged(fake_mp3(job.request_id.encode()))


async def test_timeout_is_explained(tmp_path: Path) -> None:
    async with world(tmp_path, SEGMIND_TIMEOUT="1") as w:
        w.segmind.script_jobs(JobScript(statuses=("PROCESSING",)))
        msg = await w.answered(await w.speak(), within=10)
        assert "took too long" in msg.content


@pytest.mark.parametrize(
    ("filename", "data", "content_type", "needle"),
    [
        ("cat.png", b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png", "isn't an audio clip"),
        ("notes.txt", b"hello", None, "isn't an audio clip"),
        ("voice.mp3", b"\x89PNG\r\n\x1a\n" + bytes(100), "audio/mpeg", "not audio"),
        ("voice.mp3", b"", "audio/mpeg", "empty"),
        ("voice.wav", b"RIFF" + bytes(20_000), "audio/wav", "limit"),
    ],
)
async def test_bad_clips_never_reach_segmind(
    tmp_path: Path, filename: str, data: bytes, content_type: str | None, needle: str
) -> None:
    async with world(tmp_path, MAX_SAMPLE_BYTES="10240") as w:
        interaction = await w.speak(clip=w.clip(filename, data, content_type))
        assert needle in await refused(w, interaction)
        assert ack_seconds(interaction) < 3
        assert w.segmind.count("submit") == 0


@pytest.mark.parametrize(
    ("text", "language", "needle"),
    [("   ", None, "empty"), ("hi", "klingon", "don't know the language")],
)
async def test_bad_text_or_language_refused(
    w: World, text: str, language: str | None, needle: str
) -> None:
    interaction = await w.speak(text, language)
    assert needle in await refused(w, interaction)
    assert w.segmind.count("submit") == 0


async def test_text_limit_is_in_the_schema_and_enforced(tmp_path: Path) -> None:
    async with world(tmp_path, MAX_TEXT_CHARS="20") as w:
        speak = next(c for c in w.discord.commands(w.discord.guild_id) if c["name"] == "speak")
        text_option = next(o for o in speak["options"] if o["name"] == "text")
        assert text_option["max_length"] == 20
        language = next(o for o in speak["options"] if o["name"] == "language")
        assert language["autocomplete"] is True
        clip = w.clip()
        options = [
            {"name": "voice", "type": 11, "value": str(clip["id"])},
            {"name": "text", "type": 3, "value": "x" * 30},
        ]
        # Sent raw, past the schema's max_length (as a modified client could), with the clip
        # resolved as Discord sends it: only the bot's own check stands in the way.
        interaction = await w.discord.slash("speak", options, attachments={"voice": clip})
        content = await refused(w, interaction)
        assert "The text is 30 characters; the limit is 20." in content
        assert ack_seconds(interaction) < 3
        assert w.segmind.count("submit") == 0
        assert await w.bot.store.get(str(interaction.id)) is None  # never became a job


async def test_language_autocomplete(w: World) -> None:
    interaction = await w.discord.autocomplete("speak", "language", "hin")
    await w.discord.wait_for(lambda: interaction.autocomplete_choices is not None)
    assert interaction.autocomplete_choices is not None
    assert interaction.autocomplete_choices[0] == {"name": "Hindi (hi)", "value": "hi"}


async def test_mentions_in_text_ping_nobody(w: World) -> None:
    other = w.discord.add_user("victim")
    text = f"@everyone @here <@{other}> hello"
    msg = await w.answered(await w.speak(text))
    assert msg.mentions == []
    assert not msg.mention_everyone
    for request in w.discord.requests:
        if isinstance(request.json, dict) and "allowed_mentions" in request.json:
            assert request.json["allowed_mentions"] == {"parse": []}


async def test_upload_limit_gives_a_link_instead_of_413(w: World) -> None:
    w.discord.attachment_size_limit = 200
    interaction = await w.speak()
    msg = await w.answered(interaction)
    assert not msg.attachments
    assert "upload limit" in msg.content
    assert w.segmind.base_url in msg.content
    assert all(r.status != 413 for r in w.discord.requests)


async def test_discord_errors_fall_back_to_the_channel(
    w: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    w.discord.inject_error(
        "PATCH", r"^/webhooks/.*/messages/", 404, 10015, "Unknown Webhook", times=50
    )
    first = await w.speak("first")
    await w.discord.wait_for(
        lambda: any(m.attachments for m in w.discord.channel_messages(w.discord.channel_id))
    )
    [posted] = [m for m in w.discord.channel_messages(w.discord.channel_id) if m.attachments]
    assert posted.message_reference is not None
    assert posted.message_reference["message_id"] == str(first.original.id if first.original else 0)
    assert f"<@{w.discord.user_id}>" in posted.content
    assert posted.mentions == []  # named, not pinged
    w.discord._injected.clear()
    msg = await w.answered(await w.speak("second"))  # the bot kept serving
    assert msg.attachments


async def test_unexpected_errors_get_a_reference(
    w: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    # The request checks live in the speak extension's intake module.
    monkeypatch.setattr(sys.modules["cogs.speak._intake"], "clip_problem", broken)
    interaction = await w.speak()
    content = await refused(w, interaction)
    assert "Something went wrong" in content
    ref = content.split("ref `")[1].split("`")[0]
    assert any(ref in r.getMessage() and r.exc_info for r in caplog.records)


async def test_secrets_never_reach_discord_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with world(tmp_path) as w:
        w.segmind.inject("submit", Injection(status=401, body={"error": f"bad key {FAKE_API_KEY}"}))
        await w.answered(await w.speak("one"))
        await w.answered(await w.speak("two"))
        for request in w.discord.requests:
            blob = repr(request.json) + "".join(f.data.decode("latin-1") for f in request.files)
            assert FAKE_API_KEY not in blob
            assert FAKE_TOKEN not in blob
    for record in caplog.records:
        text = record.getMessage() + (caplog.text if record is caplog.records[-1] else "")
        assert FAKE_API_KEY not in text
        assert FAKE_TOKEN not in text


async def test_fifty_at_once_all_acknowledged_and_delivered(w: World) -> None:
    interactions = await asyncio.gather(*(w.speak(f"message {i}") for i in range(50)))
    messages = await asyncio.gather(*(w.answered(i, within=30) for i in interactions))
    assert all(ack_seconds(i) < 3 for i in interactions)
    by_text = {job.text: job for job in w.segmind.jobs.values()}
    assert len(by_text) == 50
    for i, msg in enumerate(messages):
        job = by_text[f"message {i}"]
        assert untagged(msg.attachments[0].data) == untagged(fake_mp3(job.request_id.encode()))
