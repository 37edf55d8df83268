"""A scriptable loopback fake of Segmind's "ElevenLabs Voice Clone + Speak" workflow API.

Why a fake: the bot and the benchmark must exercise the real async-workflow protocol (submit,
poll, download the result, errors, rate limits, dropped connections) without internet access.
The fake is an aiohttp server bound to 127.0.0.1 that follows the protocol facts in
PLATFORM.md ("Segmind"): the same paths, auth headers, answer shapes and error bodies.

Request pipeline, for every request:
1. it is recorded in `FakeSegmind.requests` on arrival (`count` is right from then on), and
   its record gets the answered status just before the answer is written (0 if dropped);
2. a queued `Injection` for its kind replaces all further handling (no auth, no rate limit);
3. downloads (`/files/...`) and fake-only voice samples (`/samples/...`) are public: no auth,
   no rate limit;
4. otherwise: auth (401), then the rolling rate limit (429 + Retry-After), then the endpoint.

Dropped connections (`Injection(drop=True)`): the fake closes the transport without writing
anything. aiohttp 3.14's client then raises `aiohttp.ServerDisconnectedError` ("Server
disconnected"), but it first retries idempotent methods (GET: polls, downloads, credits) once
on a fresh connection by itself. So a GET drop is seen by the client only if the retry is
dropped too: use `times=2` for one visible failure (`times=1` is absorbed by the retry, and
shows up as two recorded requests). A POST (submit) is never retried: `times=1` is enough.

Run it in another process (the benchmark does):
`python -m tests.fakes.segmind --port 0 [--steps N] [--rate-limit N/SECONDS]` prints
`READY http://127.0.0.1:PORT` once listening and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import enum
import ipaddress
import json
import math
import signal
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final

import aiohttp
from aiohttp import web
from yarl import URL

FAKE_API_KEY = "sk-fake-segmind-key-0123456789"
WORKFLOW_PATH = "/workflows/69b7a526e90fc09c1a796167-v13"
CREDITS_PATH = "/v1/get-user-credits"
POLL_PREFIX = "/workflows/request/"
FILES_PREFIX = "/files/"
SAMPLES_PREFIX = "/samples/"

KINDS: Final = ("submit", "poll", "download", "credits", "sample", "other")
INJECTABLE_KINDS: Final = ("submit", "poll", "download", "credits")

SAMPLE_FETCH_TIMEOUT = 10.0
SAMPLE_FETCH_ERROR = "could not fetch voice sample"

_STANDARD_ERRORS: Final[Mapping[int, str]] = {
    400: "Bad request",
    401: "Invalid API key",
    403: "Forbidden",
    404: "Not found",
    406: "Insufficient credits",
    429: "Rate limit exceeded",
    500: "Internal server error",
    502: "Bad gateway",
    504: "Gateway timeout",
}


class _Default(enum.Enum):
    DEFAULT = "DEFAULT"


DEFAULT: Final = _Default.DEFAULT
"""Sentinel for `JobScript.output`: build the usual output holding the audio URL."""


def standard_error(status: int) -> str:
    """The `error` message the fake uses for `status` (Segmind's wording is undocumented)."""
    if status in _STANDARD_ERRORS:
        return _STANDARD_ERRORS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def fake_mp3(tag: bytes = b"") -> bytes:
    """Small bytes that pass for an MP3 file: an ID3v2.4 tag whose body is `tag`, then three
    MPEG-1 Layer III frames (32 kbit/s, 44.1 kHz, 104 bytes each, silent payload).

    Distinct tags give distinct bytes, so a test can tell which job's audio it received.
    """
    size = len(tag)
    if size >= 1 << 28:
        raise ValueError("tag too large for an ID3 header")
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    frame = b"\xff\xfb\x10\xc4" + bytes(100)
    return b"ID3\x04\x00\x00" + syncsafe + tag + frame * 3


@dataclass
class JobScript:
    """How one job behaves.

    The n-th poll that sees the voice sample fetched answers `statuses[min(n, len - 1)]`, so
    the last status repeats: `("QUEUED", "PROCESSING")` never completes. "COMPLETED" answers
    `output`, "FAILED" answers `failure_reason`, any other string is answered verbatim.
    """

    statuses: Sequence[str] = ("QUEUED", "PROCESSING", "COMPLETED")
    failure_reason: str = "Voice cloning failed: the sample is too short"
    output: object = DEFAULT
    """The raw `output` field of COMPLETED: a str is sent as is, any other JSON value as a
    JSON value (not a string). DEFAULT: a JSON string of nested node outputs with the URL."""
    audio: bytes | None = None
    """None: `fake_mp3(request_id.encode())`, distinct per job."""
    audio_content_type: str = "audio/mpeg"
    audio_url: str | None = None
    """None: `{base_url}/files/{request_id}.mp3`, served by the fake."""
    download_delay: float = 0.0
    poll_delay: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.statuses, str) or not self.statuses:
            raise ValueError("statuses must be a non-empty sequence of status strings")


