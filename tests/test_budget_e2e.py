"""The bot on a plan's real rate limit, end to end through discord.py: the fake Segmind
answers 429 past the plan's requests per minute, as the real one does.

Time runs SCALE times faster than real: the plan's 60-second window, the job durations and
the poll interval are all divided by it (the bot's budget is given the same window), so a
minute of the Free plan takes three seconds here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bot.segmind.budget import RequestBudget
from bot.segmind.client import SegmindClient
from tests.fakes.discord import FakeDiscord, FakeInteraction
from tests.fakes.segmind import FAKE_API_KEY, FakeSegmind, JobScript
from tests.harness import World, bot_settings, running_bot, world

SCALE = 20.0
WINDOW = 60 / SCALE


@dataclass
class Plan:
    world: World
    rpm: int

    def api_requests(self) -> list[float]:
        return self.world.segmind.api_times()


@contextlib.asynccontextmanager
async def on_plan(tmp_path: Path, rpm: int, poll_interval: float) -> AsyncIterator[Plan]:
    async with (
        FakeDiscord() as discord,
        FakeSegmind(rate_limit=(rpm, WINDOW)) as segmind,
        aiohttp.ClientSession() as http,
    ):
        with discord.patch_discord_py():
            config = bot_settings(
                tmp_path,
                segmind,
                discord,
                SEGMIND_RPM=str(rpm),
                SEGMIND_POLL_INTERVAL=str(poll_interval / SCALE),
            )
            budget = RequestBudget(rpm, window=WINDOW)
            client = SegmindClient.from_settings(http, config, budget)
            async with running_bot(discord, config, session=http, segmind=client) as bot:
                yield Plan(World(discord, segmind, bot, config), rpm)


async def delivered_at(plan: Plan, interactions: list[FakeInteraction]) -> list[float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    times: dict[int, float] = {}

    async def one(index: int, interaction: FakeInteraction) -> None:
        await plan.world.answered(interaction, within=30)
        times[index] = loop.time() - started

    await asyncio.gather(*(one(i, x) for i, x in enumerate(interactions)))
    return [times[i] for i in range(len(interactions))]


async def test_free_plan_two_jobs_come_one_after_the_other_without_a_429(
    tmp_path: Path,
) -> None:
    # The case: SEGMIND_RPM=5 and two 10 s jobs. The old budget let the whole
    # minute's requests out at once and the second file came only after the window
    # emptied, a minute later.
    async with on_plan(tmp_path, rpm=5, poll_interval=7) as plan:
        w = plan.world
        w.segmind.script_jobs(*(JobScript(duration=10 / SCALE) for _ in range(2)))
        interactions = [await w.speak(f"job {i}") for i in range(2)]
        first, second = sorted(await delivered_at(plan, interactions))
        for interaction in interactions:
            msg = interaction.original
            assert msg is not None
            assert msg.attachments
        assert w.segmind.count_status(429) == 0
        requests = plan.api_requests()
        assert len(requests) <= 5  # two submits, each job found done by its first poll or so
        assert w.segmind.most_in_window(WINDOW) <= 5
        # Spread over the minute, ~12 s apart (the plan's pace), not a burst.
        gaps = [b - a for a, b in itertools.pairwise(sorted(requests))]
        assert min(gaps) >= 0.9 * WINDOW / 5
        assert second < 45 / SCALE  # not a minute: ~37 s (submit, submit, poll, poll)
        assert first < second


async def test_pro_plan_short_polls_do_not_empty_the_minute(tmp_path: Path) -> None:
    # The other case: a 0.2 s poll interval and eight 3 s jobs. All requests went
    # out in the first seconds, every poll found its job unfinished, and no file came for
    # a minute.
    async with on_plan(tmp_path, rpm=50, poll_interval=0.2) as plan:
        w = plan.world
        w.segmind.script_jobs(*(JobScript(duration=3 / SCALE) for _ in range(8)))
        interactions = [await w.speak(f"job {i}") for i in range(8)]
        times = await delivered_at(plan, interactions)
        assert w.segmind.count_status(429) == 0
        requests = plan.api_requests()
        assert w.segmind.most_in_window(WINDOW) <= 50
        t0 = min(requests)
        early = [t for t in requests if t - t0 < 5 / SCALE]
        assert len(early) <= 8  # a few back to back, then ~1.2 s apart: not 60 at once
        assert max(times) < 40 / SCALE  # every file well within the minute


async def test_a_429_from_elsewhere_on_the_account_holds_the_job_and_it_is_delivered(
    tmp_path: Path,
) -> None:
    # Another program on the same account fills the window: the bot's first submit earns
    # a 429, waits until Segmind's reset, and goes on; the member gets the audio.
    async with on_plan(tmp_path, rpm=5, poll_interval=7) as plan:
        w = plan.world
        w.segmind.rate_limit_headers = "reset-at"
        async with aiohttp.ClientSession() as other:
            for _ in range(5):  # someone else's requests, straight to the fake
                key = {"x-api-key": FAKE_API_KEY}
                async with other.get(w.segmind.credits_url, headers=key):
                    pass
        w.segmind.script_jobs(JobScript(duration=5 / SCALE))
        interaction = await w.speak("held, then delivered")
        msg = await w.answered(interaction, within=30)
        assert msg.attachments
        assert w.segmind.count("submit") == 2  # the refused one and the one that went in
        assert w.segmind.count_status(429, "submit") == 1


async def test_the_message_shows_an_eta_once_the_bot_has_history(tmp_path: Path) -> None:
    async with on_plan(tmp_path, rpm=50, poll_interval=2) as plan:
        w = plan.world
        w.segmind.script_jobs(*(JobScript(duration=20 / SCALE) for _ in range(2)))
        first = await w.speak("teaches the bot how long this takes")
        await w.answered(first, within=30)
        assert not any(eta(h) for h in history(first))
        second = await w.speak("now it can say")
        await w.answered(second, within=30)
        # Scaled, the job's 20 s are 1 s here: "any moment now" (in real time "About 20 s").
        assert any(eta(h) for h in history(second))


def eta(snapshot: dict[str, str]) -> bool:
    text = snapshot.get("content", "")
    return "left." in text or "any moment now" in text


def history(interaction: FakeInteraction) -> list[dict[str, str]]:
    msg = interaction.original
    assert msg is not None
    return [*msg.history, {"content": msg.content}]


async def test_what_the_bot_learned_survives_a_restart(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.segmind.script_jobs(JobScript(duration=0.3))
        await w.answered(await w.speak("a job to learn from"), within=10)
        learned = w.bot.jobs.durations.estimate(len("a job to learn from"))
        assert learned is not None
    async with world(tmp_path) as again:
        assert again.bot.jobs.durations.observed == 1
        assert again.bot.jobs.durations.estimate(len("a job to learn from")) == learned
