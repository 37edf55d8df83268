"""Tests of the Segmind fake itself, with plain aiohttp calls: the bot's tests and the
benchmark trust it to behave like the real service, so its protocol must be pinned down."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.segmind import (
    FAKE_API_KEY,
    WORKFLOW_PATH,
    FakeSegmind,
    Injection,
    JobScript,
    fake_mp3,
)

KEY = {"x-api-key": FAKE_API_KEY}
SAMPLE = fake_mp3(b"test voice sample")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def fake() -> AsyncIterator[FakeSegmind]:
    async with FakeSegmind() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


@pytest.fixture
async def sample_server() -> AsyncIterator[str]:
    """A tiny loopback server, standing in for Discord's CDN: /voice.mp3 and a 404."""

    async def voice(_: web.Request) -> web.Response:
        return web.Response(body=SAMPLE, content_type="audio/mpeg")

    app = web.Application()
    app.router.add_get("/voice.mp3", voice)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def job_body(voice_samples: str, text: str = "Hello there") -> dict[str, str]:
    return {"voice_samples": voice_samples, "text": text, "Language_ISO": "en"}


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """One request; the JSON answer (checking its exact Content-Type) or the raw bytes."""
    async with http.request(
        method, url, headers=KEY if headers is None else headers, **kwargs
    ) as r:
        raw = await r.read()
        if r.headers.get("Content-Type") == "application/json":
            return r.status, json.loads(raw), r
        return r.status, raw, r


async def submit(fake: FakeSegmind, http: aiohttp.ClientSession, voice: str) -> str:
    status, answer, _ = await call(http, "POST", fake.workflow_url, json=job_body(voice))
    assert status == 200, answer
    request_id = answer["request_id"]
    assert isinstance(request_id, str)
    return request_id


async def poll(fake: FakeSegmind, http: aiohttp.ClientSession, request_id: str) -> Any:
    status, answer, _ = await call(http, "GET", f"{fake.base_url}/workflows/request/{request_id}")
    assert status == 200, answer
    return answer


async def submit_fetched(fake: FakeSegmind, http: aiohttp.ClientSession, voice: str) -> str:
    """Submit and wait until the fake has fetched the sample, so polls are deterministic."""
    request_id = await submit(fake, http, voice)
    await fake.wait_for(lambda: fake.jobs[request_id].sample_done)
    return request_id


def test_fake_mp3_looks_like_mp3_and_is_distinct() -> None:
    audio = fake_mp3(b"abc")
    assert audio.startswith(b"ID3")
    assert b"abc" in audio
    assert audio.count(b"\xff\xfb") == 3
    assert fake_mp3(b"abc") == audio
    assert fake_mp3(b"abd") != audio
    assert fake_mp3() != audio


async def test_submit_poll_complete_and_download(
    fake: FakeSegmind, http: aiohttp.ClientSession, sample_server: str
) -> None:
    status, answer, response = await call(
        http, "POST", fake.workflow_url, json=job_body(f"{sample_server}/voice.mp3", "Hi")
    )
    assert status == 200
    assert response.headers["Content-Type"] == "application/json"
    request_id = answer["request_id"]
    assert answer == {
        "request_id": request_id,
        "poll_url": f"{fake.base_url}/workflows/request/{request_id}",
        "status": "QUEUED",
    }
    job = fake.jobs[request_id]
    assert (job.voice_samples, job.text, job.language) == (f"{sample_server}/voice.mp3", "Hi", "en")

    await fake.wait_for(lambda: job.sample_done)
    assert job.sample_bytes == SAMPLE
    assert job.sample_error is None

    assert await poll(fake, http, request_id) == {"status": "QUEUED"}
    assert await poll(fake, http, request_id) == {"status": "PROCESSING"}
    done = await poll(fake, http, request_id)
    assert done["status"] == "COMPLETED"
    assert isinstance(done["output"], str)
    output = json.loads(done["output"])
    audio_url = output["Text To Speech"]["output"]["audio_url"]
    assert audio_url == f"{fake.base_url}/files/{request_id}.mp3"
    assert await poll(fake, http, request_id) == done  # the last status repeats

    async with http.get(audio_url) as r:  # public storage: no key
        assert r.status == 200
        assert r.headers["Content-Type"] == "audio/mpeg"
        assert await r.read() == fake_mp3(request_id.encode())

    assert (fake.count("submit"), fake.count("poll"), fake.count("download")) == (1, 4, 1)
    assert job.polls == 4
    assert job.status == "COMPLETED"
    first = fake.requests[0]
    assert (first.kind, first.method, first.path, first.status) == (
        "submit",
        "POST",
        WORKFLOW_PATH,
        200,
    )
    assert first.headers["X-Api-Key"] == FAKE_API_KEY
    assert first.json == job_body(f"{sample_server}/voice.mp3", "Hi")
    assert [r.time for r in fake.requests] == sorted(r.time for r in fake.requests)


