"""Tests of the Segmind fake itself, with plain aiohttp calls: the bot's tests and the
benchmark trust it to behave like the real service, so its protocol must be pinned down."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.segmind import (
    CREDITS_PATH,
    FAKE_API_KEY,
    WORKFLOW_PATH,
    FakeJob,
    FakeSegmind,
    Injection,
    JobScript,
    fake_mp3,
    main,
)
from tests.fakes.segmind_shapes import RateLimitHeaders, ResetAtFormat, Transfer

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


# -- bodies in pieces ------------------------------------------------------------------------


class Clock:
    """A hand-stepped `FakeSegmind.clock`: job timing and the rate limit become exact."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def gated_sample() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A loopback voice sample URL whose answer waits until the event is set."""
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
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/slow.mp3", release
    release.set()
    await runner.cleanup()


def ends(job: FakeJob) -> tuple[float | None, float | None]:
    """(finished_at, seen_finished_at), read fresh (no type narrowing across polls)."""
    return job.finished_at, job.seen_finished_at


def assert_framing(response: aiohttp.ClientResponse, transfer: str, size: int) -> None:
    if transfer == "chunked":
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in response.headers
    else:
        assert response.headers["Content-Length"] == str(size)
        assert "Transfer-Encoding" not in response.headers


@pytest.mark.parametrize("transfer", ["length", "chunked"])
async def test_body_in_pieces_needs_more_than_one_read(
    http: aiohttp.ClientSession, transfer: Transfer
) -> None:
    # The pause is long so that the second piece cannot have arrived by the first read.
    async with FakeSegmind(pieces=2, piece_pause=0.5, transfer=transfer) as fake:
        fake.credits = 1.0 / 3  # a longer body
        expected = {"credits": fake.credits, "free-credits": 0.0}
        async with http.get(fake.credits_url, headers=KEY) as r:
            assert r.headers["Content-Type"] == "application/json"
            size = len(json.dumps(expected).encode())
            assert_framing(r, transfer, size)
            first = await r.content.read(65536)
            assert 0 < len(first) < size
            rest = await r.read()  # reads on to the end of the body
            assert json.loads(first + rest) == expected
        async with http.get(fake.credits_url, headers=KEY) as r:
            assert json.loads(await r.read()) == expected


