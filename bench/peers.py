"""The peers: blocking clients hosted the way a naive bot would host them, one thread per
job (`run_in_executor` on a pool as large as the batch) next to a live event loop.

- `requests`: Segmind's docs sample, verbatim in spirit: plain `requests.post`/`requests.get`
  (a new session and TCP connection per call), `time.sleep` between polls.
- `segmind-sdk`: the official SDK's `pixelflows.run(poll=True)` on one shared client (one
  httpx pool, 100 connections by default), then the audio fetched with a shared
  `httpx.Client`. The SDK takes the float interval unchanged (its hint says int;
  `time.sleep` accepts floats). Its loop polls at once after the submit and sleeps between
  polls; ours and the `requests` peer sleep before every poll.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

from .target import JobFn, Target

JOB_TIMEOUT = 300.0
REQUEST_TIMEOUT = 30.0
AUDIO_EXTENSIONS = (".mp3", ".wav", ".ogg", ".flac", ".m4a")


class PeerJobError(Exception):
    """The job ended without audio (FAILED, TIMEOUT, or no audio URL in its output)."""


def find_audio_url(output: object) -> str:
    """The first http(s) URL in `output` that names an audio file. Segmind's `output` is a
    JSON string of node outputs whose names are undocumented, so search it."""
    stack = [output]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            text = node.strip()
            if text.startswith(("{", "[")):
                with suppress(ValueError):
                    stack.append(json.loads(text))
            elif text.startswith(("http://", "https://")) and text.endswith(AUDIO_EXTENSIONS):
                return text
        elif isinstance(node, dict):
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    raise PeerJobError("no audio URL in the output")


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Tag an exception with the step it came from, so a failure report says where."""
    try:
        yield
    except Exception as exc:
        exc.add_note(name)
        raise


@asynccontextmanager
async def _threaded(blocking: Callable[[int], bytes], jobs: int) -> AsyncIterator[JobFn]:
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="peer-job")

    async def job(index: int) -> bytes:
        return await loop.run_in_executor(pool, blocking, index)

    try:
        yield job
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@asynccontextmanager
async def requests_peer(
    target: Target, jobs: int, interval: float, job_timeout: float = JOB_TIMEOUT
) -> AsyncIterator[JobFn]:
    import requests

    headers = {"x-api-key": target.api_key}

    def blocking(index: int) -> bytes:
        with phase("submit"):
            response = requests.post(
                target.workflow_url,
                json=target.payload(index),
                headers=headers,
                timeout=REQUEST_TIMEOUT,
            )
            response.raise_for_status()
            poll_url = response.json()["poll_url"]
        deadline = time.monotonic() + job_timeout
        while True:
            time.sleep(interval)
            with phase("poll"):
                response = requests.get(poll_url, headers=headers, timeout=REQUEST_TIMEOUT)
                response.raise_for_status()
                body: dict[str, Any] = response.json()
            if body["status"] == "COMPLETED":
                break
            if body["status"] == "FAILED":
                raise PeerJobError(str(body.get("error", "FAILED")))
            if time.monotonic() > deadline:
                raise PeerJobError("TIMEOUT")
        url = find_audio_url(body["output"])
        with phase("download"):
            audio = requests.get(url, timeout=REQUEST_TIMEOUT)
            audio.raise_for_status()
            content: bytes = audio.content
        return content

    async with _threaded(blocking, jobs) as job:
        yield job


@asynccontextmanager
async def sdk_peer(
    target: Target, jobs: int, interval: float, job_timeout: float = JOB_TIMEOUT
) -> AsyncIterator[JobFn]:
    import httpx
    import segmind

    # base_url only matters for relative paths; keep even those on loopback.
    origin = target.workflow_url.split("/workflows/", 1)[0]
    client = segmind.SegmindClient(api_key=target.api_key, base_url=f"{origin}/v1")
    downloads = httpx.Client(timeout=REQUEST_TIMEOUT)

    def blocking(index: int) -> bytes:
        with phase("sdk run"):
            result = client.pixelflows.run(
                workflow_url=target.workflow_url,
                data=target.payload(index),
                poll=True,
                poll_interval=interval,
                max_wait_time=job_timeout,
            )
        if result.get("status") != "COMPLETED":
            raise PeerJobError(f"{result.get('status')}: {result.get('error_message', '')}")
        url = find_audio_url(result.get("output"))
        with phase("download"):
            audio = downloads.get(url)
            audio.raise_for_status()
            return audio.content

    try:
        async with _threaded(blocking, jobs) as job:
            yield job
    finally:
        # Idle pools by now (the threads have finished): closing them does not block.
        downloads.close()  # noqa: ASYNC212
        client._client.close()
