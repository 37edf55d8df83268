"""A scriptable loopback fake of Segmind's "ElevenLabs Voice Clone + Speak" workflow API.

Why a fake: the bot and the benchmark must exercise the real async-workflow protocol (submit,
poll, download the result, errors, rate limits, dropped connections) without internet access.
The fake is an aiohttp server bound to 127.0.0.1 that follows the protocol facts in
PLATFORM.md ("Segmind", "More shapes"): the same paths, auth headers, answer shapes and error
bodies. The shapes themselves are built in `tests/fakes/segmind_shapes.py`.

Request pipeline, for every request:
1. it is recorded in `FakeSegmind.requests` on arrival (`count` is right from then on);
2. a queued `Injection` for its kind replaces all further handling (no auth, no rate limit);
3. downloads (`/files/...`), stored assets (`/assets/...`, from `/upload-asset`) and
   fake-only voice samples (`/samples/...`) are public: no auth,
   no rate limit (the real results live on another host);
4. otherwise: auth (401), then the rolling rate limit (429), then the endpoint; with a rate
   limit set, these answers carry `x-rate-limit-remaining`;
5. once the answer is decided its status goes into the record and `count_status` (0 and not
   counted if dropped), then it is written: in one piece by default, or in `pieces` writes
   with `piece_pause` seconds between them (not for samples or HEAD).

Knobs (defaults = the original behaviour; all may be changed while serving):
- `FakeSegmind(pieces=N, piece_pause=S, transfer="length"|"chunked")`, also per `Injection`:
  bodies arrive in several reads, framed by Content-Length or chunked encoding.
- `submit_message`: the submit answer also carries `message`. `accept_bearer=False`: only
  `x-api-key` authenticates, `Authorization: Bearer` gets 401.
- `rate_limit=(n, window_s)`: at most n admitted API requests per rolling window; refused
  ones do not count; a new value keeps the admissions still in the window. A 429 carries,
  per `rate_limit_headers`: `Retry-After` (whole seconds), `x-rate-limit-reset-at-utc` (the
  wall-clock time the next request will be admitted, in `reset_at_format` "iso"
  `2026-12-01T21:35:00.124Z` or "epoch" `1796160900.124`), both or neither.
  `count_status(429)` counts the refusals.
- `JobScript`: `statuses` (one per poll), or `duration`/`queued_for`/`fails` (by time since
  creation); `failure_form` ("error" string or "error_message" object), `output_form`
  ("nested" or "pixelflow"), `processing_output_empty`. `FakeSegmind.duration_for(text)`
  times the jobs that have no script of their own. Jobs record `created_at`, `finished_at`
  and `seen_finished_at` in `clock` time.
- `clock` (monotonic; None: the event loop's time) and `wall_clock` (Unix; `time.time`) may
  be replaced so a test steps time by hand: job timing, the window and records follow
  `clock`; delays and piece pauses still sleep in real time.

Dropped connections (`Injection(drop=True)`): the fake closes the transport without writing
anything. aiohttp 3.14's client then raises `aiohttp.ServerDisconnectedError` ("Server
disconnected"), but it first retries idempotent methods (GET: polls, downloads, credits) once
on a fresh connection by itself. So a GET drop is seen by the client only if the retry is
dropped too: use `times=2` for one visible failure (`times=1` is absorbed by the retry, and
shows up as two recorded requests). A POST (submit) is never retried: `times=1` is enough.
`close()` during a delay drops the request; during a piece pause it cuts the body short.

Run it in another process (the benchmark does):
`python -m tests.fakes.segmind --port 0 [--steps N | --duration-base S --duration-per-char S]
[--rate-limit N/SECONDS] [--reset-at-only] [--pieces N --piece-pause S] [--transfer chunked]`
prints `READY http://127.0.0.1:PORT` once listening and serves until SIGTERM/SIGINT.
`--duration-*` time every job at base + per_char * len(text) seconds; `--reset-at-only`
answers 429 with `x-rate-limit-reset-at-utc` (ISO) and no Retry-After.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import ipaddress
import json
import math
import signal
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import aiohttp
from aiohttp import web
from yarl import URL

# Re-exported ("as"): the bot's tests import the script types and helpers from here.
from tests.fakes.segmind_shapes import DEFAULT as DEFAULT
from tests.fakes.segmind_shapes import (
    RATE_LIMIT_HEADERS,
    RESET_AT_FORMATS,
    TRANSFERS,
    RateLimitHeaders,
    ResetAtFormat,
    Transfer,
    failure_fields,
    fake_png,
    nested_output,
    pixelflow_output,
    reset_at_header,
    split_pieces,
)
from tests.fakes.segmind_shapes import Injection as Injection
from tests.fakes.segmind_shapes import JobScript as JobScript
from tests.fakes.segmind_shapes import fake_mp3 as fake_mp3
from tests.fakes.segmind_shapes import standard_error as standard_error

FAKE_API_KEY = "sk-fake-segmind-key-0123456789"
WORKFLOW_PATH = "/workflows/69b7a526e90fc09c1a796167-v13"
CREDITS_PATH = "/v1/get-user-credits"
POLL_PREFIX = "/workflows/request/"
FILES_PREFIX = "/files/"
SAMPLES_PREFIX = "/samples/"
UPLOAD_PATH = "/upload-asset"
ASSETS_PREFIX = "/assets/"
UPLOAD_FORMS: Final = ("urls", "file_urls")  # the docs' answer and older SDK examples'

KINDS: Final = ("submit", "poll", "download", "credits", "sample", "upload", "asset", "other")
INJECTABLE_KINDS: Final = ("submit", "poll", "download", "credits", "upload")
FINISHED: Final = ("COMPLETED", "FAILED")

SAMPLE_FETCH_TIMEOUT = 10.0
SAMPLE_FETCH_ERROR = "could not fetch voice sample"

_T = TypeVar("_T")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it. `status` is 0 while unanswered or if dropped."""

    kind: str
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    json: object | None
    time: float
    status: int