@pytest.mark.parametrize("transfer", ["length", "chunked"])
async def test_every_answer_can_come_in_pieces(
    http: aiohttp.ClientSession, transfer: Transfer
) -> None:
    pause = 0.03
    loop = asyncio.get_running_loop()

    async def timed(method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        """The answer, after checking its framing and that its two pauses were waited."""
        started = loop.time()
        async with http.request(method, url, **{"headers": KEY, **kwargs}) as r:
            raw = await r.read()
            if method != "HEAD":
                assert_framing(r, transfer, len(raw))
                assert loop.time() - started >= 2 * pause
            if r.headers.get("Content-Type") == "application/json":
                return r.status, json.loads(raw)
            assert r.headers["Content-Type"] == "audio/mpeg"
            return r.status, raw

    async with FakeSegmind(pieces=3, piece_pause=pause, transfer=transfer) as fake:
        fake.script_jobs(JobScript(statuses=("COMPLETED",)))
        status, answer = await timed("POST", fake.workflow_url, json=job_body(fake.sample_url))
        assert status == 200
        request_id, poll_url = answer["request_id"], answer["poll_url"]
        await fake.wait_for(lambda: fake.jobs[request_id].sample_done)  # samples: one piece
        assert fake.jobs[request_id].sample_bytes == fake.samples["voice.mp3"][0]
        status, answer = await timed("GET", poll_url)
        assert (status, answer["status"]) == (200, "COMPLETED")
        audio_url = json.loads(answer["output"])["Text To Speech"]["output"]["audio_url"]
        assert await timed("GET", audio_url) == (200, fake_mp3(request_id.encode()))
        assert await timed("HEAD", audio_url) == (200, b"")
        assert await timed("GET", f"{fake.base_url}/files/nope.mp3") == (
            404,
            {"error": "Not found"},
        )
        assert await timed("GET", fake.credits_url, headers={}) == (
            401,
            {"error": "Invalid API key"},
        )
        fake.inject("poll", Injection(status=503, body={"error": "busy"}))
        assert await timed("GET", poll_url) == (503, {"error": "busy"})
        fake.rate_limit = (1, 60.0)
        assert (await timed("GET", fake.credits_url))[0] == 200
        assert await timed("GET", fake.credits_url) == (429, {"error": "Rate limit exceeded"})


async def test_injection_chooses_its_own_pieces(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    fake.inject("credits", Injection(status=429, pieces=2, piece_pause=0.5, transfer="chunked"))
    async with http.get(fake.credits_url, headers=KEY) as r:
        assert r.status == 429
        assert r.headers["Transfer-Encoding"] == "chunked"
        first = await r.content.read(65536)
        assert first + await r.read() == b'{"error": "Rate limit exceeded"}'
        assert first != b'{"error": "Rate limit exceeded"}'
    async with http.get(fake.credits_url, headers=KEY) as r:  # the fake's default again
        assert r.headers["Content-Length"] == str(len(await r.read()))
    with pytest.raises(ValueError, match="pieces"):
        Injection(pieces=0)


async def test_close_during_a_piece_pause_cuts_the_body(http: aiohttp.ClientSession) -> None:
    fake = FakeSegmind(pieces=2, piece_pause=30)
    await fake.start()
    waiting = asyncio.create_task(call(http, "GET", fake.credits_url))
    # The status is recorded when the answer is decided, before its pieces go out.
    await fake.wait_for(lambda: fake.count_status(200) == 1)
    started = asyncio.get_running_loop().time()
    await fake.close()
    assert asyncio.get_running_loop().time() - started < 2
    with pytest.raises(aiohttp.ClientPayloadError):
        await waiting


def test_knobs_are_checked_when_set() -> None:
    fake = FakeSegmind()
    for name, value in [
        ("pieces", 0),
        ("piece_pause", -1.0),
        ("transfer", "gzip"),
        ("rate_limit", (0, 60.0)),
        ("rate_limit", (5, 0.0)),
        ("rate_limit_headers", "x-retry"),
        ("reset_at_format", "rfc822"),
    ]:
        with pytest.raises(ValueError, match=name):
            setattr(fake, name, value)
    with pytest.raises(ValueError, match="pieces"):
        FakeSegmind(pieces=0)
    fake.pieces, fake.rate_limit = 5, None
    assert (fake.pieces, fake.rate_limit) == (5, None)


# -- answer shapes ---------------------------------------------------------------------------


async def test_failure_as_error_message_object(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    fake.script_jobs(
        JobScript(statuses=("FAILED",), failure_reason="too noisy", failure_form="error_message"),
        JobScript(failure_form="error_message"),
    )
    scripted = await submit_fetched(fake, http, fake.sample_url)
    foreign = await submit(fake, http, "https://cdn.discordapp.com/attachments/1/2/voice.ogg")
    assert await poll(fake, http, scripted) == {
        "status": "FAILED",
        "error_message": {
            "message": "too noisy",
            "code": "WORKFLOW_EXECUTION_FAILED",
            "details": {"request_id": scripted},
        },
    }
    answer = await poll(fake, http, foreign)  # the job's form applies to sample failures too
    assert "error" not in answer
    assert answer["error_message"]["message"] == (
        "Failed to download voice sample (could not fetch voice sample)"
    )
    with pytest.raises(ValueError, match="failure_form"):
        JobScript(failure_form="text")  # type: ignore[arg-type]


async def test_pixelflow_output_lists_other_nodes_before_the_audio(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    fake.script_jobs(JobScript(statuses=("COMPLETED",), output_form="pixelflow"))
    request_id = await submit_fetched(fake, http, fake.sample_url)
    done = await poll(fake, http, request_id)
    assert isinstance(done["output"], str)
    entries = json.loads(done["output"])
    assert [e["value"]["type"] for e in entries] == ["image", "text", "audio"]
    assert all(set(e) == {"keyname", "value"} for e in entries)
    audio_url = f"{fake.base_url}/files/{request_id}.mp3"
    assert entries[-1] == {
        "keyname": "ElevenLabs TTS",
        "value": {"data": audio_url, "type": "audio"},
    }
    image_url = entries[0]["value"]["data"]
    assert image_url.startswith(f"{fake.base_url}/files/")
    status, image, response = await call(http, "GET", image_url, headers={})
    assert (status, response.headers["Content-Type"]) == (200, "image/png")
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    status, audio, _ = await call(http, "GET", audio_url, headers={})
    assert (status, audio) == (200, fake_mp3(request_id.encode()))
    # The nested default serves no image.
    default = await submit_fetched(fake, http, fake.sample_url)
    assert (await call(http, "GET", f"{fake.base_url}/files/{default}-preview.png"))[0] == 404


async def test_processing_answers_with_empty_output(
    fake: FakeSegmind, http: aiohttp.ClientSession, gated_sample: tuple[str, asyncio.Event]
) -> None:
    url, release = gated_sample
    fake.script_jobs(JobScript(processing_output_empty=True))
    request_id = await submit(fake, http, url)
    assert await poll(fake, http, request_id) == {"status": "QUEUED", "output": ""}  # fetching
    release.set()
    await fake.wait_for(lambda: fake.jobs[request_id].sample_done)
    assert await poll(fake, http, request_id) == {"status": "QUEUED", "output": ""}
    assert await poll(fake, http, request_id) == {"status": "PROCESSING", "output": ""}
    done = await poll(fake, http, request_id)
    assert done["status"] == "COMPLETED"
    assert json.loads(done["output"])["Text To Speech"]["output"]["audio_url"]


async def test_submit_message(http: aiohttp.ClientSession) -> None:
    async with FakeSegmind(submit_message="Request queued for processing") as fake:
        status, answer, _ = await call(
            http, "POST", fake.workflow_url, json=job_body(fake.sample_url)
        )
        assert status == 200
        assert set(answer) == {"request_id", "poll_url", "status", "message"}
        assert answer["message"] == "Request queued for processing"


async def test_bearer_can_be_refused(http: aiohttp.ClientSession) -> None:
    bearer = {"Authorization": f"Bearer {FAKE_API_KEY}"}
    async with FakeSegmind(accept_bearer=False) as fake:
        status, answer, _ = await call(
            http, "POST", fake.workflow_url, headers=bearer, json=job_body(fake.sample_url)
        )
        assert (status, answer) == (401, {"error": "Invalid API key"})
        assert (await call(http, "GET", fake.credits_url, headers=bearer))[0] == 401
        assert (await call(http, "GET", fake.credits_url, headers={**bearer, **KEY}))[0] == 200
        assert fake.jobs == {}
        fake.accept_bearer = True
        assert (await call(http, "GET", fake.credits_url, headers=bearer))[0] == 200


ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("retry-after", "iso"),
        ("reset-at", "iso"),
        ("reset-at", "epoch"),
        ("both", "iso"),
        ("none", "iso"),
    ],
)
async def test_429_headers(
    http: aiohttp.ClientSession, mode: RateLimitHeaders, fmt: ResetAtFormat
) -> None:
    wall = 1_796_160_900.0  # 2026-12-01T21:35:00Z
    async with FakeSegmind(
        rate_limit=(1, 60.0),
        rate_limit_headers=mode,
        reset_at_format=fmt,
    ) as fake:
        fake.wall_clock = lambda: wall
        assert (await call(http, "GET", fake.credits_url))[0] == 200
        status, answer, r = await call(http, "GET", fake.credits_url)
        assert (status, answer) == (429, {"error": "Rate limit exceeded"})
        assert r.headers["x-rate-limit-remaining"] == "0"
        if mode in ("retry-after", "both"):
            assert 59 <= int(r.headers["Retry-After"]) <= 60
        else:
            assert "Retry-After" not in r.headers
        if mode in ("reset-at", "both"):
            stamp = r.headers["x-rate-limit-reset-at-utc"]
            if fmt == "iso":
                assert ISO_MS_Z.fullmatch(stamp), stamp
                assert stamp.startswith("2026-12-01T21:3")
                when = datetime.fromisoformat(stamp).timestamp()
            else:
                assert re.fullmatch(r"\d+\.\d{3}", stamp), stamp
                when = float(stamp)
            # The first admission leaves the 60 s window a little under 60 s from now.
            assert wall + 59 <= when <= wall + 60.001
        else:
            assert "x-rate-limit-reset-at-utc" not in r.headers


async def test_reset_at_says_when_the_next_request_is_admitted(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeSegmind(rate_limit=(1, 0.4), rate_limit_headers="reset-at") as fake:
        assert (await call(http, "GET", fake.credits_url))[0] == 200
        status, _, r = await call(http, "GET", fake.credits_url)
        assert status == 429
        when = datetime.fromisoformat(r.headers["x-rate-limit-reset-at-utc"]).timestamp()
        assert (await call(http, "GET", fake.credits_url))[0] == 429  # refusals do not count
        # Waiting for the stated wall-clock time is the behaviour under test, not a sync.
        await asyncio.sleep(max(0.0, when - time.time()))
        assert (await call(http, "GET", fake.credits_url))[0] == 200


async def test_remaining_header_on_api_answers(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeSegmind(rate_limit=(3, 60.0)) as fake:
        fake.script_jobs(JobScript(statuses=("COMPLETED",)))
        status, answer, r = await call(
            http, "POST", fake.workflow_url, json=job_body(fake.sample_url)
        )
        assert (status, r.headers["x-rate-limit-remaining"]) == (200, "2")
        job = fake.jobs[answer["request_id"]]
        await fake.wait_for(lambda: job.sample_done)  # samples: not rate limited
        _, _, r = await call(http, "GET", fake.credits_url, headers={})
        assert (r.status, r.headers["x-rate-limit-remaining"]) == (401, "2")  # not counted
        _, _, r = await call(http, "GET", answer["poll_url"])
        assert (r.status, r.headers["x-rate-limit-remaining"]) == (200, "1")
        _, _, r = await call(http, "GET", f"{fake.base_url}/workflows/request/nope")
        assert (r.status, r.headers["x-rate-limit-remaining"]) == (404, "0")
        _, _, r = await call(http, "GET", job.audio_url)
        assert r.status == 200
        assert "x-rate-limit-remaining" not in r.headers  # downloads: another host
    async with FakeSegmind() as fake:
        _, _, r = await call(http, "GET", fake.credits_url)
        assert "x-rate-limit-remaining" not in r.headers


# -- jobs that take time ---------------------------------------------------------------------


async def test_timed_job_by_the_clock(
    fake: FakeSegmind, http: aiohttp.ClientSession, gated_sample: tuple[str, asyncio.Event]
) -> None:
    clock = fake.clock = Clock(1000.0)
    url, release = gated_sample
    fake.script_jobs(JobScript(statuses=("FAILED",), duration=0.6, queued_for=0.2))
    request_id = await submit(fake, http, url)
    job = fake.jobs[request_id]
    assert (job.created_at, job.duration, job.finished_at) == (1000.0, 0.6, None)
    clock.now = 1000.3
    assert await poll(fake, http, request_id) == {"status": "QUEUED"}  # sample still fetching
    release.set()
    await fake.wait_for(lambda: job.sample_done)
    assert (job.sample_done_at, job.finished_at) == (1000.3, 1000.6)  # statuses are ignored
    assert await poll(fake, http, request_id) == {"status": "PROCESSING"}
    clock.now = 1000.5999
    assert await poll(fake, http, request_id) == {"status": "PROCESSING"}
    assert ends(job) == (1000.6, None)
    clock.now = 1000.75
    done = await poll(fake, http, request_id)
    assert done["status"] == "COMPLETED"
    assert json.loads(done["output"])["Text To Speech"]["output"]["audio_url"] == job.audio_url
    assert ends(job) == (1000.6, 1000.75)
    clock.now = 1001.0
    await poll(fake, http, request_id)
    assert ends(job) == (1000.6, 1000.75)
    assert (job.steps, job.polls) == (0, 5)


async def test_timed_job_queued_then_failed(fake: FakeSegmind, http: aiohttp.ClientSession) -> None:
    clock = fake.clock = Clock(50.0)
    fake.script_jobs(
        JobScript(duration=1.0, queued_for=0.5, fails=True, failure_reason="TTS node failed")
    )
    request_id = await submit_fetched(fake, http, fake.sample_url)
    assert await poll(fake, http, request_id) == {"status": "QUEUED"}
    clock.now = 50.4999
    assert await poll(fake, http, request_id) == {"status": "QUEUED"}
    clock.now = 50.5
    assert await poll(fake, http, request_id) == {"status": "PROCESSING"}
    clock.now = 51.0
    assert await poll(fake, http, request_id) == {"status": "FAILED", "error": "TTS node failed"}
    job = fake.jobs[request_id]
    assert (job.finished_at, job.seen_finished_at) == (51.0, 51.0)


async def test_timed_job_whose_sample_comes_late_or_never(
    fake: FakeSegmind, http: aiohttp.ClientSession, gated_sample: tuple[str, asyncio.Event]
) -> None:
    clock = fake.clock = Clock(10.0)
    url, release = gated_sample
    fake.script_jobs(JobScript(duration=0.5), JobScript(duration=0.5))
    late = await submit(fake, http, url)
    foreign = await submit(fake, http, "https://cdn.discordapp.com/attachments/1/2/voice.ogg")
    assert fake.jobs[foreign].finished_at == 10.0  # the failed fetch ends it at once
    clock.now = 12.0
    release.set()
    await fake.wait_for(lambda: fake.jobs[late].sample_done)
    assert fake.jobs[late].finished_at == 12.0  # not before its sample was in
    assert (await poll(fake, http, late))["status"] == "COMPLETED"
    assert (await poll(fake, http, foreign))["status"] == "FAILED"


async def test_duration_for_times_jobs_without_a_script(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    clock = fake.clock = Clock(0.0)
    fake.duration_for = lambda text: 0.1 * len(text)
    fake.default_script = JobScript(queued_for=0.1, failure_form="error_message", fails=True)
    fake.script_jobs(JobScript(statuses=("COMPLETED",)))
    _, answer, _ = await call(
        http, "POST", fake.workflow_url, json=job_body(fake.sample_url, "abcd")
    )
    scripted = answer["request_id"]
    _, answer, _ = await call(
        http, "POST", fake.workflow_url, json=job_body(fake.sample_url, "abcd")
    )
    timed = answer["request_id"]
    await fake.wait_for(lambda: all(job.sample_done for job in fake.jobs.values()))
    assert fake.jobs[scripted].duration is None  # its own script counts polls
    assert (await poll(fake, http, scripted))["status"] == "COMPLETED"
    assert fake.jobs[timed].duration == pytest.approx(0.4)
    clock.now = 0.2
    assert await poll(fake, http, timed) == {"status": "PROCESSING"}
    clock.now = 0.4
    answer = await poll(fake, http, timed)
    assert answer["status"] == "FAILED"
    assert answer["error_message"]["message"] == JobScript.failure_reason


async def test_poll_count_job_records_its_times(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    clock = fake.clock = Clock(5.0)
    fake.script_jobs(JobScript(statuses=("PROCESSING", "COMPLETED")))
    request_id = await submit_fetched(fake, http, fake.sample_url)
    job = fake.jobs[request_id]
    assert (job.created_at, job.duration, job.finished_at) == (5.0, None, None)
    clock.now = 6.0
    await poll(fake, http, request_id)
    assert ends(job) == (None, None)
    clock.now = 7.0
    assert (await poll(fake, http, request_id))["status"] == "COMPLETED"
    clock.now = 8.0
    await poll(fake, http, request_id)
    assert ends(job) == (7.0, 7.0)
    assert [r.time for r in fake.requests if r.kind == "poll"] == [6.0, 7.0, 8.0]


async def test_timed_job_on_the_real_clock(fake: FakeSegmind, http: aiohttp.ClientSession) -> None:
    fake.script_jobs(JobScript(duration=0.2))
    request_id = await submit_fetched(fake, http, fake.sample_url)
    job = fake.jobs[request_id]
    submitted = next(r for r in fake.requests if r.kind == "submit")
    assert submitted.time <= job.created_at
    seen: list[str] = []
    while not seen or seen[-1] != "COMPLETED":
        await asyncio.sleep(0.05)  # a client's poll interval: the job itself takes time
        seen.append((await poll(fake, http, request_id))["status"])
        assert len(seen) < 100
    assert set(seen) <= {"PROCESSING", "COMPLETED"}
    finished, seen_finished = ends(job)
    assert job.sample_done_at is not None  # a slow fetch (a loaded machine) ends it later
    assert finished == max(job.created_at + 0.2, job.sample_done_at)
    assert seen_finished is not None
    assert seen_finished >= job.created_at + 0.2
    assert fake.requests[-1].time >= job.created_at + 0.2


# -- rate limit ------------------------------------------------------------------------------


async def test_rolling_window_by_the_clock(fake: FakeSegmind, http: aiohttp.ClientSession) -> None:
    clock = fake.clock = Clock(0.0)
    fake.rate_limit = (2, 10.0)  # set at runtime
    statuses: list[int] = []
    for now in (0.0, 5.0, 6.0, 9.999, 10.0, 10.5, 15.0):
        clock.now = now
        status, _, r = await call(http, "GET", fake.credits_url)
        statuses.append(status)
        if now == 6.0:
            assert r.headers["Retry-After"] == "4"
    # Refused requests do not count: at 10 the one of 0 left, at 15 the one of 5.
    assert statuses == [200, 200, 429, 429, 200, 429, 200]
    assert fake.count_status(429) == fake.count_status(429, "credits") == 3
    assert fake.count_status(200) == 4
    assert fake.count_status(429, "poll") == 0


async def test_rate_limit_changed_at_runtime(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    clock = fake.clock = Clock(0.0)
    fake.rate_limit = (3, 10.0)
    for now in (0.0, 1.0, 2.0):
        clock.now = now
        assert (await call(http, "GET", fake.credits_url))[0] == 200
    fake.rate_limit = (1, 10.0)  # lowered: all three admissions must age out first
    clock.now = 3.0
    status, _, r = await call(http, "GET", fake.credits_url)
    assert (status, r.headers["Retry-After"]) == (429, "9")
    clock.now = 11.99
    assert (await call(http, "GET", fake.credits_url))[0] == 429
    clock.now = 12.0
    assert (await call(http, "GET", fake.credits_url))[0] == 200
    fake.rate_limit = None
    for _ in range(3):
        assert (await call(http, "GET", fake.credits_url))[0] == 200
    assert fake.count_status(429) == 2


async def test_rate_limit_spares_samples_and_downloads(http: aiohttp.ClientSession) -> None:
    async with FakeSegmind(rate_limit=(1, 60.0)) as fake:
        fake.script_jobs(JobScript(statuses=("COMPLETED",)))
        request_id = await submit_fetched(fake, http, fake.sample_url)  # the window is full
        job = fake.jobs[request_id]
        assert job.sample_bytes == fake.samples["voice.mp3"][0]
        for _ in range(3):
            assert (await call(http, "GET", job.audio_url, headers={}))[0] == 200
        assert (await call(http, "GET", fake.credits_url))[0] == 429
        assert fake.count_status(429) == 1
        assert fake.count_status(200, "sample") == 1


# -- command line ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fake_process(*flags: str) -> AsyncIterator[str]:
    """`python -m tests.fakes.segmind --port 0 FLAGS`: its base URL; stopped with SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.segmind",
        "--port",
        "0",
        *flags,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        assert line.startswith("READY http://127.0.0.1:")
        yield line.removeprefix("READY ")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_command_line_pieces_and_durations(http: aiohttp.ClientSession) -> None:
    flags = ("--pieces", "3", "--piece-pause", "0.05", "--transfer", "chunked")
    timing = ("--duration-base", "0.3", "--duration-per-char", "0.01")
    loop = asyncio.get_running_loop()
    async with fake_process(*flags, *timing) as base_url:
        started = loop.time()
        async with http.post(
            base_url + WORKFLOW_PATH,
            headers=KEY,
            json=job_body(f"{base_url}/samples/voice.mp3", "Hello there"),  # 11 characters
        ) as r:
            assert r.headers["Transfer-Encoding"] == "chunked"
            answer = json.loads(await r.read())
        assert loop.time() - started >= 0.1  # two pauses between three pieces
        seen: list[str] = []
        while not seen or seen[-1] != "COMPLETED":
            await asyncio.sleep(0.05)  # a client's poll interval: the job itself takes time
            seen.append((await call(http, "GET", answer["poll_url"]))[1]["status"])
            assert len(seen) < 100
        assert loop.time() - started >= 0.3 + 0.01 * 11
        assert set(seen) <= {"QUEUED", "PROCESSING", "COMPLETED"}


async def test_command_line_reset_at_only(http: aiohttp.ClientSession) -> None:
    async with fake_process("--rate-limit", "1/60", "--reset-at-only") as base_url:
        status, _, r = await call(http, "GET", base_url + CREDITS_PATH)
        assert (status, r.headers["x-rate-limit-remaining"]) == (200, "0")
        status, _, r = await call(http, "GET", base_url + CREDITS_PATH)
        assert status == 429
        assert "Retry-After" not in r.headers
        when = datetime.fromisoformat(r.headers["x-rate-limit-reset-at-utc"]).timestamp()
        assert 55 <= when - time.time() <= 60.01


@pytest.mark.parametrize(
    "argv",
    [
        ["--steps", "2", "--duration-base", "1"],
        ["--pieces", "0"],
        ["--piece-pause", "-1"],
        ["--rate-limit", "many"],
        ["--transfer", "gzip"],
    ],
)
def test_command_line_refuses_bad_flags(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


# -- storage upload (upload-asset) and stored assets ------------------------------------------


def data_url(data: bytes, mime: str = "audio/mpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.mark.parametrize("form", ["urls", "file_urls"])
async def test_upload_answers_either_form_and_serves_the_asset(
    fake: FakeSegmind, http: aiohttp.ClientSession, form: str
) -> None:
    fake.upload_form = form
    clip = fake_mp3(b"kept")
    status, answer, _ = await call(
        http, "POST", fake.base_url + "/upload-asset", json={"data_urls": [data_url(clip)]}
    )
    assert status == 200
    assert list(answer) == [form]
    (url,) = answer[form]
    status, body, response = await call(http, "GET", url, headers={})
    assert (status, body, response.headers["Content-Type"]) == (200, clip, "audio/mpeg")
    assert fake.count("upload") == 1
    assert fake.count("asset") == 1


async def test_upload_needs_the_key_and_data_urls(
    fake: FakeSegmind, http: aiohttp.ClientSession
) -> None:
    url = fake.base_url + "/upload-asset"
    body = {"data_urls": [data_url(b"x")]}
    assert (await call(http, "POST", url, headers={}, json=body))[0] == 401
    assert (await call(http, "POST", url, json={"data_urls": []}))[0] == 400
    assert (await call(http, "POST", url, json={"data_urls": ["not a data url"]}))[0] == 400
    assert not fake.assets


@pytest.mark.parametrize("dead", [403, 404])
async def test_expired_asset_fails_the_jobs_that_use_it(
    fake: FakeSegmind, http: aiohttp.ClientSession, dead: int
) -> None:
    _, answer, _ = await call(
        http, "POST", fake.base_url + "/upload-asset", json={"data_urls": [data_url(b"v")]}
    )
    (url,) = answer["urls"]
    fake.expire_asset(url, dead)
    assert (await call(http, "GET", url, headers={}))[0] == dead
    request_id = await submit_fetched(fake, http, url)
    failed = await poll(fake, http, request_id)
    assert failed["status"] == "FAILED"
    assert f"Failed to download voice sample (HTTP {dead})" in json.dumps(failed)