@dataclass
class Injection:
    """A scripted answer that replaces the normal handling of the next `times` requests of a
    kind. `body`: dict -> JSON, str/bytes -> as is, None -> `{"error": <standard message>}`.
    `drop` closes the connection without an answer (see the module docstring for what the
    aiohttp client sees). `create_job` (submit only) creates the job before answering, for
    ambiguous failures where the client cannot know the job exists."""

    status: int = 500
    body: bytes | str | Mapping[str, object] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    times: int = 1
    delay: float = 0.0
    drop: bool = False
    create_job: bool = False

    def __post_init__(self) -> None:
        if self.times < 1:
            raise ValueError("times must be >= 1")


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
    """Server-side state of one submitted job."""

    request_id: str
    voice_samples: str
    text: str
    language: str
    script: JobScript
    polls: int = 0
    """Polls answered so far (including those answered QUEUED while the sample was fetched)."""
    sample_bytes: bytes | None = None
    sample_error: str | None = None
    sample_done: bool = False
    """True once the voice sample fetch has ended, successfully or not."""
    steps: int = 0
    """How many entries of `script.statuses` polls have consumed."""
    status: str = "QUEUED"
    """The status last answered for this job."""
    audio_url: str = ""


@dataclass
class _Pending:
    injection: Injection
    remaining: int


class _Dropped(Exception):
    """Internal: answer nothing and close the connection."""


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


def _json_response(
    status: int, payload: object, headers: Mapping[str, str] | None = None
) -> web.Response:
    # Content-Type exactly "application/json": web.json_response would add "; charset=utf-8".
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(payload).encode(), headers=all_headers)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json_response(status, {"error": message}, headers)


