"""The bot's metrics: Prometheus series in a registry of its own (tests run several bots
in one process), plus the last hour kept in memory for the status page."""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..segmind.errors import (
    MalformedResponseError,
    OutputRejectedError,
    SegmindConnectionError,
    SegmindError,
    UnexpectedStatusError,
)
from ..store import JobRecord, JobState

HOUR = 3600.0
MAX_RECENT = 10_000  # durations kept for the status page: a hard cap on memory
ROUTES = ("interaction", "channel", "dm", "voice_message", "voice_channel")
CANCELLED = ("cancelled", "cancelled_after_submit")
# Answers that say nothing about Segmind's health: a member's bad request, our own pacing.
_NOT_FAILURES = ("ok", "400", "429")
_CAUSE = re.compile(r"[^A-Za-z0-9_]")

JOB_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1800)
DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120)


def request_status(error: SegmindError | None) -> str:
    """A request's status label: `ok`, the HTTP status, or what went wrong without one."""
    if error is None:
        return "ok"
    if isinstance(error, UnexpectedStatusError):
        return str(error.http_status)
    if error.status is not None:
        return str(error.status)
    if isinstance(error, SegmindConnectionError):
        return "connection"
    if isinstance(error, MalformedResponseError):
        return "malformed"
    if isinstance(error, OutputRejectedError):
        return "rejected"
    return "error"


class Metrics:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._jobs = Counter(
            "voiceclone_jobs",
            "Jobs ended, by outcome (delivered, failed, cancelled) and cause (the failure code)",
            ["outcome", "cause"],
            registry=r,
        )
        self._job_seconds = Histogram(
            "voiceclone_job_duration_seconds",
            "Seconds from a job's acceptance to its delivery",
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self._delay = Histogram(
            "voiceclone_detection_delay_seconds",
            "Most seconds between Segmind finishing a job and the bot seeing it: the gap "
            "between the last poll that found it running and the first that found it done",
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self._requests = Counter(
            "voiceclone_segmind_requests",
            "Segmind requests by kind (submit, poll, download, upload, credits) and status",
            ["kind", "status"],
            registry=r,
        )
        self._rate_limited = Counter(
            "voiceclone_segmind_rate_limited",
            "Segmind answers 429 (rate limited), by request kind",
            ["kind"],
            registry=r,
        )
        self._deliveries = Counter(
            "voiceclone_deliveries",
            "Results delivered, by route (interaction, channel, dm, voice_message, voice_channel)",
            ["route"],
            registry=r,
        )
        self._queue = Gauge("voiceclone_queue_depth", "Jobs waiting for a Segmind slot", registry=r)
        self._in_flight = Gauge(
            "voiceclone_jobs_in_flight", "Jobs holding a Segmind slot", registry=r
        )
        self._tokens = Gauge(
            "voiceclone_budget_tokens",
            "Segmind requests that could be sent right now (+Inf: SEGMIND_RPM=0)",
            registry=r,
        )
        for route in ROUTES:  # every route shows, at 0, before its first delivery
            self._deliveries.labels(route)
        self.last_success: float | None = None  # wall time of the last request that worked
        self.failing_since: float | None = None  # first failure after that success
        self.last_failure: float | None = None
        self._minutes: deque[list[int]] = deque()  # [UTC minute, requests], oldest first
        self._durations: deque[tuple[float, float]] = deque(maxlen=MAX_RECENT)

    def watch(
        self,
        *,
        queue_depth: Callable[[], float],
        in_flight: Callable[[], float],
        budget_tokens: Callable[[], float],
    ) -> None:
        """Gauges read when scraped, from the runner's slots and the request budget."""
        self._queue.set_function(queue_depth)
        self._in_flight.set_function(in_flight)
        self._tokens.set_function(budget_tokens)

    # -- hooks -------------------------------------------------------------------------

    def segmind_request(self, kind: str, error: SegmindError | None) -> None:
        """One attempt of a Segmind request ended (retries each count)."""
        status = request_status(error)
        self._requests.labels(kind, status).inc()
        if status == "429":
            self._rate_limited.labels(kind).inc()
        now = self._clock()
        minute = int(now // 60)
        if self._minutes and self._minutes[-1][0] == minute:
            self._minutes[-1][1] += 1
        else:
            self._minutes.append([minute, 1])
            while self._minutes and self._minutes[0][0] <= minute - 60:
                self._minutes.popleft()
        if status == "ok":
            self.last_success, self.failing_since = now, None
        elif status not in _NOT_FAILURES:
            self.last_failure = now
            if self.failing_since is None:
                self.failing_since = now

    def job_ended(self, record: JobRecord) -> None:
        """A job reached its end for good (delivered, or its failure explained)."""
        if record.state is JobState.DELIVERED:
            self._jobs.labels("delivered", "").inc()
            if record.delivered_at is not None:
                seconds = max(0.0, record.delivered_at - record.created_at)
                self._job_seconds.observe(seconds)
                self._durations.append((record.delivered_at, seconds))
            running, done = record.seen_running_s, record.seen_done_s
            if running is not None and done is not None:
                self._delay.observe(max(0.0, done - running))
        elif record.state in (JobState.FAILED, JobState.EXPLAINED):  # FAILED: unrecorded
            cause = _CAUSE.sub("_", record.failure_cause or "unknown")[:40]
            self._jobs.labels("cancelled" if cause in CANCELLED else "failed", cause).inc()

    def delivered(self, route: str) -> None:
        self._deliveries.labels(route).inc()

    # -- reading -----------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)

    def requests_per_minute(self, now: float | None = None) -> list[int]:
        """Segmind requests per UTC minute over the last hour: 60 counts, oldest first,
        the current (unfinished) minute last."""
        current = int((self._clock() if now is None else now) // 60)
        counts = [0] * 60
        for minute, n in self._minutes:
            age = current - minute
            if 0 <= age < 60:
                counts[59 - age] += n
        return counts

    def recent_durations(self) -> list[tuple[float, float]]:
        """(delivered_at, seconds from acceptance) of the jobs delivered in the last hour,
        oldest first."""
        since = self._clock() - HOUR
        while self._durations and self._durations[0][0] < since:
            self._durations.popleft()
        return [entry for entry in self._durations if entry[0] >= since]
