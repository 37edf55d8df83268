"""The Segmind client against the loopback fake: protocol, errors, retries, downloads."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from bot.config import DEFAULT_WORKFLOW_URL, HostPort
from bot.segmind.client import SegmindClient
from bot.segmind.errors import (
    STATUS_ERRORS,
    BadGatewayError,
    InsufficientCreditsError,
    MalformedResponseError,
    NotAudioError,
    OutputTooLargeError,
    SegmindConnectionError,
    SegmindHTTPError,
    UnsafeOutputURLError,
)
from bot.segmind.models import JobHandle, JobStatus, PollResult, find_audio_url
from tests.conftest import FAST_RETRY, MakeClient
from tests.fakes.segmind import FAKE_API_KEY, FakeSegmind, Injection, JobScript, fake_mp3

SAMPLE = "voice.mp3"


async def submit(client: SegmindClient, fake: FakeSegmind) -> JobHandle:
    return await client.submit(fake.sample_url, "Hello there", "hi")


async def test_submit_sends_documented_fields(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    handle = await submit(make_client(), fake_segmind)
    job = fake_segmind.jobs[handle.request_id]
    assert (job.voice_samples, job.text, job.language) == (
        fake_segmind.sample_url,
        "Hello there",
        "hi",
    )
    [sent] = [r for r in fake_segmind.requests if r.kind == "submit"]
    assert sent.json == {
        "voice_samples": fake_segmind.sample_url,
        "text": "Hello there",
        "Language_ISO": "hi",
    }
    assert sent.headers.get("x-api-key") == FAKE_API_KEY
    assert handle.poll_url.endswith(handle.request_id)


async def test_poll_walks_the_status_sequence(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    client = make_client()
    handle = await submit(client, fake_segmind)
    await fake_segmind.wait_for(lambda: fake_segmind.jobs[handle.request_id].sample_done)
    seen = [(await client.poll(handle)).status for _ in range(3)]
    assert seen == [JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.COMPLETED]
    assert fake_segmind.jobs[handle.request_id].sample_bytes is not None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 406, 500, 502, 504])
async def test_submit_error_statuses_are_typed_and_never_resent(
    fake_segmind: FakeSegmind, make_client: MakeClient, status: int
) -> None:
    fake_segmind.inject("submit", Injection(status=status, times=5))
    with pytest.raises(SegmindHTTPError) as info:
        await submit(make_client(), fake_segmind)
    assert type(info.value) is STATUS_ERRORS[status]
    assert fake_segmind.count("submit") == 1  # 4xx: pointless; 5xx: the job may exist


async def test_submit_retries_429_honouring_retry_after(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.inject("submit", Injection(status=429, headers={"Retry-After": "0.3"}))
    loop = asyncio.get_running_loop()
    started = loop.time()
    handle = await submit(make_client(), fake_segmind)
    assert handle.request_id in fake_segmind.jobs
    submits = [r for r in fake_segmind.requests if r.kind == "submit"]
    assert len(submits) == 2
    assert submits[1].time - submits[0].time >= 0.29
    assert loop.time() - started >= 0.29


async def test_submit_429_waits_without_spending_attempts(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    # A 429 refused the job at the door: waiting costs nothing, so it is no failure and
    # uses none of the retry attempts; only the caller's deadline ends the wait.
    fake_segmind.inject("submit", Injection(status=429, times=FAST_RETRY.attempts + 3))
    handle = await submit(make_client(), fake_segmind)
    assert handle.request_id in fake_segmind.jobs
    assert fake_segmind.count("submit") == FAST_RETRY.attempts + 4


async def test_endless_429_is_bounded_by_the_callers_deadline(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.inject("submit", Injection(status=429, headers={"Retry-After": "30"}, times=5))
    client = make_client()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await submit(client, fake_segmind)
    assert fake_segmind.count("submit") == 1  # held by the pause, not re-sent
    assert client.budget.paused_for > 25


async def test_ambiguous_submit_failures_are_not_resent(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    # The server created the job, then the connection dropped: re-sending would bill twice.
    fake_segmind.inject("submit", Injection(drop=True, create_job=True))
    with pytest.raises(SegmindConnectionError) as info:
        await submit(make_client(), fake_segmind)
    assert info.value.request_sent
    assert fake_segmind.count("submit") == 1
    assert len(fake_segmind.jobs) == 1


async def test_submit_timeout_is_not_resent(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.inject("submit", Injection(status=200, delay=2.0, create_job=True))
    client = make_client(request_timeout=aiohttp.ClientTimeout(total=0.3))
    with pytest.raises(SegmindConnectionError):
        await submit(client, fake_segmind)
    assert fake_segmind.count("submit") == 1


async def test_refused_connection_is_retried_then_reported(http: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    waits: list[float] = []

    async def record_sleep(seconds: float) -> None:
        waits.append(seconds)

    client = SegmindClient(
        http,
        api_key=FAKE_API_KEY,
        workflow_url=f"http://127.0.0.1:{port}/workflows/x",
        retry=FAST_RETRY,
        sleep=record_sleep,
    )
    with pytest.raises(SegmindConnectionError) as info:
        await client.submit("http://127.0.0.1/s.mp3", "hi", "en")
    assert not info.value.request_sent
    assert len(waits) == FAST_RETRY.attempts - 1  # nothing was sent, so re-sending is safe
    assert FAKE_API_KEY not in str(info.value)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_poll_retries_transient_errors(
    fake_segmind: FakeSegmind, make_client: MakeClient, status: int
) -> None:
    client = make_client()
    handle = await submit(client, fake_segmind)
    fake_segmind.inject("poll", Injection(status=status, times=2))
    result = await client.poll(handle)
    assert result.status in (JobStatus.QUEUED, JobStatus.PROCESSING)
    assert fake_segmind.count("poll") == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 406])
async def test_poll_client_errors_not_retried(
    fake_segmind: FakeSegmind, make_client: MakeClient, status: int
) -> None:
    client = make_client()
    handle = await submit(client, fake_segmind)
    fake_segmind.inject("poll", Injection(status=status, times=3))
    with pytest.raises(STATUS_ERRORS[status]) as info:
        await client.poll(handle)
    assert info.value.request_id == handle.request_id
    assert fake_segmind.count("poll") == 1


async def test_poll_survives_dropped_connections(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    client = make_client()
    handle = await submit(client, fake_segmind)
    fake_segmind.inject("poll", Injection(drop=True, times=2))  # aiohttp re-tries one itself
    result = await client.poll(handle)
    assert result.status is JobStatus.QUEUED or result.status is JobStatus.PROCESSING


async def test_insufficient_credits_is_typed(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.inject("submit", Injection(status=406, body={"error": "Insufficient credits"}))
    with pytest.raises(InsufficientCreditsError, match="Insufficient credits"):
        await submit(make_client(), fake_segmind)
    assert fake_segmind.count("submit") == 1


async def test_error_text_is_safe_to_show(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    html = "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1>nginx</body></html>"
    fake_segmind.inject("submit", Injection(status=502, body=html, content_type="text/html"))
    with pytest.raises(BadGatewayError) as info:
        await submit(make_client(), fake_segmind)
    assert "<" not in str(info.value)
    leak = {"error": f"bad key {FAKE_API_KEY} " + "x" * 2000}
    fake_segmind.inject("submit", Injection(status=400, body=leak))
    with pytest.raises(SegmindHTTPError) as info2:
        await submit(make_client(), fake_segmind)
    assert FAKE_API_KEY not in str(info2.value)
    assert len(str(info2.value)) < 400


@pytest.mark.parametrize(
    "body",
    ["not json at all", '{"request_id": "x"}', "[]", '{"poll_url": 7}'],
)
async def test_malformed_submit_answers(
    fake_segmind: FakeSegmind, make_client: MakeClient, body: str
) -> None:
    fake_segmind.inject("submit", Injection(status=200, body=body))
    with pytest.raises(MalformedResponseError):
        await submit(make_client(), fake_segmind)


async def test_status_url_outside_segmind_is_refused(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    body = {"request_id": "r1", "poll_url": "http://169.254.169.254/latest/meta-data"}
    fake_segmind.inject("submit", Injection(status=200, body=body))
    with pytest.raises(MalformedResponseError, match="outside Segmind") as info:
        await submit(make_client(), fake_segmind)
    assert info.value.request_id == "r1"


async def test_unknown_status_is_malformed(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.script_jobs(JobScript(statuses=("EXPLODING",)))
    client = make_client()
    handle = await submit(client, fake_segmind)
    await fake_segmind.wait_for(lambda: fake_segmind.jobs[handle.request_id].sample_done)
    with pytest.raises(MalformedResponseError, match="unknown job status"):
        await client.poll(handle)


async def test_download_serves_audio(fake_segmind: FakeSegmind, make_client: MakeClient) -> None:
    client = make_client()
    handle = await submit(client, fake_segmind)
    job = fake_segmind.jobs[handle.request_id]
    audio = await client.download(job.audio_url)
    assert audio.data.startswith(b"ID3")
    assert handle.request_id.encode() in audio.data
    assert (audio.content_type, audio.extension) == ("audio/mpeg", "mp3")


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/a.mp3",
        "http://169.254.169.254/latest/meta-data",
        "https://evil.example.com/a.mp3",
        "http://api.segmind.com/a.mp3",  # Segmind's hosts: https only
        "https://segmind.com.evil.net/a.mp3",
        "file:///etc/passwd",
        "https://user:pw@api.segmind.com/a.mp3",
        "http://127.0.0.1:1/a.mp3",  # loopback, but not the operator's port
    ],
)
async def test_download_refuses_untrusted_urls(make_client: MakeClient, url: str) -> None:
    with pytest.raises(UnsafeOutputURLError):
        await make_client().download(url)


def test_allowed_hosts(make_client: MakeClient) -> None:
    client = make_client(output_hosts=(HostPort("cdn.example.org"), HostPort("files.local", 8080)))
    check = client._check_output_url
    check("https://api.segmind.com/x.mp3")
    check("https://images.segmind.com/outputs/x.mp3")
    check("http://cdn.example.org/x.mp3")  # operator-named: plain http allowed
    check("http://files.local:8080/x.mp3")
    for refused in (
        "http://files.local:9090/x.mp3",
        "https://other-bucket.s3.amazonaws.com/x.mp3",
        # Anyone can create a bucket whose name starts with "segmind": exact hosts only.
        "https://segmind-outputs.s3.us-east-1.amazonaws.com/x.mp3",
        "https://images.segmind.com:8443/x.mp3",  # Segmind's hosts: the https port only
    ):
        with pytest.raises(UnsafeOutputURLError):
            check(refused)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.segmind.com/x.mp3",  # the API's origin is https, not http
        "http://api.segmind.com:8080/x.mp3",
        "https://api.segmind.com:8443/x.mp3",
    ],
)
def test_api_origin_is_trusted_exactly(http: aiohttp.ClientSession, url: str) -> None:
    client = SegmindClient(http, api_key=FAKE_API_KEY, workflow_url=DEFAULT_WORKFLOW_URL)
    client._check_output_url("https://api.segmind.com/x.mp3")
    with pytest.raises(UnsafeOutputURLError):
        client._check_output_url(url)


@pytest.mark.parametrize(
    "poll_url",
    [
        "https://api.segmind.com/workflows/request/abc",  # right path, wrong origin here
        "{base}/v1/get-user-credits",  # the right origin, but not a status URL
        "{base}/workflows/requests-elsewhere/abc",
        "https://segmind-jobs.s3.amazonaws.com/workflows/request/abc",
    ],
)
async def test_key_goes_only_to_status_urls_on_the_api_origin(
    fake_segmind: FakeSegmind, make_client: MakeClient, poll_url: str
) -> None:
    url = poll_url.format(base=fake_segmind.base_url)
    with pytest.raises(MalformedResponseError):
        await make_client().poll(JobHandle("abc", url))
    assert (
        fake_segmind.count("poll") + fake_segmind.count("other") + fake_segmind.count("credits")
        == 0
    )


async def test_download_redirect_to_foreign_host_refused(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.inject(
        "download", Injection(status=302, headers={"Location": "http://10.1.2.3/x.mp3"})
    )
    with pytest.raises(UnsafeOutputURLError):
        await make_client().download(f"{fake_segmind.base_url}/files/nothing.mp3")


async def test_download_too_large(fake_segmind: FakeSegmind, make_client: MakeClient) -> None:
    fake_segmind.script_jobs(JobScript(audio=b"ID3" + bytes(300_000)))
    client = make_client(max_output_bytes=100_000)
    handle = await submit(client, fake_segmind)
    with pytest.raises(OutputTooLargeError):
        await client.download(fake_segmind.jobs[handle.request_id].audio_url)


async def test_download_not_audio(fake_segmind: FakeSegmind, make_client: MakeClient) -> None:
    fake_segmind.script_jobs(
        JobScript(audio=b"<html><body>Access denied</body></html>", audio_content_type="text/html")
    )
    client = make_client()
    handle = await submit(client, fake_segmind)
    with pytest.raises(NotAudioError):
        await client.download(fake_segmind.jobs[handle.request_id].audio_url)


async def test_slow_download_times_out(fake_segmind: FakeSegmind, make_client: MakeClient) -> None:
    fake_segmind.script_jobs(JobScript(download_delay=3.0))
    client = make_client(download_timeout=aiohttp.ClientTimeout(total=0.2))
    handle = await submit(client, fake_segmind)
    with pytest.raises(SegmindConnectionError):
        await client.download(fake_segmind.jobs[handle.request_id].audio_url)


async def test_credits(fake_segmind: FakeSegmind, make_client: MakeClient) -> None:
    fake_segmind.credits = 3.25
    credits = await make_client().credits()
    assert credits.credits == 3.25
    bad = make_client(api_key="wrong-key")
    with pytest.raises(STATUS_ERRORS[401]):
        await bad.credits()


# -- a real network and Segmind's documented shapes ------------------------------------------


async def run_one(client: SegmindClient, fake: FakeSegmind) -> tuple[JobHandle, PollResult]:
    handle = await submit(client, fake)
    await fake.wait_for(lambda: fake.jobs[handle.request_id].sample_done)
    while True:
        result = await client.poll(handle)
        if result.status.finished:
            return handle, result


@pytest.mark.parametrize("transfer", ["length", "chunked"])
async def test_answers_in_pieces_are_read_to_their_end(
    fake_segmind: FakeSegmind, make_client: MakeClient, transfer: str
) -> None:
    # Over a real network a body arrives in several reads; what is buffered is not all.
    fake_segmind.pieces, fake_segmind.piece_pause = 4, 0.03
    fake_segmind.transfer = transfer  # type: ignore[assignment]
    client = make_client()
    handle, result = await run_one(client, fake_segmind)
    assert result.status is JobStatus.COMPLETED
    audio = await client.download(find_audio_url(result.output))
    assert audio.data == fake_mp3(handle.request_id.encode())
    assert (await client.credits()).credits == fake_segmind.credits
    answered = [r for r in fake_segmind.requests if r.kind in ("submit", "poll", "credits")]
    assert answered
    assert all(r.status == 200 for r in answered)


async def test_an_answer_slower_than_the_timeout_is_a_connection_error(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    # The whole read has one deadline: a body that trickles in forever does not hang a job.
    fake_segmind.pieces, fake_segmind.piece_pause = 5, 0.2
    client = make_client(request_timeout=aiohttp.ClientTimeout(total=0.3))
    with pytest.raises(SegmindConnectionError):
        await client.credits()


async def test_failure_reason_as_error_message_object(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.script_jobs(
        JobScript(statuses=("FAILED",), failure_form="error_message", failure_reason="Too noisy")
    )
    _, result = await run_one(make_client(), fake_segmind)
    assert result.status is JobStatus.FAILED
    assert result.error == "Too noisy"


async def test_pixelflow_output_gives_the_audio_not_the_preview_image(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.script_jobs(JobScript(output_form="pixelflow", processing_output_empty=True))
    fake_segmind.submit_message = "Request queued"
    fake_segmind.accept_bearer = False  # the key goes as x-api-key, as documented
    client = make_client()
    handle, result = await run_one(client, fake_segmind)
    audio = await client.download(find_audio_url(result.output))
    assert audio.data == fake_mp3(handle.request_id.encode())


@pytest.mark.parametrize("form", ["retry-after", "reset-at", "both"])
async def test_429_pauses_every_request_until_segmind_says(
    fake_segmind: FakeSegmind, make_client: MakeClient, form: str
) -> None:
    fake_segmind.rate_limit = (1, 0.6)
    fake_segmind.rate_limit_headers = form  # type: ignore[assignment]
    client = make_client()  # an unlimited budget: only Segmind's 429 can hold it
    await submit(client, fake_segmind)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await submit(client, fake_segmind)  # refused, paused, then admitted
    assert fake_segmind.count_status(429) == 1
    assert loop.time() - t0 >= 0.45  # held for the window, not retried at once
    submits = [r for r in fake_segmind.requests if r.kind == "submit"]
    assert [r.status for r in submits] == [200, 429, 200]


async def test_a_429_pause_holds_downloads_too(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    client = make_client()
    handle = await submit(client, fake_segmind)
    job = fake_segmind.jobs[handle.request_id]
    fake_segmind.inject("poll", Injection(status=429, headers={"Retry-After": "0.4"}))
    paused = asyncio.Event()
    pause_for = client.budget.pause_for

    def pause_and_tell(seconds: float) -> None:
        pause_for(seconds)
        paused.set()

    client.budget.pause_for = pause_and_tell  # type: ignore[method-assign]
    poll = asyncio.create_task(client.poll(handle))
    await asyncio.wait_for(paused.wait(), 5)
    download = asyncio.create_task(client.download(job.audio_url))
    await asyncio.wait_for(asyncio.gather(poll, download), 5)
    [fetched] = [r for r in fake_segmind.requests if r.kind == "download"]
    refused = next(r for r in fake_segmind.requests if r.status == 429)
    assert fetched.time - refused.time >= 0.35  # the download waited out the pause


async def test_a_429_that_names_no_time_backs_off_on_its_own(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.rate_limit = (1, 0.3)
    fake_segmind.rate_limit_headers = "none"
    client = make_client()
    await submit(client, fake_segmind)
    await asyncio.wait_for(submit(client, fake_segmind), 5)
    assert fake_segmind.count_status(429) >= 1
    assert len(fake_segmind.jobs) == 2  # both jobs exist once, none was lost or doubled


async def test_result_bytes_decide_not_the_declared_type(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.script_jobs(
        JobScript(audio=b"PK\x03\x04" + bytes(64), audio_content_type="audio/mpeg")
    )
    client = make_client()
    handle = await submit(client, fake_segmind)
    with pytest.raises(NotAudioError, match="504b0304"):
        await client.download(fake_segmind.jobs[handle.request_id].audio_url)


async def test_a_submit_never_queues_behind_polls(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    # Submits have their own connections: 16 slow status checks fill every poll slot,
    # and a new job's submit still goes out at once.
    client = make_client()
    fake_segmind.script_jobs(*(JobScript(poll_delay=1.0) for _ in range(16)))
    handles = [await submit(client, fake_segmind) for _ in range(16)]
    polls = [asyncio.create_task(client.poll(h)) for h in handles]
    await fake_segmind.wait_for(lambda: fake_segmind.count("poll") >= 8)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await submit(client, fake_segmind)
    assert loop.time() - t0 < 0.5  # not behind a poll slot (each takes 1 s)
    await asyncio.gather(*polls)


# -- Segmind storage (upload-asset) ------------------------------------------------------


def test_upload_url_is_segminds_storage_host_or_the_workflows_origin() -> None:
    from bot.segmind.client import upload_url_for

    assert upload_url_for(DEFAULT_WORKFLOW_URL) == "https://workflows-api.segmind.com/upload-asset"
    assert upload_url_for("http://127.0.0.1:8080/workflows/x") == (
        "http://127.0.0.1:8080/upload-asset"
    )


@pytest.mark.parametrize("form", ["urls", "file_urls"])
async def test_upload_sends_a_data_url_and_accepts_both_answer_forms(
    fake_segmind: FakeSegmind, make_client: MakeClient, form: str
) -> None:
    fake_segmind.upload_form = form
    clip = fake_mp3(b"kept")
    url = await make_client().upload(clip, "audio/mpeg")
    (sent,) = [r for r in fake_segmind.requests if r.kind == "upload"]
    assert sent.headers["x-api-key"] == FAKE_API_KEY
    assert isinstance(sent.json, dict)
    assert sent.json["data_urls"][0].startswith("data:audio/mpeg;base64,")
    assert fake_segmind.assets[url.rsplit("/", 1)[-1]] == (clip, "audio/mpeg")


async def test_upload_errors_are_typed(fake_segmind: FakeSegmind, make_client: MakeClient) -> None:
    fake_segmind.inject("upload", Injection(status=200, body={"urls": []}))
    with pytest.raises(MalformedResponseError, match="no file URL"):
        await make_client().upload(b"x", "audio/mpeg")
    fake_segmind.inject("upload", Injection(status=200, body={"urls": ["https://evil.example/a"]}))
    with pytest.raises(MalformedResponseError, match="outside Segmind"):
        await make_client().upload(b"x", "audio/mpeg")
    fake_segmind.inject("upload", Injection(status=406))
    with pytest.raises(InsufficientCreditsError):
        await make_client().upload(b"x", "audio/mpeg")


async def test_upload_spends_the_request_budget(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    from bot.segmind.budget import RequestBudget

    budget = RequestBudget(0)
    await make_client(budget=budget).upload(b"x", "audio/mpeg")
    assert budget.granted_total == 1
