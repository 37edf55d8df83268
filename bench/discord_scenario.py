"""The Discord end-to-end scenario behind section "discord".

The real bot runs as a child process (`python -m tests.botproc`, via `tests.proc`), so its
CPU and memory are its own; the fake Discord and the fake Segmind run here, in the bench
process, on the standard asyncio loop: there `loop.time()` is `time.monotonic()`, so the
fake Segmind's request times and the fake Discord's are on one clock and can be
subtracted (uvloop's clock is not monotonic()'s).

Steps: start the bot and wait for its gateway session and synced commands; one warm-up
/speak; an idle phase (BASELINE commands with nothing else in flight); the ramp (IN_FLIGHT
jobs that stay PROCESSING until the end, then a quiet spell for their progress edits to
drain); the loaded phase (MEASURED commands at RATE per second while those jobs are
polled). Commands of both phases complete after three polls, so their delivery is timed
too. Last, the big-results phase: BIG_RESULTS jobs, each with BIG_RESULT_BYTES of audio,
released to complete at their next poll together, while commands go on at BIG_RATE per
second (the in-flight jobs still polled): the acks that must not wait behind the audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.discord import FakeDiscord, FakeInteraction
from tests.fakes.segmind import (
    FILES_PREFIX,
    POLL_PREFIX,
    FakeJob,
    FakeSegmind,
    JobScript,
    fake_mp3,
)
from tests.proc import start_bot

from . import procstat
from .lag import LagTicker

IN_FLIGHT = 500
MEASURED = 100
BASELINE = 20
RATE = 20.0
"""New /speak per second in the measured phases: steady, one at a time."""
RAMP_WINDOW = 25
"""Unanswered commands at most while the in-flight jobs are started: a fast trickle, not
one burst of 500 (whose acks, up to ~0.9 s here, measure the burst, not the steady state)."""
QUIET = 1.0
"""Seconds without a request to the fake Discord that end the ramp (progress edits done)."""
BIG_RESULTS = 20
BIG_RESULT_BYTES = 20 * 1024 * 1024
BIG_WAIT = 60.0
"""Seconds the big results may take, from their release to the last one delivered."""
BIG_TEXT = "big result"
BIG_RATE = 50.0
"""New /speak per second while the big results finish: many samples in a short window."""
DELIVERY_WAIT = 30.0
STEADY_SECONDS = 4.0

POLL_INTERVAL = 1.0
PROGRESS_SECONDS = 3.0
BOT_SETTINGS = {
    # 500 jobs polled every 1-1.5 s (the runner adds up to 50 % jitter): ~400 polls/s.
    "SEGMIND_POLL_INTERVAL": f"{POLL_INTERVAL:g}",
    "SEGMIND_RPM": "0",  # the request budget off: it would cap polls at 50 a minute
    "SEGMIND_MAX_CONCURRENT": "1000",  # every job truly in flight, none queued
    "PROGRESS_UPDATE_SECONDS": f"{PROGRESS_SECONDS:g}",  # the production default
    "LOG_LEVEL": "WARNING",
}

NEVER_DONE = JobScript(statuses=("QUEUED", "PROCESSING"))
HELD = JobScript(statuses=("PROCESSING",))
QUICK = JobScript(statuses=("QUEUED", "PROCESSING", "COMPLETED"))
IN_FLIGHT_TEXT = "in flight"
LOG_CAP = 4 * 1024 * 1024


class ScenarioError(Exception):
    """The scenario could not produce figures (bot died, a step never happened)."""


@dataclass(frozen=True)
class Delivery:
    """Seconds from the poll that answered COMPLETED arriving at the fake Segmind to the
    upload PATCH carrying the file arriving at the fake Discord, split at the download."""

    total: float
    to_download: float
    to_upload: float


@dataclass(frozen=True)
class Phase:
    """One measured phase: per-command samples and what the processes spent meanwhile."""

    label: str
    in_flight: int
    """Jobs kept PROCESSING meanwhile (0 for the idle phase)."""
    commands: int
    acks: list[float]
    """Seconds from INTERACTION_CREATE sent to the defer callback received, per command."""
    to_sniff: list[float]
    """Part of each ack: INTERACTION_CREATE sent to the bot's ranged GET of the clip (its
    format check) arriving at the fake CDN: gateway, discord.py, command dispatch."""
    sniff_to_ack: list[float]
    """The rest: the CDN answer, the job's first store write, the defer request."""
    late: int
    """Commands not acknowledged within Discord's deadline."""
    deliveries: list[Delivery]
    undelivered: int
    wall_s: float
    """First command sent to every file uploaded (seen within 10 ms) or the wait given up."""
    bot_cpu_s: float
    polls_per_s: float
    """Polls the fake Segmind received per second over the phase, all jobs."""
    in_flight_polled: int
    """Distinct in-flight jobs polled during the phase (all of them, if none stalled)."""
    bench_cpu_s: float
    """CPU of this process (both fakes) over the phase."""
    bench_lag_p99_ms: float
    bench_lag_max_ms: float
    """A stall here delays the fakes' timestamps too: it tells harness noise from the bot's."""