@dataclass
class FakeJob:
    """Server-side state of one submitted job. Times are `FakeSegmind.clock`'s (by default
    the event loop's monotonic time)."""

    request_id: str
    voice_samples: str
    text: str
    language: str
    script: JobScript
    created_at: float = 0.0
    duration: float | None = None
    """Timed jobs: seconds from creation to the end (`script.duration` or `duration_for`)."""
    polls: int = 0
    """Polls answered so far (including those answered QUEUED while the sample was fetched)."""
    sample_bytes: bytes | None = None
    sample_error: str | None = None
    sample_done: bool = False
    """True once the voice sample fetch has ended, successfully or not."""
    sample_done_at: float | None = None
    steps: int = 0
    """How many entries of `script.statuses` polls have consumed."""
    status: str = "QUEUED"
    """The status last answered for this job."""
    audio_url: str = ""
    finished_at: float | None = None
    """When the job became finished. Timed: set when the sample fetch ends, to
    max(created_at + duration, that moment), or that moment if it failed (so it may lie
    ahead). By polls: the first poll that answered COMPLETED/FAILED."""
    seen_finished_at: float | None = None
    """The first poll that answered COMPLETED/FAILED: when the client could know."""


@dataclass
class _Answer:
    """An answer decided but not yet written: `_handle` records it, then `_send` writes it.
    `pieces`, `piece_pause`, `transfer`: None uses the fake's."""

    status: int
    body: bytes
    headers: dict[str, str]
    pieces: int | None = None
    piece_pause: float | None = None
    transfer: Transfer | None = None


@dataclass
class _Pending:
    injection: Injection
    remaining: int


class _Dropped(Exception):
    """Internal: answer nothing and close the connection."""


class _Knob(Generic[_T]):
    """An attribute checked when set: tests change knobs while serving, and a bad value must
    fail where it is set, not later as a 500 inside the server."""

    def __init__(self, check: Callable[[_T], bool], expected: str) -> None:
        self._check = check
        self._expected = expected
        self._name = self._slot = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name, self._slot = name, f"_knob_{name}"

    def __get__(self, obj: object, owner: type | None = None) -> _T:
        value: _T = getattr(obj, self._slot)
        return value

    def __set__(self, obj: object, value: _T) -> None:
        if not self._check(value):
            raise ValueError(f"{self._name} must be {self._expected}, not {value!r}")
        setattr(obj, self._slot, value)


