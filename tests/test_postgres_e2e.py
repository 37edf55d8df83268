"""The real bot on the PostgreSQL store (DATABASE_URL), end to end: a /speak job goes to
delivery with every transition in the database and nothing in BOT_DATA_DIR's SQLite."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from bot.bot import open_store
from bot.store import StoreUnavailable
from tests.fakes.discord import FakeDiscord
from tests.fakes.segmind import FakeSegmind
from tests.harness import bot_settings, world


async def test_a_job_is_delivered_with_its_record_in_postgresql(
    tmp_path: Path, pg_database: str
) -> None:
    async with world(tmp_path, None, DATABASE_URL=pg_database) as w:
        interaction = await w.speak("hello from postgres")
        answer = await w.answered(interaction, 15)
        assert len(answer.attachments) == 1
        await w.job_ended(interaction)
        connection = await asyncpg.connect(pg_database)
        try:
            row = await connection.fetchrow(
                "SELECT state, delivery_channel, text, interaction_token FROM jobs WHERE id = $1",
                str(interaction.id),
            )
        finally:
            await connection.close()
        assert row is not None
        assert (row["state"], row["delivery_channel"]) == ("delivered", "interaction")
        assert (row["text"], row["interaction_token"]) == ("", "")  # wiped at the end
    assert not (tmp_path / "jobs.sqlite3").exists()


async def test_a_bad_url_is_one_clear_line_without_the_password(tmp_path: Path) -> None:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        url = "postgresql://voice:hunter2@127.0.0.1:1/voiceclone"
        settings = bot_settings(tmp_path, segmind, discord, DATABASE_URL=url)
        store = open_store(settings)
        with pytest.raises(StoreUnavailable) as info:
            await store.open()
        assert "hunter2" not in str(info.value)
        assert "voiceclone on 127.0.0.1" in str(info.value)
