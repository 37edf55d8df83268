"""Health and metrics end to end: the real bot against the fakes, its HTTP server on a
loopback port (METRICS_PORT), scraped over real HTTP as Prometheus and Docker would."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import socket
import sys
import types
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bot import healthcheck
from bot.observe import Metrics, health
from bot.segmind.budget import RequestBudget
from bot.segmind.errors import (
    BadRequestError,
    RateLimitedError,
    SegmindConnectionError,
    ServerError,
)
from bot.store import JobState, SqliteJobStore, StoreUnavailable
from tests.audio_files import real_mp3
from tests.fakes.discord import DEFAULT_BOT_PERMISSIONS
from tests.fakes.discord._constants import GUILD_VOICE, SEND_MESSAGES
from tests.fakes.segmind import FAKE_API_KEY, Injection, JobScript
from tests.fakes.voice_client import FakeVoice
from tests.harness import World, world
from tests.test_store import make_job
from tests.test_store_trouble import until
from tests.test_token_expiry import LIFETIME, OUTLASTS_TOKEN, with_audio
from tests.test_voice_channel_e2e import SECONDS, speak_and_play, voice, voice_world
from tests.test_voice_message_e2e import speak, voice_messages

__all__ = ["voice"]  # a fixture, used by name

TIMEOUT = aiohttp.ClientTimeout(total=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def get(w: World, path: str) -> tuple[int, str]:
    server = w.bot.metrics_server
    assert server is not None
    assert server.port is not None
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.get(f"http://127.0.0.1:{server.port}{path}") as resp,
    ):
        return resp.status, await resp.text()


async def healthz(w: World) -> tuple[int, dict[str, Any]]:
    status, body = await get(w, "/healthz")
    return status, json.loads(body)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def no_secrets(w: World, text: str) -> None:
    for secret in (w.discord.token, FAKE_API_KEY):
        assert secret not in text


@pytest.fixture
async def w(tmp_path: Path) -> Any:
    async with world(tmp_path / "data", METRICS_PORT=str(free_port())) as w:
        yield w


async def test_metrics_count_a_delivered_and_a_failed_job(w: World) -> None:
    w.segmind.script_jobs(JobScript(), JobScript(statuses=("FAILED",)))
    w.segmind.inject("poll", Injection(status=429, headers={"Retry-After": "0.05"}))
    delivered = await w.speak("first")
    msg = await w.answered(delivered)
    assert msg.attachments
    await w.job_ended(delivered)
    failed = await w.speak("second")
    msg = await w.answered(failed)
    assert msg.content.startswith("❌")
    await w.job_ended(failed)

    status, text = await get(w, "/metrics")
    assert status == 200
    no_secrets(w, text)
    found = samples(text)
    assert value(found, "voiceclone_jobs_total", outcome="delivered", cause="") == 1
    assert value(found, "voiceclone_jobs_total", outcome="failed", cause="JobFailedError") == 1
    assert value(found, "voiceclone_job_duration_seconds_count") == 1
    assert value(found, "voiceclone_job_duration_seconds_bucket", le="+Inf") == 1
    assert value(found, "voiceclone_job_duration_seconds_sum") > 0
    assert value(found, "voiceclone_detection_delay_seconds_count") == 1
    assert value(found, "voiceclone_deliveries_total", route="interaction") == 1
    assert value(found, "voiceclone_deliveries_total", route="voice_message") == 0
    assert value(found, "voiceclone_segmind_requests_total", kind="submit", status="ok") == 2
    assert value(found, "voiceclone_segmind_requests_total", kind="download", status="ok") == 1
    polls_ok = value(found, "voiceclone_segmind_requests_total", kind="poll", status="ok")
    assert polls_ok == w.segmind.count("poll") - 1  # each attempt counted, the 429 apart
    assert value(found, "voiceclone_segmind_requests_total", kind="poll", status="429") == 1
    assert value(found, "voiceclone_segmind_rate_limited_total", kind="poll") == 1
    assert value(found, "voiceclone_jobs_in_flight") == 0
    assert value(found, "voiceclone_queue_depth") == 0
    assert value(found, "voiceclone_budget_tokens") == float("inf")  # SEGMIND_RPM=0

    # What the status page reads: the last hour in memory.
    requests = w.bot.metrics.requests_per_minute()
    assert len(requests) == 60
    assert sum(requests) == w.segmind.count("submit") + w.segmind.count("poll") + 1
    [(_finished_at, seconds)] = w.bot.metrics.recent_durations()
    assert 0 < seconds < 10


async def test_queue_depth_and_jobs_in_flight_while_jobs_wait(tmp_path: Path) -> None:
    port = str(free_port())
    async with world(tmp_path / "data", METRICS_PORT=port, SEGMIND_MAX_CONCURRENT="1") as w:
        w.segmind.script_jobs(JobScript(statuses=("PROCESSING",)))
        first = await w.speak("first")
        await until(lambda: w.segmind.count("poll") > 0, 5)
        second = await w.speak("second")
        await until(lambda: w.bot.jobs.waiting == 1, 5)
        found = samples((await get(w, "/metrics"))[1])
        assert value(found, "voiceclone_jobs_in_flight") == 1
        assert value(found, "voiceclone_queue_depth") == 1
        assert w.bot.job_service.cancel(str(first.id), w.discord.user_id)
        await w.answered(second)


async def test_healthz_ok_then_503_when_the_store_breaks(w: World) -> None:
    status, body = await healthz(w)
    assert status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"gateway", "store", "writer", "segmind"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["segmind"]["last_success_s_ago"] is None  # idle, and healthy

    def die(conn: object) -> None:
        raise SystemExit("the writer thread dies")

    store = w.bot.store
    assert isinstance(store, SqliteJobStore)
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(store.run_on_writer(die), 5)
    status, body = await healthz(w)
    assert status == 503
    assert body["status"] == "unhealthy"
    assert not body["checks"]["store"]["ok"]
    assert not body["checks"]["writer"]["ok"]
    assert "writer thread died" in body["checks"]["writer"]["error"]
    assert body["checks"]["gateway"]["ok"]
    no_secrets(w, json.dumps(body))


async def test_healthz_503_when_the_gateway_is_down(w: World) -> None:
    assert (await healthz(w))[0] == 200
    await w.discord.close()  # sockets closed and nothing to reconnect to
    await until(lambda: w.bot.ws is None or not w.bot.ws.open, 5)
    status, body = await healthz(w)
    assert status == 503
    assert not body["checks"]["gateway"]["ok"]
    assert body["checks"]["store"]["ok"]


async def test_the_docker_healthcheck_asks_healthz(
    w: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = w.bot.metrics_server
    assert server is not None
    monkeypatch.setenv("METRICS_PORT", str(server.port))
    monkeypatch.setenv("METRICS_HOST", "0.0.0.0")  # asked on loopback
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "nowhere"))  # the lock check would fail
    assert await asyncio.to_thread(healthcheck.main) == 0
    await w.discord.close()
    await until(lambda: w.bot.ws is None or not w.bot.ws.open, 5)
    assert await asyncio.to_thread(healthcheck.main) == 1
    monkeypatch.setenv("METRICS_PORT", str(free_port()))  # nobody listens there
    assert await asyncio.to_thread(healthcheck.main) == 1


async def test_the_server_listens_on_loopback_only_by_default(w: World) -> None:
    server = w.bot.metrics_server
    assert server is not None
    assert w.settings.metrics_host == "127.0.0.1"
    addresses = server.addresses
    assert addresses
    assert all(host == "127.0.0.1" for host, _ in addresses)
    if importlib.util.find_spec("bot.observe.status_page") is None:
        assert (await get(w, "/"))[0] == 404  # no status page installed
    assert (await get(w, "/nothing"))[0] == 404


async def test_no_server_without_metrics_port(tmp_path: Path) -> None:
    async with world(tmp_path / "data") as w:
        assert w.settings.metrics_port == 0
        assert w.bot.metrics_server is None


def delivered(w: World, route: str) -> float:
    return value(
        samples(w.bot.metrics.render().decode()), "voiceclone_deliveries_total", route=route
    )


async def test_voice_messages_and_voice_channel_plays_count_as_their_own_routes(
    tmp_path: Path, voice: dict[str, FakeVoice]
) -> None:
    async with voice_world(tmp_path, voice) as (w, fake):
        w.segmind.script_jobs(JobScript(audio=real_mp3(SECONDS)))
        as_voice = await speak(w, **{"as": "voice_message"})
        await w.discord.wait_for(lambda: bool(voice_messages(w)), 15)
        await w.job_ended(as_voice)
        assert delivered(w, "voice_message") == 1
        assert delivered(w, "channel") == 0  # stored as a channel post, counted as a voice message

        lounge = w.discord.add_channel("Lounge", kind=GUILD_VOICE)
        await w.discord.join_voice(w.discord.user_id, lounge)
        w.segmind.script_jobs(JobScript(audio=real_mp3(SECONDS)))
        played = await speak_and_play(w)
        await w.answered(played, 15)
        await fake.next_finished()
        await until(lambda: delivered(w, "voice_channel") == 1, 5)
        assert delivered(w, "interaction") == 1  # its file, posted as well


# -- the last hour in memory, and Segmind's health: a clock of our own -------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_requests_per_minute_keeps_one_hour_by_utc_minute() -> None:
    clock = Clock(60 * 1_000_000 + 59.5)  # the last half second of a UTC minute
    metrics = Metrics(clock)
    for _ in range(3):
        metrics.segmind_request("poll", None)
    clock.now += 1  # the next minute
    metrics.segmind_request("submit", None)
    counts = metrics.requests_per_minute()
    assert len(counts) == 60
    assert counts[-2:] == [3, 1]
    assert sum(counts) == 4
    clock.now += 59 * 60  # the first minute is now an hour old: gone; the second, oldest
    assert metrics.requests_per_minute() == [1] + [0] * 59
    for _ in range(500):  # a busy day stays 60 buckets in memory
        clock.now += 60
        metrics.segmind_request("poll", None)
    assert len(metrics._minutes) <= 61
    assert metrics.requests_per_minute() == [1] * 60


def test_recent_durations_are_the_last_hours_deliveries() -> None:
    clock = Clock(1_000_000.0)
    metrics = Metrics(clock)
    for n, age in enumerate((4000, 3000, 10)):
        record = make_job(f"j{n}")
        done = clock.now - age
        metrics.job_ended(
            dataclasses.replace(
                record, state=JobState.DELIVERED, created_at=done - 12, delivered_at=done
            )
        )
    assert metrics.recent_durations() == [(clock.now - 3000, 12.0), (clock.now - 10, 12.0)]
    failed = dataclasses.replace(
        make_job("f"), state=JobState.EXPLAINED, failure_cause="cancelled_after_submit"
    )
    metrics.job_ended(failed)
    found = samples(metrics.render().decode())
    assert (
        value(found, "voiceclone_jobs_total", outcome="cancelled", cause="cancelled_after_submit")
        == 1
    )
    assert value(found, "voiceclone_jobs_total", outcome="delivered", cause="") == 3


def test_segmind_is_unhealthy_only_after_failing_for_a_while_with_no_success() -> None:
    clock = Clock(1_000_000.0)
    metrics = Metrics(clock)
    assert health.segmind(metrics, clock.now)["ok"]  # fresh and idle
    metrics.segmind_request("poll", RateLimitedError("slow down"))
    metrics.segmind_request("submit", BadRequestError("a member's bad sample"))
    assert metrics.failing_since is None  # neither says Segmind is down
    metrics.segmind_request("poll", SegmindConnectionError("refused"))
    for _ in range(5):
        clock.now += health.SEGMIND_FAILING_FOR / 4
        assert health.segmind(metrics, clock.now)["ok"] == (clock.now - 1_000_000 < 300)
        metrics.segmind_request("poll", ServerError("down"))
    assert not health.segmind(metrics, clock.now)["ok"]
    clock.now += health.SEGMIND_FAILING_FOR  # nothing sent since: nothing known, healthy
    assert health.segmind(metrics, clock.now)["ok"]
    metrics.segmind_request("poll", ServerError("down"))
    assert not health.segmind(metrics, clock.now)["ok"]
    metrics.segmind_request("poll", None)
    assert health.segmind(metrics, clock.now) == {
        "ok": True,
        "last_success_s_ago": 0.0,
        "failing_for_s": None,
    }


async def test_budget_tokens_follow_the_grants() -> None:
    budget = RequestBudget(50)
    assert budget.available() == budget.burst
    await budget.acquire()
    assert budget.available() == budget.burst - 1
    budget.pause_for(5)
    assert budget.available() == 0
    budget.close()


async def test_a_status_page_module_plugs_in_at_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contract for bot/observe/status_page.py: `handler(bot)` gives the handler of `/`."""
    page = types.ModuleType("bot.observe.status_page")

    def handler(bot: Any) -> Any:
        async def status_page(request: web.Request) -> web.Response:
            return web.Response(
                text=f"<p>in flight: {bot.jobs.in_flight}</p>", content_type="text/html"
            )

        return status_page

    setattr(page, "handler", handler)  # noqa: B010 (a module made here)
    monkeypatch.setitem(sys.modules, "bot.observe.status_page", page)
    async with world(tmp_path / "data", METRICS_PORT=str(free_port())) as w:
        status, text = await get(w, "/")
        assert status == 200
        assert text == "<p>in flight: 0</p>"
        assert (await get(w, "/healthz"))[0] == 200