class FakeSegmind:
    """The fake server. Use as `async with FakeSegmind() as fake:`; see the module docstring.

    Per-request work is O(1) (dict lookups, deque ends, a Counter), so a benchmark can run
    thousands of concurrent jobs against it.
    """

    def __init__(
        self,
        *,
        api_key: str = FAKE_API_KEY,
        rate_limit: tuple[int, float] | None = None,
        port: int = 0,
    ) -> None:
        if rate_limit is not None and (rate_limit[0] < 1 or rate_limit[1] <= 0):
            raise ValueError("rate_limit must be (n >= 1, window_s > 0)")
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.port = port
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
        self._counts: Counter[str] = Counter()
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
        if method in ("GET", "HEAD"):
            if path.startswith(FILES_PREFIX):
                return "download"
            if path.startswith(SAMPLES_PREFIX):
                return "sample"
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
            time=asyncio.get_running_loop().time(),
            status=0,
        )
        index = len(self.requests)
        self.requests.append(record)
        self._counts[kind] += 1
        self._changed()
        status = 0
        try:
            response = await self._answer(request, kind, parsed)
            status = response.status
            return response
        except _Dropped:
            if request.transport is not None:
                request.transport.close()
            # Nothing reaches the client: the transport is closed before this is written.
            return web.Response(status=499)
        finally:
            if status:
                self.requests[index] = dataclasses.replace(record, status=status)
            self._changed()

    async def _answer(self, request: web.Request, kind: str, parsed: object | None) -> web.Response:
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
        if kind != "other" and not self._authorized(request):
            return _error(401, "Invalid API key")
        limited = self._rate_limited()
        if limited is not None:
            return limited
        if kind == "submit":
            return self._submit(request, parsed)
        if kind == "poll":
            return await self._poll(request)
        if kind == "credits":
            return _json_response(200, {"credits": self.credits, "free-credits": self.free_credits})
        known = (FILES_PREFIX, SAMPLES_PREFIX, "/workflows/", CREDITS_PATH)
        if request.path.startswith(known):
            return _error(405, "Method not allowed")
        return _error(404, "Not found")

    async def _inject(self, injection: Injection, parsed: object | None) -> web.Response:
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
        return web.Response(status=injection.status, body=raw, headers=headers)

    def _authorized(self, request: web.Request) -> bool:
        if request.headers.get("x-api-key") == self.api_key:
            return True
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def _rate_limited(self) -> web.Response | None:
        """Admit at most n requests per rolling window; refused ones do not count."""
        if self.rate_limit is None:
            return None
        limit, window = self.rate_limit
        now = asyncio.get_running_loop().time()
        while self._window and self._window[0] <= now - window:
            self._window.popleft()
        if len(self._window) >= limit:
            retry_after = max(1, math.ceil(self._window[0] + window - now))
            return _error(429, "Rate limit exceeded", {"Retry-After": str(retry_after)})
        self._window.append(now)
        return None

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

    def _submit(self, request: web.Request, parsed: object | None) -> web.Response:
        if request.path != WORKFLOW_PATH:
            return _error(404, "Workflow not found")
        fields = self._submit_fields(parsed)
        if isinstance(fields, str):
            return _error(400, fields)
        job = self._create_job(*fields)
        return _json_response(
            200,
            {
                "request_id": job.request_id,
                "poll_url": f"{self.base_url}{POLL_PREFIX}{job.request_id}",
                "status": "QUEUED",
            },
        )

    def _create_job(self, voice_samples: str, text: str, language: str) -> FakeJob:
        script = self._scripted.popleft() if self._scripted else self.default_script
        request_id = uuid.uuid4().hex
        job = FakeJob(
            request_id=request_id,
            voice_samples=voice_samples,
            text=text,
            language=language,
            script=script,
            audio_url=script.audio_url or f"{self.base_url}{FILES_PREFIX}{request_id}.mp3",
        )
        self.jobs[request_id] = job
        self._files[f"{request_id}.mp3"] = job
        closing = self._closing is None or self._closing.done()
        if _is_loopback_url(voice_samples) and not closing:
            task = asyncio.create_task(self._fetch_sample(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            # Never connect off the machine (nor once closing): as if the fetch failed.
            job.sample_error = SAMPLE_FETCH_ERROR
            job.sample_done = True
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
            job.sample_done = True
            self._changed()

    async def _poll(self, request: web.Request) -> web.Response:
        request_id = request.path[len(POLL_PREFIX) :]
        job = self.jobs.get(request_id)
        if job is None:
            return _error(404, "Request not found")
        await self._sleep(job.script.poll_delay)
        job.polls += 1
        payload: dict[str, object]
        if not job.sample_done:
            payload = {"status": "QUEUED"}
        elif job.sample_error is not None:
            payload = {
                "status": "FAILED",
                "error": f"Failed to download voice sample ({job.sample_error})",
            }
        else:
            statuses = job.script.statuses
            status = statuses[min(job.steps, len(statuses) - 1)]
            job.steps += 1
            payload = {"status": status}
            if status == "COMPLETED":
                payload["output"] = self._output(job)
            elif status == "FAILED":
                payload["error"] = job.script.failure_reason
        job.status = str(payload["status"])
        return _json_response(200, payload)

    @staticmethod
    def _output(job: FakeJob) -> object:
        output = job.script.output
        if output is not DEFAULT:
            return output
        return json.dumps(
            {
                "Voice Clone": {"voice_id": f"voice-{job.request_id[:12]}"},
                "Text To Speech": {"output": {"audio_url": job.audio_url}},
            }
        )

    async def _download(self, request: web.Request) -> web.Response:
        job = self._files.get(request.path[len(FILES_PREFIX) :])
        if job is None:
            return _error(404, "Not found")
        await self._sleep(job.script.download_delay)
        audio = job.script.audio
        if audio is None:
            audio = fake_mp3(job.request_id.encode())
        return web.Response(body=audio, headers={"Content-Type": job.script.audio_content_type})

    def _sample(self, request: web.Request) -> web.Response:
        sample = self.samples.get(request.path[len(SAMPLES_PREFIX) :])
        if sample is None:
            return _error(404, "Not found")
        return web.Response(body=sample[0], headers={"Content-Type": sample[1]})


# -- command line ----------------------------------------------------------------------------


def _parse_rate_limit(text: str) -> tuple[int, float]:
    count, _, window = text.partition("/")
    try:
        return int(count), float(window)
    except ValueError:
        raise argparse.ArgumentTypeError("expected N/SECONDS, e.g. 50/60") from None


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeSegmind(api_key=args.api_key, rate_limit=args.rate_limit, port=args.port)
    if args.steps is not None:
        fake.default_script = JobScript(
            statuses=("PROCESSING",) * (args.steps - 1) + ("COMPLETED",)
        )
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
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be >= 1")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
