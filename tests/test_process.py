"""`python -m bot` as a real process: serves, stops cleanly on SIGTERM, syncs on request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.segmind import FAKE_API_KEY, FakeSegmind, fake_mp3
from tests.proc import start_bot, stop


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeDiscord, FakeSegmind]]:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        yield discord, segmind


async def test_serves_then_stops_cleanly_on_sigterm(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    proc = await start_bot(discord, segmind, tmp_path / "data")
    try:
        await discord.wait_for(lambda: discord.connected, 20)
        clip = discord.add_attachment("v.mp3", fake_mp3(b"x"), "audio/mpeg")
        interaction = await discord.slash("speak", {"voice": clip, "text": "hello"})
        await discord.wait_for(
            lambda: interaction.original is not None and bool(interaction.original.attachments),
            20,
        )
    finally:
        code, log = await stop(proc)
    assert code == 0
    assert "shutting down" in log
    assert "Traceback" not in log
    assert FAKE_API_KEY not in log
    assert discord.token not in log


async def test_sync_flag_forces_a_sync(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    for args, puts in (((), 1), ((), 1), (("--sync",), 2)):
        proc = await start_bot(discord, segmind, tmp_path / "data", *args)
        try:
            await discord.wait_for(lambda: discord.connected, 20)
        finally:
            code, _ = await stop(proc)
        assert code == 0
        assert discord.command_puts == puts


async def test_rejected_token_is_one_clear_line(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    proc = await start_bot(discord, segmind, tmp_path / "data", token="some-other-token")
    _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert "DISCORD_TOKEN was rejected" in stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert "some-other-token" not in stderr.decode()
    assert "\x1b[" not in stderr.decode()  # no colour codes when not on a terminal
