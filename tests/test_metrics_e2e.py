"""Health and metrics end to end: the real bot against the fakes, its HTTP server on a
loopback port (METRICS_PORT), scraped over real HTTP as Prometheus and Docker would."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import healthcheck
from bot.store import SqliteJobStore, StoreUnavailable
from tests.fakes.segmind import FAKE_API_KEY, Injection, JobScript
from tests.harness import World, world
from tests.test_store_trouble import until

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
