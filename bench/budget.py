"""`make bench ARGS="--only budget"`: how well each client spends a plan's requests.

The fake Segmind enforces the plan's rate the way the real one does (a 429 past it) and
times each job by its text (10–30 s, growing with length, ±10 %). Ours (the bot's client,
budget and runner, with history from a warm-up batch, as a running bot has), the seed's
loop (Segmind's docs sample: a submit, then a status check every 7 s) and the official
SDK (`pixelflows.run`, a check every 2 s) each get the same account, one after the other.
Time runs `SCALE` times faster than real (every duration, interval and the rate window
divided by it); figures are reported in real seconds and minutes.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from bot.jobs import JobRequest, JobRunner
from bot.segmind.budget import RequestBudget
from bot.segmind.client import SegmindClient
from bot.segmind.retry import RetryPolicy
from tests.fakes.segmind import FAKE_API_KEY, FakeSegmind

from . import cache_repeats, docs
from .core_report import floors_table
from .noise import OtherLoad
from .peers import requests_peer, sdk_peer
from .section import Floor, Options, SectionReport
from .target import JobFn, Target

NAME = "budget"
TITLE = "Budget: Segmind requests under a plan's rate limit"
SCALE = 30.0
RPMS = (5, 50)
QUEUES = (2, 10, 100)
CAP_MINUTES = 60.0  # real minutes a run may last (a full Free-plan queue needs ~41)
WARMUP_JOBS = 40
MAX_CONCURRENT = 10  # SEGMIND_MAX_CONCURRENT's default
OUR_POLL_S = 2.0  # SEGMIND_POLL_INTERVAL for ours: the SDK's 2 s (the default is 7)
SEED_POLL_S = 7.0
SDK_POLL_S = 2.0
IMPLS = ("ours", "seed loop (7 s)", "sdk (2 s)")


def text_for(index: int, rng: random.Random) -> str:
    """Job texts of 20–1,000 characters, distinct so every job is its own."""
    length = rng.randrange(20, 1000)
    head = f"job {index} "
    return (head + "lorem ipsum dolor sit amet " * 40)[:length]


def real_duration(text: str) -> float:
    """Seconds at Segmind, real time: 10 s for a short text up to 30 s for 1,000 chars."""
    jitter = random.Random(text).uniform(0.9, 1.1)
    return (10.0 + 20.0 * min(len(text), 1000) / 1000) * jitter


@dataclass(frozen=True)
class _Target(Target):
    texts: tuple[str, ...] = ()

    def payload(self, index: int) -> dict[str, str]:
        return {"voice_samples": self.sample_url, "text": self.texts[index], "Language_ISO": "en"}


@dataclass
class Run:
    impl: str
    rpm: int
    jobs: int
    delivered: int = 0
    requests: int = 0  # to the API: submits and status checks, refused ones included
    rate_limited: int = 0  # 429s the fake answered
    wall_min: float = 0.0  # real minutes from the first submit to the last delivery
    delays: list[float] = field(default_factory=list)  # real s: delivered - finished
    ratios: list[float] = field(default_factory=list)  # delay / the job's duration
    capped: bool = False

    @property
    def requests_per_job(self) -> float:
        return self.requests / self.delivered if self.delivered else float("nan")

    @property
    def per_minute(self) -> float:
        return self.delivered / self.wall_min if self.wall_min else 0.0

    @property
    def share_of_limit(self) -> float:
        return self.per_minute / (self.rpm / 2)

    def delay(self, q: float) -> float:
        if not self.delays:
            return float("nan")
        ordered = sorted(self.delays)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")


def request_id_of(audio: bytes) -> str:
    """The fake's audio is an ID3 tag holding the job's request id (see fake_mp3)."""
    size = int.from_bytes(audio[6:10], "big")  # syncsafe, but ids are far below 128 bytes
    return audio[10 : 10 + size].decode()


@asynccontextmanager
async def ours(target: _Target, fake: FakeSegmind, rpm: int) -> AsyncIterator[JobFn]:
    retry = RetryPolicy(base_delay=0.5 / SCALE, max_delay=20 / SCALE, max_total=45 / SCALE)
    async with aiohttp.ClientSession() as session:

        def runner(budget: RequestBudget) -> JobRunner:
            client = SegmindClient(
                session,
                api_key=target.api_key,
                workflow_url=target.workflow_url,
                budget=budget,
                retry=retry,
            )
            return JobRunner(
                client,
                poll_interval=OUR_POLL_S / SCALE,
                timeout=600 / SCALE,
                max_concurrent=MAX_CONCURRENT,
            )

        # History, as a bot that has run before has it: a warm-up batch on a roomy budget
        # (with the account's limit lifted meanwhile, so it leaves the window empty).
        limit, fake.rate_limit = fake.rate_limit, None
        warm = runner(RequestBudget(0))
        rng = random.Random(99)
        await asyncio.gather(
            *(
                warm.run(JobRequest(target.sample_url, text_for(1000 + i, rng), "en"))
                for i in range(WARMUP_JOBS)
            )
        )
        fake.rate_limit = limit
        measured = runner(RequestBudget(rpm, window=60 / SCALE))
        measured.durations = warm.durations

        async def job(index: int) -> bytes:
            result = await measured.run(
                JobRequest(target.sample_url, target.texts[index], "en"), owner=index
            )
            return result.audio.data

        try:
            yield job
        finally:
            measured.client.budget.close()


def peer(
    make: Callable[..., AbstractAsyncContextManager[JobFn]], interval: float
) -> Callable[[_Target, FakeSegmind, int], AbstractAsyncContextManager[JobFn]]:
    def start(target: _Target, fake: FakeSegmind, rpm: int) -> AbstractAsyncContextManager[JobFn]:
        return make(target, len(target.texts), interval / SCALE, job_timeout=600 / SCALE)

    return start


STARTERS = {
    "ours": ours,
    "seed loop (7 s)": peer(requests_peer, SEED_POLL_S),
    "sdk (2 s)": peer(sdk_peer, SDK_POLL_S),
}


async def measure(impl: str, rpm: int, jobs: int) -> Run:
    rng = random.Random(rpm * 1000 + jobs)
    texts = tuple(text_for(i, rng) for i in range(jobs))
    run = Run(impl, rpm, jobs)
    async with FakeSegmind(
        rate_limit=(rpm, 60 / SCALE), duration_for=lambda text: real_duration(text) / SCALE
    ) as fake:
        target = _Target(fake.workflow_url, fake.sample_url, FAKE_API_KEY, texts)
        async with STARTERS[impl](target, fake, rpm) as job:
            fake.requests.clear()
            loop = asyncio.get_running_loop()
            started = loop.time()
            last = started
            rate_limited_before = fake.count_status(429)

            async def one(index: int) -> None:
                nonlocal last
                audio = await job(index)
                now = loop.time()
                last = max(last, now)
                seg = fake.jobs.get(request_id_of(audio))
                run.delivered += 1
                if seg is not None and seg.finished_at is not None and seg.duration:
                    delay = max(0.0, now - seg.finished_at)
                    run.delays.append(delay * SCALE)
                    run.ratios.append(delay / seg.duration)

            tasks = [asyncio.ensure_future(one(i)) for i in range(jobs)]
            _, pending = await asyncio.wait(tasks, timeout=CAP_MINUTES * 60 / SCALE)
            run.capped = bool(pending)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            end = loop.time() if pending else last
            run.wall_min = (end - started) * SCALE / 60
            run.requests = sum(1 for r in fake.requests if r.kind in ("submit", "poll"))
            run.rate_limited = fake.count_status(429) - rate_limited_before
    return run


def _row(r: Run) -> list[str]:
    if not r.delivered:
        return [r.impl, f"{r.rpm}", f"{r.jobs}", "0", "–", f"{r.rate_limited}", "–", "–", "0"]
    return [
        r.impl,
        f"{r.rpm}",
        f"{r.jobs}",
        f"{r.delivered}" + (" (cap)" if r.capped else ""),
        f"{r.requests_per_job:.2f}",
        f"{r.rate_limited}",
        f"{r.delay(0.5):.1f} / {r.delay(0.95):.1f}",
        f"{r.median_ratio * 100:.0f} %" if r.ratios else "–",
        f"{r.per_minute:.2f} ({r.share_of_limit * 100:.0f} %)",
    ]


HEADERS = [
    "client",
    "RPM",
    "jobs",
    "delivered",
    "requests / delivered job",
    "429s",
    "detection delay p50 / p95 (s)",
    "median delay / duration",
    "delivered / min (of RPM ÷ 2)",
]


def check_floors(runs: list[Run]) -> list[Floor]:
    mine = [r for r in runs if r.impl == "ours"]
    floors = [
        Floor("ours: 429s received, all runs", 0, sum(r.rate_limited for r in mine), "", "<=")
    ]
    short = [r for r in mine if r.rpm == 5 or r.jobs == max(QUEUES)]
    if short:
        worst = max(r.requests_per_job for r in short)
        floors.append(
            Floor("ours: requests per delivered job, budget-bound runs", 2.5, worst, "req", "<=")
        )
    full = [r for r in mine if r.rpm == 5 and r.jobs == max(QUEUES)]
    if full:
        floors.append(
            Floor(
                "ours: RPM 5, full queue: share of RPM ÷ 2",
                90,
                full[0].share_of_limit * 100,
                "%",
                ">=",
            )
        )
    ten = [r for r in mine if r.rpm == 50 and r.jobs == 10]
    if ten:
        floors.append(
            Floor(
                "ours: RPM 50, 10 jobs: median delay / duration",
                20,
                ten[0].median_ratio * 100,
                "%",
                "<=",
            )
        )
    return floors


def run(options: Options) -> SectionReport:
    when = time.strftime("%Y-%m-%d")
    impls = IMPLS if options.peers else ("ours",)
    runs: list[Run] = []
    crashed: list[str] = []
    others = OtherLoad()
    for rpm in RPMS:
        for jobs in QUEUES:
            for impl in impls:
                try:
                    result = asyncio.run(measure(impl, rpm, jobs))
                except Exception as exc:  # a crash is a finding, reported, not raised
                    crashed.append(f"{impl} at RPM {rpm} × {jobs}: {type(exc).__name__}: {exc}")
                    continue
                runs.append(result)
                print("  " + " | ".join(_row(result)), flush=True)
    repeats: list[cache_repeats.RepeatRun] = []
    for cache_on in (True, False):
        try:
            repeats.append(asyncio.run(cache_repeats.measure(cache_on)))
        except Exception as exc:  # a crash is a finding, reported, not raised
            crashed.append(f"result cache {cache_on}: {type(exc).__name__}: {exc}")
            continue
        print("  " + " | ".join(cache_repeats.row(repeats[-1])), flush=True)
    load = others.share()
    table = docs.table(HEADERS, [_row(r) for r in runs])
    if repeats:
        rows = [cache_repeats.row(r) for r in repeats]
        table += "\n\n" + docs.table(cache_repeats.HEADERS, rows)
    floors = check_floors(runs) + cache_repeats.floors(repeats)
    floor_text = floors_table(floors)
    notes = (
        f"Time runs {SCALE:g}× faster than real; figures are in real seconds and minutes. "
        f"Job durations 10–30 s by text length (20–1,000 characters, ±10 %); "
        f"{MAX_CONCURRENT} jobs at Segmind at once for ours, with SEGMIND_POLL_INTERVAL="
        f"{OUR_POLL_S:g} (the SDK's interval; the default is 7: see the README); a run stops after "
        f'{CAP_MINUTES:g} real minutes ("cap"). Ours learned this workflow\'s durations from '
        f"a warm-up of {WARMUP_JOBS} jobs first (a bot with no history polls every "
        f"{OUR_POLL_S:g} s until it has some). Detection delay: from the moment the job "
        "finished at the fake Segmind to the moment the client had the audio. The peers "
        "treat a 429 as a failure, as the docs sample and the SDK do: a job lost that way "
        "may still have been billed. " + cache_repeats.NOTES
    )
    markdown = "\n\n".join(
        part
        for part in (
            f"## {TITLE}",
            docs.provenance(when, load, "aiohttp", "requests", "segmind"),
            table,
            notes,
            floor_text and f"Floors:\n\n{floor_text}",
            "\n".join(f"- crashed: {c}" for c in crashed),
        )
        if part
    )
    text = "\n\n".join(p for p in (TITLE, table, floor_text, "\n".join(crashed)) if p)
    return SectionReport(NAME, text, markdown, floors, crashed)
