"""The Segmind workflow client: submit, poll, download, credits. Async, on one session.

Every request to the API passes through the shared `RequestBudget`; every failure leaves
as a typed `SegmindError` whose text is safe to show (see `errors.py`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp

from ..audio import AudioFile, identify_audio
from ..config import HostPort, Settings
from .budget import Priority, Rank, RequestBudget
from .errors import (
    MalformedResponseError,
    NotAudioError,
    OutputRejectedError,
    OutputTooLargeError,
    RateLimitedError,
    SegmindConnectionError,
    SegmindError,
    UnsafeOutputURLError,
    error_for_status,
    sanitize_detail,
)
from .models import JobHandle, PollResult, parse_poll, parse_submit
from .retry import RetryPolicy, get_retryable, rate_limit_pause, submit_retryable

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
# Where Segmind keeps results (images.segmind.com and the like), besides the API's own
# origin and the hosts the operator names with SEGMIND_OUTPUT_HOSTS.
SEGMIND_DOMAINS = ("segmind.com",)
POLL_PATH = "/workflows/request/"
# Segmind storage: an upload goes to its own host, not the workflow API's. Elsewhere (a
# fake, a proxy) the upload is on the workflow URL's own origin.
SEGMIND_API_HOST = "api.segmind.com"
UPLOAD_HOST = "workflows-api.segmind.com"
UPLOAD_PATH = "/upload-asset"


def upload_url_for(workflow_url: str) -> str:
    """Where `upload-asset` lives for this workflow URL."""
    api = urlsplit(workflow_url)
    host = UPLOAD_HOST if (api.hostname or "").lower() == SEGMIND_API_HOST else api.netloc
    return f"{api.scheme}://{host}{UPLOAD_PATH}"


@dataclass(frozen=True, slots=True)
class Credits:
    credits: float
    free_credits: float


def _is_segmind_host(host: str) -> bool:
    return any(host == d or host.endswith("." + d) for d in SEGMIND_DOMAINS)


def _ignore(kind: str, error: SegmindError | None) -> None:
    pass


class SegmindClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str,
        workflow_url: str,
        upload_url: str | None = None,
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
        self._output_hosts = tuple(output_hosts)
        self.upload_url = upload_url or upload_url_for(workflow_url)
        # Told of every attempt's end (kind, error or None): the bot's metrics.
        self.on_request: Callable[[str, SegmindError | None], None] = _ignore

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
        if not self._is_poll_url(handle.poll_url):
            # Never send the key to a host we did not choose.
            raise MalformedResponseError(
                "the status URL points outside Segmind", request_id=handle.request_id
            )
        return handle

    def trusts_poll_url(self, handle: JobHandle) -> bool:
        """Whether `handle` may be polled with the key (checked again on resume)."""
        return self._is_poll_url(handle.poll_url)

    async def poll(self, handle: JobHandle, rank: Rank | None = None) -> PollResult:
        """One status check. `rank` tells the budget how likely the job is done."""
        if not self._is_poll_url(handle.poll_url):
            raise MalformedResponseError(
                "the status URL points outside Segmind", request_id=handle.request_id
            )
        body = await self._with_retries(
            lambda: self._call("GET", handle.poll_url, Priority.POLL, None, rank),
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

    async def upload(self, data: bytes, content_type: str) -> str:
        """Put a voice sample in Segmind storage; the lasting URL Segmind answers. Costs
        no job: a retry after a lost answer at worst leaves one unused file there."""
        encoded = base64.b64encode(data).decode("ascii")
        payload = {"data_urls": [f"data:{content_type};base64,{encoded}"]}
        body = await self._with_retries(
            lambda: self._call("POST", self.upload_url, Priority.SUBMIT, payload),
            get_retryable,
            "upload",
        )
        urls = body.get("urls") or body.get("file_urls") if isinstance(body, dict) else None
        if not isinstance(urls, list) or not urls or not isinstance(urls[0], str):
            raise MalformedResponseError("the upload answer names no file URL")
        url = urls[0]
        try:
            self._check_output_url(url)  # only a Segmind (or named) host is handed on
        except UnsafeOutputURLError:
            raise MalformedResponseError("the upload answer names a URL outside Segmind") from None
        return url

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
        """Retry transient failures with backoff. A 429 is not a failure of ours: it pauses
        the whole budget until Segmind's reset, however long, and costs no attempt; the
        caller's deadline (the job's SEGMIND_TIMEOUT) bounds the wait."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        rate_limited = 0
        while True:
            attempt += 1
            try:
                result = await attempt_once()
                self.on_request(what, None)
                return result
            except RateLimitedError as exc:
                self.on_request(what, exc)
                exc.request_id = exc.request_id or request_id
                rate_limited += 1
                pause = exc.retry_after
                if pause is None:  # no Retry-After, no reset time: back off on our own
                    pause = self.retry.delay(rate_limited, None, self._rng)
                self.budget.pause_for(pause)
                attempt -= 1
                log.warning(
                    "Segmind %s rate limited (429): every request waits %.1fs [request %s]",
                    what,
                    pause,
                    exc.request_id or "-",
                )
                await self.budget.wait_unpaused()
            except SegmindError as exc:
                self.on_request(what, exc)
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
        self,
        method: str,
        url: str,
        priority: Priority,
        payload: Mapping[str, object] | None,
        rank: Rank | None = None,
    ) -> object:
        if not (self._is_api_origin(url) or self._is_upload_url(url)):
            # The key goes to the API's own origin only, whatever an answer named.
            raise UnsafeOutputURLError("a request URL points outside the Segmind API")
        await self.budget.acquire(priority, rank)
        slots = self._submit_slots if priority is Priority.SUBMIT else self._call_slots
        try:
            async with (
                slots,
                self._session.request(
                    method,
                    url,
                    json=payload,
                    headers=self._headers,
                    timeout=self._request_timeout,
                    allow_redirects=False,
                ) as resp,
            ):
                status = resp.status
                pause = rate_limit_pause(resp.headers)
                raw = await self._read_whole(resp, MAX_ANSWER_BYTES, self._request_timeout)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise SegmindConnectionError(self._describe(exc), request_sent=False) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SegmindConnectionError(self._describe(exc), request_sent=True) from None
        except OutputTooLargeError:
            raise MalformedResponseError(f"answer larger than {MAX_ANSWER_BYTES} bytes") from None
        if not 200 <= status < 300:
            raise error_for_status(status, self._error_detail(raw), retry_after=pause)
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise MalformedResponseError(f"HTTP {status} answer is not JSON") from None

    async def _download_once(self, url: str) -> AudioFile:
        for _ in range(MAX_REDIRECTS + 1):
            self._check_output_url(url)
            await self.budget.wait_unpaused()  # a 429 holds every request, downloads too
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
                            retry_after=rate_limit_pause(resp.headers),
                        )
                    if resp.status != 200:
                        raise OutputRejectedError(f"the audio download answered HTTP {resp.status}")
                    declared = resp.headers.get("Content-Type")
                    data = await self._read_whole(
                        resp, self.max_output_bytes, self._download_timeout
                    )
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                raise SegmindConnectionError(self._describe(exc), request_sent=False) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise SegmindConnectionError(self._describe(exc)) from None
            kind = identify_audio(data)
            if kind is None:
                # The member is told plainly; the operator's log says what came back.
                raise NotAudioError(
                    f"{len(data)} bytes declared {sanitize_detail(declared or 'untyped')[:60]}"
                    f" starting {data[:8].hex() or 'with nothing'}"
                )
            return AudioFile(data, kind[0], kind[1], url)
        raise UnsafeOutputURLError("too many redirects")

    @staticmethod
    async def _read_whole(
        resp: aiohttp.ClientResponse, cap: int, limits: aiohttp.ClientTimeout
    ) -> bytes:
        """The whole body, to its end (a body may arrive in many reads), at most `cap`
        bytes, within the request's total timeout."""
        if resp.content_length is not None and resp.content_length > cap:
            raise OutputTooLargeError(f"{resp.content_length} bytes, limit {cap}")
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(limits.total):
            async for chunk in resp.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > cap:
                    raise OutputTooLargeError(f"more than {cap} bytes")
                chunks.append(chunk)
        return b"".join(chunks)

    def _is_api_origin(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            origin = (parts.scheme, (parts.hostname or "").lower(), parts.port)
        except ValueError:
            return False
        return origin == self._api_origin and not (parts.username or parts.password)

    def _is_upload_url(self, url: str) -> bool:
        return url == self.upload_url  # exactly the one configured, nothing near it

    def _is_poll_url(self, url: str) -> bool:
        """Segmind's status URLs live on the API's own origin under /workflows/request/."""
        return self._is_api_origin(url) and urlsplit(url).path.startswith(POLL_PATH)

    def _check_output_url(self, url: str) -> None:
        """Allow https on Segmind's own hosts, the API's exact origin, and the hosts the
        operator named (SEGMIND_OUTPUT_HOSTS). Exact hosts only: anyone can register a
        look-alike name, so nothing is matched by prefix.

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
        if parts.scheme == "https" and port in (None, 443) and _is_segmind_host(host):
            return
        if (parts.scheme, host, port) == self._api_origin:
            return
        for allowed in self._output_hosts:
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
            for key in ("error", "error_message", "message", "detail"):
                if body.get(key):
                    return sanitize_detail(body[key], self._api_key)
        return sanitize_detail(text, self._api_key)

    def _describe(self, exc: BaseException) -> str:
        """A connection error's text without URLs' query strings or the key."""
        name = type(exc).__name__
        return sanitize_detail(f"{name}: {exc}" if str(exc) else name, self._api_key)[:200]