async def test_failed_job_and_scripts_in_order(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    fake.script_jobs(
        JobScript(statuses=("PROCESSING", "FAILED"), failure_reason="voice rejected"),
        JobScript(statuses=("WEIRD",), output={"audio": "x"}),
    )
    failing = await submit_fetched(fake, http, fake.sample_url)
    weird = await submit_fetched(fake, http, fake.sample_url)
    default = await submit_fetched(fake, http, fake.sample_url)
    assert fake.jobs[failing].sample_bytes == fake.samples["voice.mp3"][0]

    assert await poll(fake, http, failing) == {"status": "PROCESSING"}
    assert await poll(fake, http, failing) == {"status": "FAILED", "error": "voice rejected"}
    assert await poll(fake, http, weird) == {"status": "WEIRD"}
    assert await poll(fake, http, default) == {"status": "QUEUED"}


async def test_completed_output_override(fake: FakeSegmind, http: aiohttp.ClientSession) -> None:
    fake.script_jobs(
        JobScript(statuses=("COMPLETED",), output={"node": {"url": "http://x.invalid/a.mp3"}}),
        JobScript(statuses=("COMPLETED",), output="not json"),
    )
    as_object = await submit_fetched(fake, http, fake.sample_url)
    as_text = await submit_fetched(fake, http, fake.sample_url)
    assert (await poll(fake, http, as_object))["output"] == {
        "node": {"url": "http://x.invalid/a.mp3"}
    }
    assert (await poll(fake, http, as_text))["output"] == "not json"


async def test_custom_audio_url_and_content_type(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    fake.script_jobs(
        JobScript(
            statuses=("COMPLETED",),
            audio=b"RIFF....WAVE",
            audio_content_type="audio/wav",
            audio_url="https://cdn.example.invalid/out.wav",
        )
    )
    request_id = await submit_fetched(fake, http, fake.sample_url)
    output = json.loads((await poll(fake, http, request_id))["output"])
    assert output["Text To Speech"]["output"]["audio_url"] == "https://cdn.example.invalid/out.wav"
    async with http.get(f"{fake.base_url}/files/{request_id}.mp3") as r:
        assert r.headers["Content-Type"] == "audio/wav"
        assert await r.read() == b"RIFF....WAVE"
    status, _, _ = await call(http, "GET", f"{fake.base_url}/files/nope.mp3")
    assert status == 404


async def test_auth(fake: FakeSegmind, http: aiohttp.ClientSession) -> None:
    for headers in ({}, {"x-api-key": "wrong"}, {"Authorization": "Bearer wrong"}):
        status, answer, _ = await call(
            http, "POST", fake.workflow_url, headers=headers, json=job_body(fake.sample_url)
        )
        assert (status, answer) == (401, {"error": "Invalid API key"})
        status, answer, _ = await call(http, "GET", fake.credits_url, headers=headers)
        assert status == 401
    assert fake.jobs == {}

    bearer = {"Authorization": f"Bearer {FAKE_API_KEY}"}
    status, answer, _ = await call(
        http, "POST", fake.workflow_url, headers=bearer, json=job_body(fake.sample_url)
    )
    assert status == 200
    status, answer, _ = await call(
        http, "GET", f"{fake.base_url}/workflows/request/{answer['request_id']}", headers={}
    )
    assert status == 401
    fake.credits, fake.free_credits = 3.25, 0.5
    status, answer, response = await call(http, "GET", fake.credits_url)
    assert (status, answer) == (200, {"credits": 3.25, "free-credits": 0.5})
    assert response.headers["Content-Type"] == "application/json"
    assert [r.status for r in fake.requests].count(401) == 7


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": b"not json"}, "Request body must be a JSON object"),
        ({"json": ["a", "list"]}, "Request body must be a JSON object"),
        ({"json": {"text": "hi", "Language_ISO": "en"}}, "Missing required field: voice_samples"),
        (
            {"json": {"voice_samples": "http://127.0.0.1/x", "text": 3, "Language_ISO": "en"}},
            "Field text must be a string",
        ),
    ],
)
async def test_bad_body_is_400(
    fake: FakeSegmind, http: aiohttp.ClientSession, kwargs: dict[str, Any], message: str
) -> None:
    status, answer, _ = await call(http, "POST", fake.workflow_url, **kwargs)
    assert (status, answer) == (400, {"error": message})
    assert fake.jobs == {}