@dataclass(frozen=True)
class Steady:
    """The in-flight jobs alone, no commands: what polling them costs the bot."""

    wall_s: float
    bot_cpu_s: float
    polls: int

    @property
    def cpu_ms_per_poll(self) -> float:
        return self.bot_cpu_s * 1000 / self.polls if self.polls else float("nan")


@dataclass(frozen=True)
class BigResults:
    """/speak while BIG_RESULTS jobs with BIG_RESULT_BYTES of audio each finish together."""

    commands: int
    acks: list[float]
    late: int
    completed_s: float
    """From the first big job's COMPLETED poll to the last one's."""
    finished_s: float
    """From the first big job's COMPLETED poll to the last one delivered (its link)."""
    undelivered: int
    bot_cpu_s: float
    bot_peak_rss_mb: float
    bench_lag_p99_ms: float
    bench_lag_max_ms: float


@dataclass(frozen=True)
class DiscordRun:
    idle: Phase
    loaded: Phase
    steady: Steady
    big: BigResults
    ramp_s: float
    bot_cpu_s: float
    """From the bot's start to just before it is stopped."""
    bot_peak_rss_mb: float
    log_counts: dict[str, int] = field(default_factory=dict)
    """Bot log lines by level (WARNING and up; LOG_LEVEL is WARNING)."""
    log_samples: list[str] = field(default_factory=list)


