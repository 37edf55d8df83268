"""The Segmind workflow client: submit, poll, download, credits. Async, on one session.

Every request to the API passes through the shared `RequestBudget`; every failure leaves
as a typed `SegmindError` whose text is safe to show (see `errors.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp

from ..audio import AudioFile, identify_audio
from ..config import HostPort, Settings
from .budget import Priority, RequestBudget
from .errors import (
    MalformedResponseError,
    NotAudioError,
    OutputRejectedError,
    OutputTooLargeError,
    SegmindConnectionError,
    SegmindError,
    UnsafeOutputURLError,
    error_for_status,
    sanitize_detail,
)
from .models import JobHandle, PollResult, parse_poll, parse_submit
from .retry import RetryPolicy, get_retryable, parse_retry_after, submit_retryable

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ANSWER_BYTES = 1024 * 1024  # a status answer is tiny; anything bigger is broken
# Requests on the wire at once. Hundreds of jobs polling together would otherwise answer
# in bursts that stall the event loop (and every other user's command) for tens of ms;
# 8 round trips in parallel is still far above what any Segmind plan's rate allows.
MAX_PARALLEL_CALLS = 8
MAX_PARALLEL_SUBMITS = 4  # their own slots: a new job never queues behind hundreds of polls
MAX_PARALLEL_DOWNLOADS = 4
MAX_REDIRECTS = 3
DEFAULT_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)
DEFAULT_DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=120, connect=10, sock_read=30)
# Where Segmind keeps results (its own domains and its storage buckets) when the operator
# has not named more hosts with SEGMIND_OUTPUT_HOSTS.
SEGMIND_DOMAINS = ("segmind.com",)
SEGMIND_BUCKET_PREFIX = "segmind"


@dataclass(frozen=True, slots=True)
class Credits:
    credits: float
    free_credits: float


def _is_segmind_host(host: str) -> bool:
    if any(host == d or host.endswith("." + d) for d in SEGMIND_DOMAINS):
        return True
    # Virtual-hosted S3 buckets: segmind-….s3[.<region>].amazonaws.com
    bucket, _, rest = host.partition(".")
    return (
        bucket.startswith(SEGMIND_BUCKET_PREFIX)
        and rest.startswith("s3")
        and rest.endswith(".amazonaws.com")
    )


class SegmindClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str,
        workflow_url: str,
        budget: RequestBudget | None = None,
        retry: RetryPolicy | None = None,
        output_hosts: Sequence[HostPort] = (),
        max_output_bytes: int = 25 * 1024 * 1024,
        request_timeout: aiohttp.ClientTimeout = DEFAULT_REQUEST_TIMEOUT,
        download_timeout: aiohttp.ClientTimeout = DEFAULT_DOWNLOAD_TIMEOUT,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._session = session
        self._api_key = api_key
        self.workflow_url = workflow_url
        self.budget = budget or RequestBudget(0)
        self.retry = retry or RetryPolicy()
        self.max_output_bytes = max_output_bytes
        self._request_timeout = request_timeout
        self._download_timeout = download_timeout
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._call_slots = asyncio.Semaphore(MAX_PARALLEL_CALLS)
        self._submit_slots = asyncio.Semaphore(MAX_PARALLEL_SUBMITS)
        self._download_slots = asyncio.Semaphore(MAX_PARALLEL_DOWNLOADS)
        self._headers = {"x-api-key": api_key, "Accept": "application/json"}
        api = urlsplit(workflow_url)
        self._api_origin = (api.scheme, (api.hostname or "").lower(), api.port)
        self.credits_url = f"{api.scheme}://{api.netloc}/v1/get-user-credits"
        # The API's own host (the operator chose it) plus the named output hosts.
        self._operator_hosts = (HostPort(self._api_origin[1], api.port), *output_hosts)

    @classmethod
    def from_settings(
        cls, session: aiohttp.ClientSession, settings: Settings, budget: RequestBudget
    ) -> SegmindClient:
        return cls(
            session,
            api_key=settings.segmind_api_key.get(),
            workflow_url=settings.segmind_workflow_url,
            budget=budget,
            output_hosts=settings.segmind_output_hosts,
            max_output_bytes=settings.segmind_max_output_bytes,
        )

    # -- API calls -------------------------------------------------------------------

    async def submit(self, sample_url: str, text: str, language: str) -> JobHandle:
        """Start one job. Re-sent only when no job can have been created."""
        payload = {"voice_samples": sample_url, "text": text, "Language_ISO": language}
        body = await self._with_retries(
            lambda: self._call("POST", self.workflow_url, Priority.SUBMIT, payload),
            submit_retryable,
            "submit",
        )
        handle = parse_submit(body)
        if not self._is_api_url(handle.poll_url):
            # Never send the key to a host we did not choose.
            raise MalformedResponseError(
                "the status URL points outside Segmind", request_id=handle.request_id
            )
        return handle

    async def poll(self, handle: JobHandle) -> PollResult:
        body = await self._with_retries(
            lambda: self._call("GET", handle.poll_url, Priority.POLL, None),
            get_retryable,
            "poll",
            request_id=handle.request_id,
        )
        try:
            return parse_poll(body)
        except SegmindError as exc:
            exc.request_id = handle.request_id
            raise

    async def credits(self) -> Credits:
        body = await self._with_retries(
            lambda: self._call("GET", self.credits_url, Priority.SUBMIT, None),
            get_retryable,
            "credits",
        )
        if not isinstance(body, dict):
            raise MalformedResponseError("credits answer is not a JSON object")
        try:
            return Credits(float(body.get("credits", 0)), float(body.get("free-credits", 0)))
        except (TypeError, ValueError):
            raise MalformedResponseError("credits answer holds no numbers") from None

    async def download(self, url: str, *, request_id: str | None = None) -> AudioFile:
        """Fetch the result's audio: allowed hosts only, capped, checked to be audio."""
        return await self._with_retries(
            lambda: self._download_once(url),
            get_retryable,
            "download",
            request_id=request_id,
        )

    # -- plumbing --------------------------------------------------------------------

    async def _with_retries(
        self,
        attempt_once: Callable[[], Awaitable[T]],
        retryable: Callable[[SegmindError], bool],
        what: str,
        *,
        request_id: str | None = None,
    ) -> T:
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await attempt_once()
            except SegmindError as exc:
                exc.request_id = exc.request_id or request_id
                if attempt >= self.retry.attempts or not retryable(exc):
                    raise
                wait = self.retry.delay(attempt, exc.retry_after, self._rng)
                if loop.time() - started + wait > self.retry.max_total:
                    raise
                log.warning(
                    "Segmind %s failed (%s), retry %d in %.1fs [request %s]",
                    what,
                    exc,
                    attempt,
                    wait,
                    exc.request_id or "-",
                )
                await self._sleep(wait)

    async def _call(
        self, method: str, url: str, priority: Priority, payload: dict[str, str] | None
    ) -> object:
        await self.budget.acquire(priority)
        try:
            async with (
                self._call_slots,
                self._session.request(
                    method,
                    url,
                    json=payload,
                    headers=self._headers,
                    timeout=self._request_timeout,
                    allow_redirects=False,
                ) as resp,
            ):
                raw = await resp.content.read(MAX_ANSWER_BYTES + 1)
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise SegmindConnectionError(self._describe(exc), request_sent=False) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SegmindConnectionError(self._describe(exc), request_sent=True) from None
        if len(raw) > MAX_ANSWER_BYTES:
            raise MalformedResponseError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        if status == 429 and retry_after:
            # Segmind's limit is per account: hold every job's requests, not just this one.
            self.budget.pause_for(retry_after)
        if not 200 <= status < 300:
            raise error_for_status(status, self._error_detail(raw), retry_after=retry_after)
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise MalformedResponseError(f"HTTP {status} answer is not JSON") from None

    async def _download_once(self, url: str) -> AudioFile:
        for _ in range(MAX_REDIRECTS + 1):
            self._check_output_url(url)
            try:
                async with (
                    self._download_slots,
                    self._session.get(
                        url, timeout=self._download_timeout, allow_redirects=False
                    ) as resp,
                ):
                    if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                        url = urljoin(url, resp.headers["Location"])
                        continue
                    if resp.status in (429, 500, 502, 503, 504):
                        raise error_for_status(
                            resp.status,
                            "while downloading the audio",
                            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                        )
                    if resp.status != 200:
                        raise OutputRejectedError(f"the audio download answered HTTP {resp.status}")
                    declared = resp.headers.get("Content-Type")
                    data = await self._read_capped(resp)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                raise SegmindConnectionError(self._describe(exc), request_sent=False) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise SegmindConnectionError(self._describe(exc)) from None
            kind = identify_audio(data, declared)
            if kind is None:
                raise NotAudioError(f"{len(data)} bytes that are not audio")
            return AudioFile(data, kind[0], kind[1], url)
        raise UnsafeOutputURLError("too many redirects")

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        cap = self.max_output_bytes
        if resp.content_length is not None and resp.content_length > cap:
            raise OutputTooLargeError(f"{resp.content_length} bytes, limit {cap}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > cap:
                raise OutputTooLargeError(f"more than {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _is_api_url(self, url: str) -> bool:
        parts = urlsplit(url)
        try:
            origin = (parts.scheme, (parts.hostname or "").lower(), parts.port)
        except ValueError:
            return False
        if parts.username or parts.password:
            return False
        if origin == self._api_origin:
            return True
        return parts.scheme == "https" and _is_segmind_host(origin[1])

    def _check_output_url(self, url: str) -> None:
        """Allow https on Segmind's hosts, and http(s) on hosts the operator named.

        This is what stops a hostile result from making the bot fetch an internal
        address: IP literals and unknown names are refused before any connection.
        """
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            port = parts.port
        except ValueError:
            raise UnsafeOutputURLError("the audio URL is not valid") from None
        if parts.scheme not in ("http", "https") or not host:
            raise UnsafeOutputURLError("the audio URL is not http(s)")
        if parts.username or parts.password:
            raise UnsafeOutputURLError("the audio URL carries credentials")
        if parts.scheme == "https" and _is_segmind_host(host):
            return
        for allowed in self._operator_hosts:
            if allowed.host == host and allowed.port in (None, port):
                return
        raise UnsafeOutputURLError(f"host {sanitize_detail(host)[:80]} is not allowed")

    def _error_detail(self, raw: bytes) -> str:
        text = raw[:4096].decode("utf-8", "replace")
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            return sanitize_detail(text, self._api_key)
        if isinstance(body, dict):
            for key in ("error", "message", "detail", "error_message"):
                if body.get(key):
                    return sanitize_detail(body[key], self._api_key)
        return sanitize_detail(text, self._api_key)

    def _describe(self, exc: BaseException) -> str:
        """A connection error's text without URLs' query strings or the key."""
        name = type(exc).__name__
        return sanitize_detail(f"{name}: {exc}" if str(exc) else name, self._api_key)[:200]
