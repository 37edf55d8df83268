"""Secrets and their lifetimes: no log line carries the bot token, the API key, an
interaction token or a webhook URL's token, at any level (discord.py's own DEBUG lines
included); a job's interaction token leaves the store when the job ends."""

from __future__ import annotations

import dataclasses
import io
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import yarl

from bot.logs import RedactSecrets
from bot.store import JobRecord, SqliteJobStore
from tests.fakes.discord import FakeDiscord
from tests.fakes.segmind import FAKE_API_KEY, FakeSegmind, JobScript, fake_mp3
from tests.harness import world
from tests.proc import start_bot, stop
from tests.test_store import make_job

BOT_TOKEN = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GfAkE1.bot-token-abcdefghijklmnop"
API_KEY = "SG_0123456789abcdef"
# The shape of Discord's interaction tokens: base64 of "interaction:<id>:<secret>".
INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OTpzZWNyZXRzZWNyZXQ"
WEBHOOK_TOKEN = "Xq3-webhook_token-9f8e7d6c5b4a39281706f5e4d3c2b1a0"  # no special shape
API = "https://discord.com/api/v10"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """What a root handler with the bot's filter writes, for DEBUG and up."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets((BOT_TOKEN, API_KEY)))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


SECRETS = (BOT_TOKEN, API_KEY, INTERACTION_TOKEN, WEBHOOK_TOKEN)


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    for fragment in (INTERACTION_TOKEN[16:40], WEBHOOK_TOKEN[4:30]):
        assert fragment not in text


def test_discord_py_debug_lines_with_webhook_and_callback_urls_are_redacted(
    captured: io.StringIO,
) -> None:
    webhook = yarl.URL(f"{API}/webhooks/1100/{INTERACTION_TOKEN}/messages/@original")
    callback = f"{API}/interactions/1577/{INTERACTION_TOKEN}/callback?with_response=true"
    # As discord/webhook/async_.py and discord/http.py log every request they make.
    logging.getLogger("discord.webhook.async_").debug(
        "Webhook ID %s with %s %s has returned status code %s", 1100, "PATCH", webhook, 200
    )
    logging.getLogger("discord.http").debug(
        "%s %s with %s has returned %s", "POST", callback, '{"type": 5}', 200
    )
    logging.getLogger("discord.http").warning(
        "We are being rate limited. %s %s responded with 429.", "POST", webhook
    )
    text = captured.getvalue()
    assert_clean(text)
    assert f"{API}/webhooks/1100/[redacted]/messages/@original" in text
    assert f"{API}/interactions/1577/[redacted]/callback?with_response=true" in text
    assert text.count("[redacted]") == 3


def test_webhook_urls_of_any_shape_are_redacted(captured: io.StringIO) -> None:
    log = logging.getLogger("voiceclone.test")
    log.info("posting to https://discord.com/api/webhooks/123456/%s", WEBHOOK_TOKEN)
    log.error("failed: https://discordapp.com/api/webhooks/99/%s/messages/5", WEBHOOK_TOKEN)
    log.info("payload %r", {"id": "1", "token": INTERACTION_TOKEN, "type": 2})
    text = captured.getvalue()
    assert_clean(text)
    assert "https://discord.com/api/webhooks/123456/[redacted]" in text
    assert "'token': '[redacted]'" in text


def test_tracebacks_and_stacks_are_redacted(captured: io.StringIO) -> None:
    log = logging.getLogger("voiceclone.test")
    try:
        raise RuntimeError(f"PATCH {API}/webhooks/1/{WEBHOOK_TOKEN}/messages/2 with {API_KEY}")
    except RuntimeError:
        log.exception("request failed with bot token %s", BOT_TOKEN)
    log.warning("here: %s", INTERACTION_TOKEN, stack_info=True)
    text = captured.getvalue()
    assert "Traceback" in text
    assert "RuntimeError" in text
    assert_clean(text)


def test_a_bad_format_string_does_not_raise_from_the_filter() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d apples", ("many",), None)
    assert RedactSecrets(()).filter(record) is True


async def test_a_debug_run_logs_no_interaction_token(tmp_path: Path) -> None:
    """The real process at LOG_LEVEL=DEBUG: discord.py logs every request URL, including
    the interaction callback and the webhook edits that carry the interaction token."""
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        proc = await start_bot(discord, segmind, tmp_path / "data", LOG_LEVEL="DEBUG")
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
    assert interaction.token not in log
    assert interaction.token[16:48] not in log
    assert discord.token not in log
    assert FAKE_API_KEY not in log
    # discord.py did log those URLs (the checks above are not vacuous), token redacted.
    assert f"/interactions/{interaction.id}/[redacted]/callback" in log
    assert "/webhooks/" in log
    assert "[redacted]/messages/" in log


# -- the interaction token's lifetime in the store ---------------------------------------


def job(job_id: str) -> JobRecord:
    return dataclasses.replace(make_job(job_id), interaction_token=INTERACTION_TOKEN)


def stored_tokens(data_dir: Path) -> dict[str, tuple[str, str]]:
    """Each job's state and interaction token, read from the database file itself."""
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        rows = db.execute("SELECT id, state, interaction_token FROM jobs").fetchall()
    return {str(row[0]): (str(row[1]), str(row[2])) for row in rows}


@pytest.mark.parametrize("keep_text", [False, True])
async def test_store_wipes_the_token_in_the_final_transition(
    tmp_path: Path, keep_text: bool
) -> None:
    async with SqliteJobStore(tmp_path, keep_text=keep_text) as store:
        for job_id in ("delivered", "explained", "running"):
            await store.add(job(job_id))
            await store.mark_submit_started(job_id)
            await store.mark_submitted(job_id, f"r-{job_id}", "https://api.segmind.com/p/x")
        await store.mark_completed("delivered", b"ID3audio", "audio/mpeg", "mp3", "https://o/a")
        await store.mark_delivering("delivered")
        delivered = await store.mark_delivered("delivered", "interaction", 5)
        failed = await store.mark_failed("explained", "JobFailedError", "It failed.")
        assert failed.interaction_token == INTERACTION_TOKEN  # still needed to tell them
        explained = await store.mark_explained("explained")
        assert delivered.interaction_token == explained.interaction_token == ""
        assert delivered.text == ("Hello there" if keep_text else "")
    assert stored_tokens(tmp_path) == {
        "delivered": ("delivered", ""),
        "explained": ("explained", ""),
        "running": ("submitted", INTERACTION_TOKEN),  # a restart needs it to answer
    }


async def test_interaction_token_is_wiped_when_the_job_ends(tmp_path: Path) -> None:
    """End to end: the row of a delivered job and of an explained failure keeps no token."""
    async with world(tmp_path) as w:
        w.segmind.script_jobs(
            JobScript(statuses=("PROCESSING",) * 20 + ("COMPLETED",)),
            JobScript(statuses=("FAILED",)),
        )
        running = await w.speak("delivered")
        await w.segmind.wait_for(lambda: w.segmind.count("submit") == 1)  # the first script
        failed = await w.speak("failed")
        await w.segmind.wait_for(lambda: w.segmind.count("submit") == 2)
        # While a job runs, its token is kept: a restart needs it to answer.
        assert stored_tokens(tmp_path)[str(running.id)][1] == running.token
        await w.answered(running)
        await w.answered(failed)
        await w.job_ended(running)
        await w.job_ended(failed)
    assert stored_tokens(tmp_path) == {
        str(running.id): ("delivered", ""),
        str(failed.id): ("explained", ""),
    }