async def test_unknown_paths_are_404(fake: FakeSegmind, http: aiohttp.ClientSession) -> None:
    status, answer, _ = await call(
        http, "POST", f"{fake.base_url}/workflows/nope-v1", json=job_body(fake.sample_url)
    )
    assert (status, answer) == (404, {"error": "Workflow not found"})
    status, answer, _ = await call(http, "GET", f"{fake.base_url}/workflows/request/nope")
    assert (status, answer) == (404, {"error": "Request not found"})
    status, _, _ = await call(http, "GET", f"{fake.base_url}/elsewhere")
    assert status == 404
    assert fake.count("other") == 1


async def test_injected_status_with_retry_after_then_normal(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    fake.inject("submit", Injection(status=429, headers={"Retry-After": "2"}, times=2))
    fake.inject(
        "submit", Injection(status=502, body="<html>bad gateway</html>", content_type="text/html")
    )
    for _ in range(2):
        status, answer, response = await call(
            http, "POST", fake.workflow_url, json=job_body(fake.sample_url)
        )
        assert (status, answer) == (429, {"error": "Rate limit exceeded"})
        assert response.headers["Retry-After"] == "2"
    status, answer, response = await call(
        http, "POST", fake.workflow_url, json=job_body(fake.sample_url)
    )
    assert (status, answer) == (502, b"<html>bad gateway</html>")
    assert response.headers["Content-Type"] == "text/html"
    assert fake.jobs == {}
    await submit(fake, http, fake.sample_url)
    assert [r.status for r in fake.requests] == [429, 429, 502, 200]


async def test_injection_applies_before_auth(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    fake.inject("credits", Injection(status=406, body={"error": "Insufficient credits"}))
    status, answer, _ = await call(http, "GET", fake.credits_url, headers={})
    assert (status, answer) == (406, {"error": "Insufficient credits"})
    status, _, _ = await call(http, "GET", fake.credits_url, headers={})
    assert status == 401


async def test_drop_post_is_seen_by_the_client(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    fake.inject("submit", Injection(drop=True))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, "POST", fake.workflow_url, json=job_body(fake.sample_url))
    assert fake.requests[-1].status == 0
    await submit(fake, http, fake.sample_url)  # the next one is normal


async def test_drop_get_is_retried_once_by_aiohttp(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    """aiohttp retries an idempotent request once after a disconnect: one drop is invisible."""
    request_id = await submit_fetched(fake, http, fake.sample_url)
    fake.inject("poll", Injection(drop=True))
    assert await poll(fake, http, request_id) == {"status": "QUEUED"}
    assert fake.count("poll") == 2

    fake.inject("poll", Injection(drop=True, times=2))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await poll(fake, http, request_id)
    assert fake.count("poll") == 4
    assert [r.status for r in fake.requests if r.kind == "poll"] == [0, 200, 0, 0]


async def test_delay_makes_client_time_out_and_close_is_prompt(
    http: aiohttp.ClientSession,
) -> None:
    fake = FakeSegmind()
    await fake.start()
    fake.inject("credits", Injection(status=200, body={"credits": 1}, delay=0.2))
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, answer, _ = await call(http, "GET", fake.credits_url)
    assert (status, answer) == (200, {"credits": 1})
    assert loop.time() - started >= 0.2

    fake.inject("credits", Injection(delay=30, times=2))
    with pytest.raises(asyncio.TimeoutError):
        await call(http, "GET", fake.credits_url, timeout=aiohttp.ClientTimeout(total=0.1))
    # A request still sleeping in the fake must not hold close() up: it is dropped.
    waiting = asyncio.create_task(call(http, "GET", fake.credits_url))
    await fake.wait_for(lambda: fake.count("credits") == 3)
    started = loop.time()
    await fake.close()
    assert loop.time() - started < 2
    with pytest.raises(aiohttp.ClientError):
        await waiting
    assert [r.status for r in fake.requests] == [200, 0, 0]


async def test_create_job_injection_makes_an_ambiguous_failure(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    fake.inject("submit", Injection(status=504, create_job=True))
    status, answer, _ = await call(http, "POST", fake.workflow_url, json=job_body(fake.sample_url))
    assert (status, answer) == (504, {"error": "Gateway timeout"})
    (job,) = fake.jobs.values()
    assert job.text == "Hello there"
    await fake.wait_for(lambda: job.sample_done)
    assert await poll(fake, http, job.request_id) == {"status": "QUEUED"}


async def test_sample_fetch_failures_fail_the_job(
    fake: FakeSegmind, http: aiohttp.ClientSession, sample_server: str
) -> None:
    missing = await submit_fetched(fake, http, f"{sample_server}/missing.mp3")
    foreign = await submit(fake, http, "https://cdn.discordapp.com/attachments/1/2/voice.ogg")
    assert fake.jobs[foreign].sample_done  # decided at once: nothing was fetched
    assert fake.jobs[foreign].sample_error == "could not fetch voice sample"
    assert await poll(fake, http, missing) == {
        "status": "FAILED",
        "error": "Failed to download voice sample (HTTP 404)",
    }
    assert await poll(fake, http, foreign) == {
        "status": "FAILED",
        "error": "Failed to download voice sample (could not fetch voice sample)",
    }
    assert fake.jobs[missing].sample_bytes is None


async def test_polls_answer_queued_while_the_sample_is_fetched(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    release = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=SAMPLE)

    app = web.Application()
    app.router.add_get("/slow.mp3", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        fake.script_jobs(JobScript(statuses=("COMPLETED",)))
        request_id = await submit(fake, http, f"http://localhost:{port}/slow.mp3")
        for _ in range(3):
            assert await poll(fake, http, request_id) == {"status": "QUEUED"}
        release.set()
        await fake.wait_for(lambda: fake.jobs[request_id].sample_done)
        assert (await poll(fake, http, request_id))["status"] == "COMPLETED"
        assert fake.jobs[request_id].sample_bytes == SAMPLE
    finally:
        await runner.cleanup()


async def test_poll_and_download_delays(fake: FakeSegmind, http: aiohttp.ClientSession) -> None:
    fake.script_jobs(JobScript(statuses=("COMPLETED",), poll_delay=0.1, download_delay=0.1))
    request_id = await submit_fetched(fake, http, fake.sample_url)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await poll(fake, http, request_id)
    async with http.get(f"{fake.base_url}/files/{request_id}.mp3") as r:
        assert r.status == 200
    assert loop.time() - started >= 0.2


async def test_rate_limit(http: aiohttp.ClientSession) -> None:
    async with FakeSegmind(rate_limit=(2, 60.0)) as fake:
        request_id = await submit_fetched(fake, http, fake.sample_url)
        assert (await call(http, "GET", fake.credits_url))[0] == 200
        status, answer, response = await call(http, "GET", fake.credits_url)
        assert (status, answer) == (429, {"error": "Rate limit exceeded"})
        assert 59 <= int(response.headers["Retry-After"]) <= 60
        status, _, _ = await call(http, "GET", f"{fake.base_url}/workflows/request/{request_id}")
        assert status == 429
        async with http.get(f"{fake.base_url}/files/{request_id}.mp3") as r:
            assert r.status == 200  # downloads are not rate limited


async def test_rate_limit_window_rolls(http: aiohttp.ClientSession) -> None:
    async with FakeSegmind(rate_limit=(1, 0.2)) as fake:
        assert (await call(http, "GET", fake.credits_url))[0] == 200
        assert (await call(http, "GET", fake.credits_url))[0] == 429
        await asyncio.sleep(0.25)
        assert (await call(http, "GET", fake.credits_url))[0] == 200


async def test_wait_for(fake: FakeSegmind, http: aiohttp.ClientSession) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await call(http, "GET", fake.credits_url)

    task = asyncio.create_task(later())
    await fake.wait_for(lambda: fake.count("credits") == 1 and fake.requests[-1].status == 200)
    await task
    with pytest.raises(TimeoutError):
        await fake.wait_for(lambda: fake.count("credits") == 2, timeout=0.05)


async def test_command_line_serves_until_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.segmind",
        "--port",
        "0",
        "--steps",
        "2",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        assert line.startswith("READY http://127.0.0.1:")
        base_url = line.removeprefix("READY ")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            status, answer, _ = await call(
                http,
                "POST",
                base_url + WORKFLOW_PATH,
                json=job_body(f"{base_url}/samples/voice.mp3"),
            )
            assert status == 200
            poll_url = answer["poll_url"]
            seen: list[str] = []
            while "COMPLETED" not in seen and len(seen) < 50:
                seen.append((await call(http, "GET", poll_url))[1]["status"])
            # QUEUED while the fake fetches the sample from itself, then --steps 2.
            assert [s for s in seen if s != "QUEUED"] == ["PROCESSING", "COMPLETED"]
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