def _is_loopback_url(url: str) -> bool:
    """Only loopback URLs may be fetched: the fake must never send traffic off the machine."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return False
    host = parsed.host
    if parsed.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


def _json_answer(status: int, payload: object, headers: Mapping[str, str] | None = None) -> _Answer:
    # Content-Type exactly "application/json": web.json_response would add "; charset=utf-8".
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return _Answer(status, json.dumps(payload).encode(), all_headers)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> _Answer:
    return _json_answer(status, {"error": message}, headers)


def _valid_rate_limit(value: tuple[int, float] | None) -> bool:
    return value is None or (value[0] >= 1 and value[1] > 0)


class FakeSegmind:
    """The fake server. Use as `async with FakeSegmind() as fake:`; see the module docstring.

    Per-request work is O(1) (dict lookups, deque ends, Counters), so a benchmark can run
    thousands of concurrent jobs against it.
    """

    rate_limit = _Knob[tuple[int, float] | None](_valid_rate_limit, "None or (n >= 1, s > 0)")
    pieces = _Knob[int](lambda n: n >= 1, ">= 1")
    piece_pause = _Knob[float](lambda s: s >= 0, ">= 0")
    transfer = _Knob[Transfer](lambda t: t in TRANSFERS, f"one of {TRANSFERS}")
    rate_limit_headers = _Knob[RateLimitHeaders](
        lambda h: h in RATE_LIMIT_HEADERS, f"one of {RATE_LIMIT_HEADERS}"
    )
    reset_at_format = _Knob[ResetAtFormat](
        lambda f: f in RESET_AT_FORMATS, f"one of {RESET_AT_FORMATS}"
    )

    def __init__(
        self,
        *,
        api_key: str = FAKE_API_KEY,
        rate_limit: tuple[int, float] | None = None,
        port: int = 0,
        pieces: int = 1,
        piece_pause: float = 0.0,
        transfer: Transfer = "length",
        rate_limit_headers: RateLimitHeaders = "retry-after",
        reset_at_format: ResetAtFormat = "iso",
        accept_bearer: bool = True,
        submit_message: str | None = None,
        duration_for: Callable[[str], float] | None = None,
    ) -> None:
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.port = port
        self.pieces = pieces
        self.piece_pause = piece_pause
        self.transfer = transfer
        self.rate_limit_headers = rate_limit_headers
        self.reset_at_format = reset_at_format
        self.accept_bearer = accept_bearer
        self.submit_message = submit_message
        self.duration_for = duration_for
        """Times the jobs that use `default_script` (none of their own): seconds for a text."""
        self.clock: Callable[[], float] | None = None
        """The fake's monotonic time (None: the event loop's) for job timing, the rate-limit
        window and records; a test may step it by hand. Delays always sleep in real time."""
        self.wall_clock: Callable[[], float] = time.time
        """Unix time for `x-rate-limit-reset-at-utc`; replaceable to pin the header in tests."""
        self.default_script = JobScript()
        self.credits: float = 12.5
        self.free_credits: float = 0.0
        self.requests: list[RecordedRequest] = []
        self.jobs: dict[str, FakeJob] = {}
        # Fake-only public files under /samples/ (name -> (bytes, content type)): tests and
        # the benchmark get a loopback voice sample URL without running another server.
        self.samples: dict[str, tuple[bytes, str]] = {
            "voice.mp3": (fake_mp3(b"voice-sample"), "audio/mpeg")
        }
        self.upload_form: str = "urls"
        """Which key the upload answer uses: "urls" (docs) or "file_urls" (older SDK)."""
        # Segmind storage (upload-asset): name -> (bytes, content type); an expired name
        # answers `expired` (its status) as a dead storage URL would.
        self.assets: dict[str, tuple[bytes, str]] = {}
        self.expired: dict[str, int] = {}
        self._counts: Counter[str] = Counter()
        self._answered: Counter[tuple[str, int]] = Counter()
        self._scripted: deque[JobScript] = deque()
        self._injections: dict[str, deque[_Pending]] = {k: deque() for k in INJECTABLE_KINDS}
        self._files: dict[str, FakeJob] = {}
        self._window: deque[float] = deque()
        self._changed_event = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Future[None] | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._base_url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind 127.0.0.1 (a free port unless `port` was given) and start serving."""
        if self._runner is not None:
            raise RuntimeError("already started")
        self._closing = asyncio.get_running_loop().create_future()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Short shutdown: pending delays are cut short by close(), nothing should linger.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        # A large backlog: the benchmark opens ~1,000 connections at once.
        site = web.TCPSite(runner, "127.0.0.1", self.port, backlog=2048)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._base_url = f"http://127.0.0.1:{self.port}"
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200),
            timeout=aiohttp.ClientTimeout(total=SAMPLE_FETCH_TIMEOUT),
        )

    async def close(self) -> None:
        """Stop serving: cut pending delays short (those requests are dropped), cancel the
        sample fetches, close the client session. Idempotent."""
        if self._closing is not None and not self._closing.done():
            self._closing.set_result(None)
        await self._cancel_tasks()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._cancel_tasks()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._changed()

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> FakeSegmind:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- public helpers ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("FakeSegmind is not started")
        return self._base_url

    @property
    def workflow_url(self) -> str:
        return self.base_url + WORKFLOW_PATH

    @property
    def credits_url(self) -> str:
        return self.base_url + CREDITS_PATH

    @property
    def sample_url(self) -> str:
        """A loopback voice sample URL the fake can fetch (served from `samples`)."""
        return f"{self.base_url}{SAMPLES_PREFIX}voice.mp3"

    def expire_asset(self, url: str, status: int = 403) -> None:
        """Make a stored asset's URL stop working (403 like a lapsed signed URL, or 404)."""
        self.expired[url.rsplit("/", 1)[-1]] = status

    def script_jobs(self, *scripts: JobScript) -> None:
        """The next jobs created use these scripts, in order; then `default_script`."""
        self._scripted.extend(scripts)

    def inject(self, kind: str, injection: Injection) -> None:
        """Queue `injection` for the next requests of `kind` (FIFO after earlier ones)."""
        if kind not in self._injections:
            raise ValueError(f"kind must be one of {INJECTABLE_KINDS}, not {kind!r}")
        if injection.create_job and kind != "submit":
            raise ValueError("create_job only makes sense for submit")
        self._injections[kind].append(_Pending(injection, injection.times))

    def count(self, kind: str) -> int:
        """How many requests of `kind` arrived (including injected, refused, dropped ones)."""
        return self._counts[kind]

    def api_times(self) -> list[float]:
        """When each API request (submits and polls: what a plan's rate counts) arrived."""
        return [r.time for r in self.requests if r.kind in ("submit", "poll")]

    def most_in_window(self, window: float) -> int:
        """The most API requests that arrived within any `window` seconds."""
        ordered = sorted(self.api_times())
        start = best = 0
        for end, t in enumerate(ordered):
            while t - ordered[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def count_status(self, status: int, kind: str | None = None) -> int:
        """How many answers had `status` (of `kind`, or of any kind); dropped ones are not
        answers. Counted when the answer is decided, before its body is written."""
        if kind is not None:
            return self._answered[kind, status]
        return sum(self._answered[k, status] for k in KINDS)

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 (part of the API others code against)
    ) -> None:
        """Wait until `predicate()` is true, re-checking after every state change (request
        arrived or answered, job created, sample fetched): no polling sleeps.

        Implemented with an Event that is swapped on each change rather than a Condition,
        so notifying is synchronous and can happen in `finally` blocks and callbacks.
        """
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed_event.wait()
        except TimeoutError:
            raise TimeoutError(f"condition still false after {timeout} s") from None

    # -- internals ---------------------------------------------------------------------------

    def _changed(self) -> None:
        event, self._changed_event = self._changed_event, asyncio.Event()
        event.set()

    def _now(self) -> float:
        return asyncio.get_running_loop().time() if self.clock is None else self.clock()

    async def _sleep(self, delay: float) -> None:
        """Sleep, unless the fake closes meanwhile: then drop the request."""
        if delay <= 0:
            return
        assert self._closing is not None
        try:
            async with asyncio.timeout(delay):
                await asyncio.shield(self._closing)
        except TimeoutError:
            return
        raise _Dropped

    @staticmethod
    def _classify(method: str, path: str) -> str:
        if method == "POST" and path.startswith("/workflows/") and not path.startswith(POLL_PREFIX):
            return "submit"
        if method == "GET" and path.startswith(POLL_PREFIX):
            return "poll"
        if method == "POST" and path == UPLOAD_PATH:
            return "upload"
        if method in ("GET", "HEAD"):
            if path.startswith(FILES_PREFIX):
                return "download"
            if path.startswith(SAMPLES_PREFIX):
                return "sample"
            if path.startswith(ASSETS_PREFIX):
                return "asset"
            if path == CREDITS_PATH:
                return "credits"
        return "other"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        kind = self._classify(request.method, request.path)
        parsed: object | None = None
        if body:
            with contextlib.suppress(ValueError):
                parsed = json.loads(body)
        record = RecordedRequest(
            kind=kind,
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.headers,
            body=body,
            json=parsed,
            time=self._now(),
            status=0,
        )
        index = len(self.requests)
        self.requests.append(record)
        self._counts[kind] += 1
        self._changed()
        try:
            answer = await self._answer(request, kind, parsed)
            self.requests[index] = dataclasses.replace(record, status=answer.status)
            self._answered[kind, answer.status] += 1
        except _Dropped:
            self._drop(request)
            # Nothing reaches the client: the transport is closed before this is written.
            return web.Response(status=499)
        finally:
            self._changed()
        return await self._send(request, answer)

    @staticmethod
    def _drop(request: web.Request) -> None:
        if request.transport is not None:
            request.transport.close()

    async def _send(self, request: web.Request, answer: _Answer) -> web.StreamResponse:
        """Write `answer`: one `web.Response` by default, else a StreamResponse in pieces.

        aiohttp sends the headers with the first piece and TCP_NODELAY is on, so each piece
        leaves at once and the pause is what the client waits between reads."""
        pieces = self.pieces if answer.pieces is None else answer.pieces
        transfer = answer.transfer or self.transfer
        if request.method == "HEAD" or (pieces == 1 and transfer == "length"):
            return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
        pause = self.piece_pause if answer.piece_pause is None else answer.piece_pause
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        if transfer == "chunked":
            response.enable_chunked_encoding()
        else:
            response.content_length = len(answer.body)
        try:
            await response.prepare(request)
            for number, piece in enumerate(split_pieces(answer.body, pieces)):
                if number:
                    await self._sleep(pause)
                await response.write(piece)
            await response.write_eof()
        except _Dropped:
            self._drop(request)  # close() during a pause: the body stays cut short
        except ConnectionError:
            pass  # the client left mid-body (its timeout, say): nobody is reading
        return response

    async def _answer(self, request: web.Request, kind: str, parsed: object | None) -> _Answer:
        queue = self._injections.get(kind)
        if queue:
            pending = queue[0]
            pending.remaining -= 1
            if pending.remaining == 0:
                queue.popleft()
            return await self._inject(pending.injection, parsed)
        if kind == "download":
            return await self._download(request)
        if kind == "sample":
            return self._sample(request)
        if kind == "asset":
            return self._asset(request)
        if kind != "other" and not self._authorized(request):
            answer = _error(401, "Invalid API key")
        else:
            answer = self._rate_limited() or await self._endpoint(request, kind, parsed)
        if self.rate_limit is not None:
            answer.headers["x-rate-limit-remaining"] = str(self._remaining(self.rate_limit))
        return answer

    async def _endpoint(self, request: web.Request, kind: str, parsed: object | None) -> _Answer:
        if kind == "submit":
            return self._submit(request, parsed)
        if kind == "poll":
            return await self._poll(request)
        if kind == "credits":
            return _json_answer(200, {"credits": self.credits, "free-credits": self.free_credits})
        if kind == "upload":
            return self._upload(parsed)
        known = (FILES_PREFIX, SAMPLES_PREFIX, "/workflows/", CREDITS_PATH)
        if request.path.startswith(known):
            return _error(405, "Method not allowed")
        return _error(404, "Not found")

    async def _inject(self, injection: Injection, parsed: object | None) -> _Answer:
        if injection.create_job:
            fields = self._submit_fields(parsed)
            if not isinstance(fields, str):
                self._create_job(*fields)
        await self._sleep(injection.delay)
        if injection.drop:
            raise _Dropped
        body = injection.body
        if body is None:
            body = {"error": standard_error(injection.status)}
        if isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = json.dumps(dict(body)).encode()
        headers = {"Content-Type": injection.content_type, **injection.headers}
        return _Answer(
            injection.status,
            raw,
            headers,
            pieces=injection.pieces,
            piece_pause=injection.piece_pause,
            transfer=injection.transfer,
        )

    def _authorized(self, request: web.Request) -> bool:
        if request.headers.get("x-api-key") == self.api_key:
            return True
        bearer = request.headers.get("Authorization") == f"Bearer {self.api_key}"
        return bearer and self.accept_bearer

    def _remaining(self, rate_limit: tuple[int, float]) -> int:
        """Requests the window admits now, after dropping the admissions that aged out."""
        limit, window = rate_limit
        cutoff = self._now() - window
        while self._window and self._window[0] <= cutoff:
            self._window.popleft()
        return max(0, limit - len(self._window))

    def _rate_limited(self) -> _Answer | None:
        """Admit at most n requests per rolling window; refused ones do not count."""
        if self.rate_limit is None:
            return None
        if self._remaining(self.rate_limit) > 0:
            self._window.append(self._now())
            return None
        limit, window = self.rate_limit
        # The next admission comes when enough of the oldest admissions age out (more than
        # one if the limit was lowered at runtime); near the deque's left end, so O(1).
        wait = self._window[len(self._window) - limit] + window - self._now()
        headers: dict[str, str] = {}
        if self.rate_limit_headers in ("retry-after", "both"):
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        if self.rate_limit_headers in ("reset-at", "both"):
            when = self.wall_clock() + wait
            headers["x-rate-limit-reset-at-utc"] = reset_at_header(when, self.reset_at_format)
        return _error(429, "Rate limit exceeded", headers)

    @staticmethod
    def _submit_fields(parsed: object | None) -> tuple[str, str, str] | str:
        """The (voice_samples, text, language) of a submit body, or the 400 message."""
        if not isinstance(parsed, dict):
            return "Request body must be a JSON object"
        values: list[str] = []
        for name in ("voice_samples", "text", "Language_ISO"):
            value = parsed.get(name)
            if value is None:
                return f"Missing required field: {name}"
            if not isinstance(value, str):
                return f"Field {name} must be a string"
            values.append(value)
        return values[0], values[1], values[2]

    def _submit(self, request: web.Request, parsed: object | None) -> _Answer:
        if request.path != WORKFLOW_PATH:
            return _error(404, "Workflow not found")
        fields = self._submit_fields(parsed)
        if isinstance(fields, str):
            return _error(400, fields)
        job = self._create_job(*fields)
        payload = {
            "request_id": job.request_id,
            "poll_url": f"{self.base_url}{POLL_PREFIX}{job.request_id}",
            "status": "QUEUED",
        }
        if self.submit_message is not None:
            payload["message"] = self.submit_message
        return _json_answer(200, payload)

    def _create_job(self, voice_samples: str, text: str, language: str) -> FakeJob:
        if self._scripted:
            script = self._scripted.popleft()
            duration = script.duration
        else:
            script = self.default_script
            duration = script.duration if self.duration_for is None else self.duration_for(text)
        request_id = uuid.uuid4().hex
        job = FakeJob(
            request_id=request_id,
            voice_samples=voice_samples,
            text=text,
            language=language,
            script=script,
            created_at=self._now(),
            duration=duration,
            audio_url=script.audio_url or f"{self.base_url}{FILES_PREFIX}{request_id}.mp3",
        )
        self.jobs[request_id] = job
        self._files[f"{request_id}.mp3"] = job
        if script.output_form == "pixelflow":
            self._files[f"{request_id}-preview.png"] = job
        closing = self._closing is None or self._closing.done()
        if _is_loopback_url(voice_samples) and not closing:
            task = asyncio.create_task(self._fetch_sample(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            # Never connect off the machine (nor once closing): as if the fetch failed.
            job.sample_error = SAMPLE_FETCH_ERROR
            self._sample_ended(job)
        self._changed()
        return job

    async def _fetch_sample(self, job: FakeJob) -> None:
        """Fetch the voice sample like Segmind does, in the background (10 s timeout)."""
        assert self._session is not None
        try:
            async with self._session.get(job.voice_samples) as response:
                if response.status == 200:
                    job.sample_bytes = await response.read()
                else:
                    job.sample_error = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            job.sample_error = f"{SAMPLE_FETCH_ERROR}: {type(exc).__name__}"
        finally:
            self._sample_ended(job)

    def _sample_ended(self, job: FakeJob) -> None:
        now = self._now()
        job.sample_done = True
        job.sample_done_at = now
        if job.duration is not None:
            # A timed job cannot end before its sample is in; a failed fetch ends it at once.
            end = job.created_at + job.duration
            job.finished_at = now if job.sample_error is not None else max(now, end)
        self._changed()

    async def _poll(self, request: web.Request) -> _Answer:
        request_id = request.path[len(POLL_PREFIX) :]
        job = self.jobs.get(request_id)
        if job is None:
            return _error(404, "Request not found")
        script = job.script
        await self._sleep(script.poll_delay)
        job.polls += 1
        now = self._now()
        reason = script.failure_reason
        if not job.sample_done:
            status = "QUEUED"
        elif job.sample_error is not None:
            status, reason = "FAILED", f"Failed to download voice sample ({job.sample_error})"
        elif job.duration is not None:
            assert job.finished_at is not None  # set when the sample fetch ended
            if now >= job.finished_at:
                status = "FAILED" if script.fails else "COMPLETED"
            else:
                status = "QUEUED" if now - job.created_at < script.queued_for else "PROCESSING"
        else:
            statuses = script.statuses
            status = statuses[min(job.steps, len(statuses) - 1)]
            job.steps += 1
        payload: dict[str, object] = {"status": status}
        if status == "COMPLETED":
            payload["output"] = self._output(job)
        elif status == "FAILED":
            payload.update(failure_fields(script.failure_form, reason, job.request_id))
        elif status in ("QUEUED", "PROCESSING") and script.processing_output_empty:
            payload["output"] = ""
        if status in FINISHED and job.seen_finished_at is None:
            job.seen_finished_at = now
            if job.finished_at is None:  # by polls: finished when a poll first says so
                job.finished_at = now
        job.status = status
        return _json_answer(200, payload)

    def _output(self, job: FakeJob) -> object:
        output = job.script.output
        if output is not DEFAULT:
            return output
        if job.script.output_form == "pixelflow":
            image_url = f"{self.base_url}{FILES_PREFIX}{job.request_id}-preview.png"
            return pixelflow_output(job.request_id, job.audio_url, image_url)
        return nested_output(job.request_id, job.audio_url)

    async def _download(self, request: web.Request) -> _Answer:
        name = request.path[len(FILES_PREFIX) :]
        job = self._files.get(name)
        if job is None:
            return _error(404, "Not found")
        await self._sleep(job.script.download_delay)
        if name.endswith(".png"):
            return _Answer(200, fake_png(), {"Content-Type": "image/png"})
        audio = job.script.audio
        if audio is None:
            audio = fake_mp3(job.request_id.encode())
        return _Answer(200, audio, {"Content-Type": job.script.audio_content_type})

    def _sample(self, request: web.Request) -> _Answer:
        # Never in pieces: only the fake itself reads samples, and jobs should not slow down.
        sample = self.samples.get(request.path[len(SAMPLES_PREFIX) :])
        if sample is None:
            return dataclasses.replace(_error(404, "Not found"), pieces=1, transfer="length")
        return _Answer(200, sample[0], {"Content-Type": sample[1]}, pieces=1, transfer="length")

    def _upload(self, parsed: object | None) -> _Answer:
        """Segmind storage: each `data:<mime>;base64,...` becomes a file at a URL."""
        data_urls = parsed.get("data_urls") if isinstance(parsed, dict) else None
        if not isinstance(data_urls, list) or not data_urls:
            return _error(400, "data_urls is required")
        urls: list[str] = []
        for item in data_urls:
            head, comma, encoded = str(item).partition(",")
            if not (comma and head.startswith("data:") and head.endswith(";base64")):
                return _error(400, "data_urls must hold base64 data URLs")
            try:
                data = base64.b64decode(encoded, validate=True)
            except ValueError:
                return _error(400, "invalid base64")
            name = f"{uuid.uuid4().hex}.bin"
            self.assets[name] = (
                data,
                head[len("data:") : -len(";base64")] or "application/octet-stream",
            )
            urls.append(f"{self.base_url}{ASSETS_PREFIX}{name}")
        return _json_answer(200, {self.upload_form: urls})

    def _asset(self, request: web.Request) -> _Answer:
        name = request.path[len(ASSETS_PREFIX) :]
        asset = self.assets.get(name)
        if name in self.expired:
            asset = None
            status = self.expired[name]
        else:
            status = 404
        if asset is None:
            message = "Access Denied" if status == 403 else "Not found"
            return dataclasses.replace(_error(status, message), pieces=1, transfer="length")
        return _Answer(200, asset[0], {"Content-Type": asset[1]}, pieces=1, transfer="length")


# -- command line ----------------------------------------------------------------------------


def _parse_rate_limit(text: str) -> tuple[int, float]:
    count, _, window = text.partition("/")
    try:
        return int(count), float(window)
    except ValueError:
        raise argparse.ArgumentTypeError("expected N/SECONDS, e.g. 50/60") from None


def _text_duration(base: float, per_char: float) -> Callable[[str], float]:
    def duration(text: str) -> float:
        return base + per_char * len(text)

    return duration


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeSegmind(
        api_key=args.api_key,
        rate_limit=args.rate_limit,
        port=args.port,
        pieces=args.pieces,
        piece_pause=args.piece_pause,
        transfer=args.transfer,
        rate_limit_headers="reset-at" if args.reset_at_only else "retry-after",
    )
    if args.steps is not None:
        fake.default_script = JobScript(
            statuses=("PROCESSING",) * (args.steps - 1) + ("COMPLETED",)
        )
    if args.duration_base is not None or args.duration_per_char is not None:
        fake.duration_for = _text_duration(args.duration_base or 0.0, args.duration_per_char or 0.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with fake:
        print(f"READY {fake.base_url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="polls per job: N-1 times PROCESSING, then COMPLETED",
    )
    parser.add_argument("--api-key", default=FAKE_API_KEY)
    parser.add_argument("--rate-limit", type=_parse_rate_limit, default=None, metavar="N/SECONDS")
    parser.add_argument(
        "--reset-at-only",
        action="store_true",
        help="429s carry x-rate-limit-reset-at-utc (ISO) and no Retry-After",
    )
    parser.add_argument("--pieces", type=int, default=1, help="write each body in N pieces")
    parser.add_argument(
        "--piece-pause", type=float, default=0.0, metavar="S", help="seconds between pieces"
    )
    parser.add_argument("--transfer", choices=TRANSFERS, default="length")
    parser.add_argument(
        "--duration-base",
        type=float,
        default=None,
        metavar="S",
        help="time jobs: BASE + PER_CHAR * len(text) seconds from submit to COMPLETED",
    )
    parser.add_argument("--duration-per-char", type=float, default=None, metavar="S")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be >= 1")
    timed = args.duration_base is not None or args.duration_per_char is not None
    if timed and args.steps is not None:
        parser.error("--steps counts polls, --duration-* time jobs: choose one")
    if min(args.duration_base or 0, args.duration_per_char or 0, args.piece_pause) < 0:
        parser.error("durations and --piece-pause must be >= 0")
    if args.pieces < 1:
        parser.error("--pieces must be >= 1")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