async def test_a_result_sent_by_dm_counts_as_dm(tmp_path: Path) -> None:
    """A job that outlives its interaction token, in a channel the bot cannot post in."""
    port = str(free_port())
    async with world(tmp_path / "data", {"token_lifetime": LIFETIME}, METRICS_PORT=port) as w:
        w.segmind.script_jobs(OUTLASTS_TOKEN)
        locked = w.discord.add_channel(
            "read-only", bot_permissions=DEFAULT_BOT_PERMISSIONS & ~SEND_MESSAGES
        )
        interaction = await w.speak("to my DMs", channel_id=locked)
        user = w.discord.user_id
        await w.discord.wait_for(lambda: bool(with_audio(w.discord.dm_messages(user))), 15)
        await w.job_ended(interaction)
        assert delivered(w, "dm") == 1
        assert delivered(w, "interaction") == delivered(w, "channel") == 0


async def test_the_status_page_is_served_at_the_root_with_the_real_metrics(w: World) -> None:
    if importlib.util.find_spec("bot.observe.status_page") is None:
        pytest.skip("no status page (bot/observe/status_page.py) on this branch")
    interaction = await w.speak("on the page")
    await w.answered(interaction)
    await w.job_ended(interaction)
    status, html = await get(w, "/")
    assert status == 200
    assert "<svg" in html  # the charts, drawn from requests_per_minute and recent_durations
    no_secrets(w, html)