class BotLog:
    """Drains the bot's stderr as it comes, so a chatty bot never blocks on a full pipe."""

    def __init__(self, stream: asyncio.StreamReader | None) -> None:
        self._data = bytearray()
        self._task = asyncio.create_task(self._drain(stream)) if stream else None

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self._data += chunk
            if len(self._data) > LOG_CAP:
                del self._data[: len(self._data) - LOG_CAP]

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
            self._task.cancel()

    @property
    def lines(self) -> list[str]:
        return self._data.decode(errors="replace").splitlines()

    def problems(self) -> tuple[dict[str, int], list[str]]:
        counts: dict[str, int] = {}
        samples: list[str] = []
        for line in self.lines:
            # "2026-01-01 12:00:00 WARNING  logger: message" (the bot's plain format)
            parts = line.split(maxsplit=3)
            key = "Traceback" if line.startswith("Traceback") else ""
            if len(parts) > 2 and parts[2] in ("WARNING", "ERROR", "CRITICAL"):
                key = parts[2]
            if key:
                counts[key] = counts.get(key, 0) + 1
                if len(samples) < 5:
                    samples.append(line[:300])
        return counts, samples


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Scenario:
    def __init__(
        self, discord: FakeDiscord, segmind: FakeSegmind, proc: asyncio.subprocess.Process
    ) -> None:
        self.discord = discord
        self.segmind = segmind
        self.proc = proc
        self.clip = fake_mp3(b"bench voice")

    async def until(self, predicate: Callable[[], bool], within: float, what: str) -> None:
        """Re-check every 10 ms (the figures are the fakes' own timestamps, so noticing
        late only costs wall time); fail at once if the bot died."""
        deadline = time.monotonic() + within
        while not predicate():
            if self.proc.returncode is not None:
                raise ScenarioError(f"the bot exited with {self.proc.returncode} before {what}")
            if time.monotonic() > deadline:
                raise ScenarioError(f"no {what} within {within:g} s")
            await asyncio.sleep(0.01)

    async def speak(self, text: str) -> FakeInteraction:
        """A /speak with its own attachment, so the bot's fetch of it names the command."""
        clip = self.discord.add_attachment("voice.mp3", self.clip, "audio/mpeg")
        return await self.discord.slash("speak", {"voice": clip, "text": text})

    async def started(self) -> None:
        def ready() -> bool:
            names = {c.get("name") for c in self.discord.commands(self.discord.guild_id)}
            return self.discord.connected and "speak" in names

        await self.until(ready, 30, "gateway session with /speak synced")

    async def warm_up(self) -> None:
        """One command end to end: first connections, lazy imports, discord.py readiness."""
        self.segmind.default_script = QUICK
        interaction = await self.speak("warm-up")
        await self.until(lambda: _delivered(interaction), 20, "warm-up delivery")

    async def ramp(self, count: int) -> float:
        """Start `count` jobs that never complete; return once they are all polled as
        PROCESSING and the bot's progress edits are over."""
        self.segmind.default_script = NEVER_DONE
        began = time.monotonic()
        sent: list[FakeInteraction] = []
        pending: list[FakeInteraction] = []
        for i in range(count):
            while True:
                now = time.monotonic()
                pending = [x for x in pending if x.acknowledged_at is None and now < x.deadline]
                if len(pending) < RAMP_WINDOW:
                    break
                await asyncio.sleep(0.002)
            interaction = await self.speak(f"{IN_FLIGHT_TEXT} {i}")
            sent.append(interaction)
            pending.append(interaction)
        await self.until(lambda: _settled(sent), 10, "answer to every ramp command")
        late = sum(1 for x in sent if x.acknowledged_at is None)
        if late:
            raise ScenarioError(f"{late} of {count} ramp commands missed the 3 s deadline")

        def all_processing() -> bool:
            jobs = [j for j in self.segmind.jobs.values() if j.text.startswith(IN_FLIGHT_TEXT)]
            return len(jobs) == count and all(j.status == "PROCESSING" for j in jobs)

        await self.until(all_processing, 60, f"{count} jobs PROCESSING")

        def quiet() -> bool:
            requests = self.discord.requests
            return not requests or time.monotonic() - requests[-1].at >= QUIET

        await self.until(quiet, 20, f"{QUIET:g} s without Discord traffic after the ramp")
        return time.monotonic() - began

    async def steady(self, seconds: float) -> Steady:
        """Watch the in-flight jobs alone: the bot's CPU per poll with nothing else to do."""
        pid = self.proc.pid
        cpu0, t0 = procstat.cpu_s(pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, t1 = procstat.cpu_s(pid), time.monotonic()
        polls = sum(1 for r in self.segmind.requests if r.kind == "poll" and t0 <= r.time <= t1)
        return Steady(t1 - t0, cpu1 - cpu0, polls)

    async def phase(self, label: str, count: int, in_flight: int) -> Phase:
        """`count` commands at RATE per second; each job completes after three polls."""
        self.segmind.default_script = QUICK
        pid = self.proc.pid
        ticker = LagTicker()
        ticker.start()
        cpu0, own0, t0 = procstat.cpu_s(pid), _own_cpu_s(), time.monotonic()
        sent: list[FakeInteraction] = []
        try:
            for i in range(count):
                await asyncio.sleep(max(0.0, t0 + i / RATE - time.monotonic()))
                sent.append(await self.speak(f"{label} {i}"))
            await self.until(lambda: _settled(sent), 10, f"answer to every {label} command")
            acked = [x for x in sent if x.acknowledged_at is not None]
            with contextlib.suppress(ScenarioError):
                await self.until(
                    lambda: all(_delivered(x) for x in acked), DELIVERY_WAIT, "deliveries"
                )
            t1, cpu1, own1 = time.monotonic(), procstat.cpu_s(pid), _own_cpu_s()
        finally:
            await ticker.stop()
        deliveries = self._deliveries(acked)
        sniffs = self._sniffs()
        split = [
            (sniffs[_clip_id(x)] - x.dispatched_at, x.acknowledged_at - sniffs[_clip_id(x)])
            for x in acked
            if x.acknowledged_at is not None and _clip_id(x) in sniffs
        ]
        polls = [r for r in self.segmind.requests if r.kind == "poll" and t0 <= r.time <= t1]
        in_flight_paths = {
            POLL_PREFIX + j.request_id
            for j in self.segmind.jobs.values()
            if j.text.startswith(IN_FLIGHT_TEXT)
        }
        return Phase(
            label=label,
            in_flight=in_flight,
            commands=count,
            acks=[x.acknowledged_at - x.dispatched_at for x in acked if x.acknowledged_at],
            to_sniff=[a for a, _ in split],
            sniff_to_ack=[b for _, b in split],
            late=count - len(acked),
            deliveries=deliveries,
            undelivered=len(acked) - len(deliveries),
            wall_s=t1 - t0,
            bot_cpu_s=cpu1 - cpu0,
            polls_per_s=len(polls) / (t1 - t0),
            in_flight_polled=len({r.path for r in polls} & in_flight_paths),
            bench_cpu_s=own1 - own0,
            bench_lag_p99_ms=ticker.stats_ms()[1],
            bench_lag_max_ms=ticker.stats_ms()[2],
        )

    def _sniffs(self) -> dict[str, float]:
        """Arrival of the bot's first ranged GET per attachment id (the fake Segmind's
        fetch of the same clip, later, sends no Range)."""
        found: dict[str, float] = {}
        for r in self.discord.requests:
            parts = r.route.split("/")  # /attachments/{channel}/{attachment}/{name}
            ranged = r.method == "GET" and "Range" in r.headers
            if ranged and len(parts) > 3 and parts[1] == "attachments":
                found.setdefault(parts[3], r.at)
        return found

    async def big_results(self) -> BigResults:
        """Start BIG_RESULTS jobs held PROCESSING, release them all at once (each completes
        at its next poll, within one poll interval) with BIG_RESULT_BYTES of audio each,
        and send /speak at BIG_RATE per second until every one was delivered: the store
        writes the audio meanwhile, and each command's ack waits on a store write."""
        self.segmind.script_jobs(*[HELD] * BIG_RESULTS)
        big = [await self.speak(f"{BIG_TEXT} {i}") for i in range(BIG_RESULTS)]
        await self.until(lambda: _settled(big), 10, "answer to every big-result command")
        if any(x.acknowledged_at is None for x in big):
            raise ScenarioError("a big-result command missed the 3 s deadline")

        def jobs() -> list[FakeJob]:
            return [j for j in self.segmind.jobs.values() if j.text.startswith(BIG_TEXT)]

        await self.until(
            lambda: len(jobs()) == BIG_RESULTS and all(j.status == "PROCESSING" for j in jobs()),
            30,
            f"{BIG_RESULTS} big-result jobs PROCESSING",
        )
        self.segmind.default_script = QUICK
        done = JobScript(statuses=("COMPLETED",), audio=fake_mp3(bytes(BIG_RESULT_BYTES)))
        pid = self.proc.pid
        ticker = LagTicker()
        ticker.start()
        cpu0, t0 = procstat.cpu_s(pid), time.monotonic()
        for job in jobs():
            job.script = done
        sent: list[FakeInteraction] = []
        try:
            while not all(_linked(x) for x in big) or len(sent) < BIG_RATE:
                if time.monotonic() - t0 > BIG_WAIT:
                    break
                await asyncio.sleep(max(0.0, t0 + len(sent) / BIG_RATE - time.monotonic()))
                sent.append(await self.speak(f"during big results {len(sent)}"))
            await self.until(lambda: _settled(sent), 10, "answer to every command")
            cpu1 = procstat.cpu_s(pid)
        finally:
            await ticker.stop()
        completed = [self._last_poll(j.request_id) for j in jobs()]
        linked = [self._linked_at(x) for x in big]
        first = min(completed)
        finished = [at for at in linked if at is not None]
        return BigResults(
            commands=len(sent),
            acks=[x.acknowledged_at - x.dispatched_at for x in sent if x.acknowledged_at],
            late=sum(1 for x in sent if x.acknowledged_at is None),
            completed_s=max(completed) - first,
            finished_s=max(finished) - first if finished else float("nan"),
            undelivered=len(big) - len(finished),
            bot_cpu_s=cpu1 - cpu0,
            bot_peak_rss_mb=procstat.peak_rss_mb(pid),
            bench_lag_p99_ms=ticker.stats_ms()[1],
            bench_lag_max_ms=ticker.stats_ms()[2],
        )

    def _last_poll(self, request_id: str) -> float:
        path = POLL_PREFIX + request_id
        return max(r.time for r in self.segmind.requests if r.kind == "poll" and r.path == path)

    def _linked_at(self, interaction: FakeInteraction) -> float | None:
        """When the edit that carried the result's link (it is over the upload limit)
        arrived at the fake Discord."""
        for d in self.discord.requests:
            body = d.json if isinstance(d.json, dict) else {}
            if (
                d.method == "PATCH"
                and interaction.token in d.route
                and "link instead" in str(body.get("content", ""))
            ):
                return d.at
        return None

    def _deliveries(self, interactions: Iterable[FakeInteraction]) -> list[Delivery]:
        """Match each command to its Segmind job by its (unique) text, then time its job's
        last poll (the bot stops polling at COMPLETED), its download and its upload."""
        jobs = {j.text: j for j in self.segmind.jobs.values()}
        last_poll: dict[str, float] = {}
        first_download: dict[str, float] = {}
        for r in self.segmind.requests:
            if r.kind == "poll" and r.status == 200:
                last_poll[r.path] = r.time
            elif r.kind == "download":
                first_download.setdefault(r.path, r.time)
        uploads: dict[str, float] = {}
        for d in self.discord.requests:
            parts = d.route.split("/")  # /webhooks/{app}/{token}/messages/{id}
            if d.method == "PATCH" and d.files and len(parts) > 3 and parts[1] == "webhooks":
                uploads.setdefault(parts[3], d.at)
        found: list[Delivery] = []
        for interaction in interactions:
            job = jobs.get(_text(interaction))
            upload = uploads.get(interaction.token)
            if job is None or upload is None or job.status != "COMPLETED":
                continue
            completed = last_poll.get(POLL_PREFIX + job.request_id)
            download = first_download.get(f"{FILES_PREFIX}{job.request_id}.mp3")
            if completed is None or download is None:
                continue
            found.append(Delivery(upload - completed, download - completed, upload - download))
        return found


def _text(interaction: FakeInteraction) -> str:
    options: list[dict[str, Any]] = interaction.data["options"]
    return str(next(o["value"] for o in options if o["name"] == "text"))


def _clip_id(interaction: FakeInteraction) -> str:
    attachments: dict[str, Any] = interaction.data.get("resolved", {}).get("attachments", {})
    return next(iter(attachments), "")


def _settled(sent: list[FakeInteraction]) -> bool:
    """Every command acknowledged, or past Discord's deadline (it never will be)."""
    now = time.monotonic()
    return all(x.acknowledged_at is not None or now > x.deadline + 0.5 for x in sent)


def _linked(interaction: FakeInteraction) -> bool:
    message = interaction.original
    return message is not None and "link instead" in message.content


def _delivered(interaction: FakeInteraction) -> bool:
    message = interaction.original
    return message is not None and bool(message.attachments)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM (the bot pauses its jobs and closes), SIGKILL if it takes over 15 s."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def run_scenario(workdir: Path) -> DiscordRun:
    loop = asyncio.get_running_loop()
    if abs(loop.time() - time.monotonic()) > 0.001:
        raise ScenarioError("run the fakes on the standard asyncio loop (one clock for both)")
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        proc = await start_bot(discord, segmind, workdir / "data", **BOT_SETTINGS)
        log = BotLog(proc.stderr)
        failed: ScenarioError | None = None
        try:
            s = Scenario(discord, segmind, proc)
            await s.started()
            await s.warm_up()
            idle = await s.phase("idle", BASELINE, 0)
            ramp_s = await s.ramp(IN_FLIGHT)
            steady = await s.steady(STEADY_SECONDS)
            loaded = await s.phase("loaded", MEASURED, IN_FLIGHT)
            bot_cpu, rss = procstat.cpu_s(proc.pid), procstat.peak_rss_mb(proc.pid)
            big = await s.big_results()
        except ScenarioError as exc:
            failed = exc
        finally:  # on every path, cancellation included
            await _stop(proc)
            await log.close()
    if failed is not None:
        tail = "\n".join(log.lines[-20:])
        raise ScenarioError(f"{failed}\nlast bot log lines:\n{tail}" if tail else str(failed))
    counts, samples = log.problems()
    return DiscordRun(idle, loaded, steady, big, ramp_s, bot_cpu, rss, counts, samples)
