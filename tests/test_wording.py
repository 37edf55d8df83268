"""Reply texts: one explanation per cause, safe quoting, languages."""

from __future__ import annotations

import asyncio

import discord
import pytest

from bot import languages
from bot.config import DEFAULT_LANGUAGES
from bot.jobs import Phase, Progress
from bot.segmind import errors
from cogs.progress import ProgressMessage
from cogs.wording import audio_filename, eta_text, failure_text, progress_text, quote, result_text


@pytest.mark.parametrize(
    ("error", "needle"),
    [
        (errors.InsufficientCreditsError(), "out of credits"),
        (errors.AuthenticationError(), "misconfigured"),
        (errors.PermissionDeniedError(), "misconfigured"),
        (errors.WorkflowNotFoundError(), "misconfigured"),
        (errors.WorkflowNotFoundError(request_id="r1"), "lost track"),
        (errors.RateLimitedError(retry_after=90), "Try again in 90 s"),
        (errors.ServerError(), "busy or unreachable"),
        (errors.SegmindConnectionError("refused"), "busy or unreachable"),
        (errors.BadRequestError("sample too short"), "sample too short"),
        (errors.JobFailedError("noisy clip"), "could not use this clip"),
        (errors.JobTimeoutError(), "took too long"),
        (errors.UnsafeOutputURLError(), "could not be used"),
        (errors.OutputTooLargeError(), "too large"),
        (errors.MalformedResponseError(), "could not understand"),
    ],
)
def test_failure_text_by_cause(error: errors.SegmindError, needle: str) -> None:
    assert needle in failure_text(error)


def test_failure_text_carries_request_ref() -> None:
    assert "`abc123`" in failure_text(errors.JobFailedError("x", request_id="abc123"))


def test_quote_neutralises_mentions_and_truncates() -> None:
    q = quote("@everyone @here hi <@123456789012345678> and <@&456> " + "x" * 500)
    for mention in ("@everyone", "@here", "<@123456789012345678>", "<@&456>"):
        assert mention not in q
    assert len(q) < 260
    assert q.startswith("> ")


def test_result_text_labels_ai_and_requester() -> None:
    text = result_text("Hello", "hi", 42)
    assert "AI-generated" in text
    assert "<@42>" in text
    assert "Hindi (hi)" in text


def test_audio_filename() -> None:
    assert audio_filename("Hello, World!", "mp3") == "voiceclone-hello-world.mp3"
    assert audio_filename("こんにちは", "wav") == "voiceclone-clip.wav"


def test_language_resolution_and_suggestions() -> None:
    assert languages.resolve(None, DEFAULT_LANGUAGES) == "en"
    assert languages.resolve("HI", DEFAULT_LANGUAGES) == "hi"
    assert languages.resolve("Hindi (hi)", DEFAULT_LANGUAGES) == "hi"
    assert languages.resolve("hindi", DEFAULT_LANGUAGES) == "hi"
    assert languages.resolve("klingon", DEFAULT_LANGUAGES) is None
    assert languages.resolve("fr", ("en", "de")) is None
    assert languages.suggest("hin", DEFAULT_LANGUAGES)[0] == ("Hindi (hi)", "hi")
    assert len(languages.suggest("", DEFAULT_LANGUAGES)) == 25
    assert ("Hindi (hi)", "hi") in languages.suggest("ind", DEFAULT_LANGUAGES)


async def test_progress_edits_are_throttled_and_final_is_last() -> None:
    interval = 0.2
    loop = asyncio.get_running_loop()
    sent: list[tuple[str, float]] = []
    order: list[str] = []
    edited = asyncio.Event()
    in_flight = asyncio.Event()
    gate = asyncio.Event()
    gate.set()

    async def edit(text: str) -> None:
        sent.append((text, loop.time()))
        in_flight.set()
        await gate.wait()
        order.append(f"edited {text}")
        edited.set()

    progress = ProgressMessage(edit, interval=interval, job_ref="t")
    progress.start()
    progress.show("one")
    await asyncio.wait_for(edited.wait(), 2)
    edited.clear()
    for i in range(20):
        progress.show(f"burst {i}")  # within the interval: only the newest is sent
    await asyncio.wait_for(edited.wait(), 2)
    assert [text for text, _ in sent] == ["one", "burst 19"]
    assert sent[1][1] - sent[0][1] >= interval * 0.99  # not before the interval is up
    # An edit in flight when the job stops: stop() waits for it, so the final answer,
    # sent after stop(), is the last edit.
    gate.clear()
    in_flight.clear()
    progress.show("three")
    await asyncio.wait_for(in_flight.wait(), 2)

    async def stopper() -> None:
        await progress.stop()
        order.append("stopped")

    stopping = asyncio.create_task(stopper())
    gate.set()
    await asyncio.wait_for(stopping, 2)
    assert order == ["edited one", "edited burst 19", "edited three", "stopped"]
    assert progress.edits == 3


async def test_progress_survives_discord_errors() -> None:
    attempts: list[str] = []
    tried = asyncio.Event()

    async def edit(text: str) -> None:
        attempts.append(text)
        tried.set()
        if len(attempts) == 1:
            raise discord.HTTPException(
                _Response(),  # type: ignore[arg-type]
                {"code": 50027, "message": "Invalid Webhook Token"},
            )

    progress = ProgressMessage(edit, interval=0.01, job_ref="t")
    progress.start()
    progress.show("a")
    await asyncio.wait_for(tried.wait(), 2)
    tried.clear()
    progress.show("b")  # the editor is still alive after the failure: it sends this one
    await asyncio.wait_for(tried.wait(), 2)
    await progress.stop()
    assert attempts == ["a", "b"]
    assert progress.edits == 1  # the failed edit is not counted


class _Response:
    status = 401
    reason = "Unauthorized"


def test_eta_is_rounded_and_shown_while_the_job_runs() -> None:
    assert eta_text(2) == "Should be ready any moment now."
    assert eta_text(18) == "About 20 s left."
    assert eta_text(7) == "About 5 s left."
    assert eta_text(150) == "About 2 min left."
    running = progress_text(Progress(Phase.PROCESSING, 3.0, eta=21.0), 1_700_000_000)
    assert "About 20 s left." in running
    assert "left" not in progress_text(Progress(Phase.PROCESSING, 3.0), 1_700_000_000)
    assert "left" not in progress_text(Progress(Phase.QUEUED, 3.0, position=2), 1_700_000_000)
