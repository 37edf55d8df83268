"""The operator's status page (`/` on the metrics port): one read-only HTML page, no
JavaScript, refreshed by the browser every 30 s. Everything that a member or Segmind could
have chosen (ids, languages, causes, refs) is escaped; nothing secret is ever gathered
(`status_data`), so none can be shown."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from html import escape
from typing import Protocol

from aiohttp import web

from ..config import Settings
from ..store import StoreError
from .status_charts import durations_chart, requests_chart
from .status_data import (
    MINUTES,
    RequestStats,
    Snapshot,
    StatusReads,
    UsageCounts,
    gather,
)

log = logging.getLogger(__name__)

REFRESH_SECONDS = 30
# The store answers reads in milliseconds; one stuck behind a hung disk must not hold
# the request (and the browser's refresh) forever.
GATHER_TIMEOUT = 5.0
# No script, no remote anything: the page only needs its own inline style.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1b1b;background:#fff}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}
table{border-collapse:collapse;font-size:.9rem}
th,td{border:1px solid #bbb;padding:.2rem .5rem;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.over{font-weight:bold;color:#a00000}.muted{color:#555}
svg{max-width:100%;height:auto}
svg .axis{stroke:#333;stroke-width:1}svg .tick,svg .label{font-size:11px;fill:#333}
svg .bar{fill:#3b6ea5}svg .dot{fill:#3b6ea5;fill-opacity:.7}
svg .limit{stroke:#a00000;stroke-width:2;stroke-dasharray:6 3}
svg .limit-label{font-size:11px;fill:#a00000}svg .empty{font-size:13px;fill:#555}
"""


def e(value: object) -> str:
    return escape(str(value), quote=True)


def utc(moment: float, *, seconds: bool = True) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%H:%M", time.gmtime(moment))


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def guild_name(guild_id: int | None) -> str:
    return "direct messages" if guild_id is None else str(guild_id)


def of_cap(used: int, cap: int) -> str:
    """'12 of 100 (12 %)', marked when at or over the cap; 'no limit' for 0."""
    if not cap:
        return f'<td class="n">{used}</td><td class="n muted">no limit</td>'
    marked = ' class="n over"' if used >= cap else ' class="n"'
    return f'<td{marked}>{used}</td><td class="n">{cap} ({used * 100 // cap} %)</td>'


def table(head: list[str], rows: list[str], numeric: set[int], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{e(empty)}</p>'
    cells = "".join(
        f'<th scope="col" class="n">{e(h)}</th>' if i in numeric else f'<th scope="col">{e(h)}</th>'
        for i, h in enumerate(head)
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def jobs_section(snap: Snapshot) -> str:
    queued = sum(1 for job in snap.open_jobs if job.queued)
    shown = len(snap.open_jobs)
    rows = [
        f'<tr><td>{e(job.phase)}</td><td class="n">{e(duration(job.age_s))}</td>'
        f"<td>{e(guild_name(job.guild_id))}</td><td>{e(job.language)}</td>"
        f'<td class="n">{job.text_chars}</td><td>{e(job.id)}</td></tr>'
        for job in snap.open_jobs
    ]
    more = (
        f'<p class="muted">Showing the oldest {shown} of {snap.open_total} open jobs.</p>'
        if snap.open_total > shown
        else ""
    )
    return (
        '<section id="jobs"><h2>Jobs in flight and queued</h2>'
        f'<p id="jobs-summary">{shown - queued} in flight, {queued} queued.</p>'
        + table(
            ["state", "age", "server", "language", "text length", "job"],
            rows,
            {1, 4},
            "No job is running or waiting.",
        )
        + more
        + "</section>"
    )


def usage_section(snap: Snapshot) -> str:
    rows = [
        f"<tr><td>{e(guild_name(g.guild_id))}</td>{of_cap(g.jobs, g.jobs_cap)}"
        f"{of_cap(g.chars, g.chars_cap)}</tr>"
        for g in snap.guilds
    ]
    if snap.global_cap:
        over = ' class="over"' if snap.jobs_today >= snap.global_cap else ""
        total = (
            f"<strong{over}>{snap.jobs_today}</strong> of {snap.global_cap} "
            f"(GLOBAL_DAILY_JOBS, {snap.jobs_today * 100 // snap.global_cap} %)"
        )
    else:
        total = f"<strong>{snap.jobs_today}</strong> (GLOBAL_DAILY_JOBS: no limit)"
    more = (
        f'<p class="muted">The {len(snap.guilds)} busiest of {snap.guilds_total} servers.</p>'
        if snap.guilds_total > len(snap.guilds)
        else ""
    )
    return (
        '<section id="usage"><h2>Today\'s usage (UTC day)</h2>'
        f'<p id="usage-total">Jobs today, all servers: {total}.</p>'
        + table(
            [
                "server",
                "jobs",
                "of GUILD_DAILY_JOBS",
                "characters",
                "of GUILD_DAILY_CHARS",
            ],
            rows,
            {1, 2, 3, 4},
            "No job yet today.",
        )
        + more
        + "</section>"
    )


def requests_section(snap: Snapshot) -> str:
    start = snap.now - (MINUTES - 1) * 60
    labels = [utc(start + i * 60, seconds=False) for i in range(MINUTES)]
    limit = f"{snap.rpm_limit} per minute (SEGMIND_RPM)" if snap.rpm_limit else "none"
    return (
        '<section id="requests"><h2>Segmind requests per minute, last hour</h2>'
        + requests_chart(snap.requests, snap.rpm_limit, labels)
        + f'<p id="requests-summary">{sum(snap.requests)} requests in the last hour; '
        f"busiest minute {max(snap.requests)}; limit: {e(limit)}.</p></section>"
    )


def durations_section(snap: Snapshot) -> str:
    seconds = [s for _, s in snap.durations]
    if seconds:
        text = (
            f"{len(seconds)} jobs finished in the last hour; median "
            f"{statistics.median(seconds):.1f} s, longest {max(seconds):.1f} s."
        )
    else:
        text = "No job finished in the last hour."
    return (
        '<section id="durations"><h2>Job durations, last hour</h2>'
        + durations_chart(snap.durations)
        + f'<p id="durations-summary">{e(text)}</p></section>'
    )


def failures_section(snap: Snapshot) -> str:
    rows = [
        f"<tr><td>{e(utc(f.at))}</td><td>{e(guild_name(f.guild_id))}</td>"
        f'<td>{e(f.cause)}</td><td class="ref">{e(f.ref) if f.ref else "-"}</td>'
        f"<td>{e(f.job_id)}</td></tr>"
        for f in snap.failures
    ]
    return (
        '<section id="failures"><h2>Latest failures</h2>'
        + table(
            ["when (UTC)", "server", "cause", "ref", "job"],
            rows,
            set(),
            "No failures on record.",
        )
        + "</section>"
    )


def render(snap: Snapshot) -> str:
    """The whole page, as one HTML5 document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>VoiceClone status</title><style>{STYLE}</style></head><body>"
        "<header><h1>VoiceClone status</h1>"
        f'<p class="muted">As of {e(utc(snap.now))} UTC; this page refreshes every '
        f"{REFRESH_SECONDS} s.</p></header><main>"
        + jobs_section(snap)
        + usage_section(snap)
        + requests_section(snap)
        + durations_section(snap)
        + failures_section(snap)
        + "</main></body></html>\n"
    )


def unavailable(reason: str) -> web.Response:
    body = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        "<title>VoiceClone status: unavailable</title></head><body>"
        f"<h1>Status unavailable</h1><p>{e(reason)}</p></body></html>\n"
    )
    return web.Response(
        status=503, text=body, content_type="text/html", charset="utf-8", headers=HEADERS
    )


class StatusBot(Protocol):
    """The parts of the bot the page reads (`VoiceCloneBot` once it has `metrics`)."""

    @property
    def store(self) -> StatusReads: ...
    @property
    def policy(self) -> UsageCounts: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def metrics(self) -> RequestStats: ...


async def page(
    store: StatusReads,
    counts: UsageCounts,
    settings: Settings,
    metrics: RequestStats,
    *,
    now: float | None = None,
) -> web.Response:
    """The page's answer: 200 with the page, or 503 when the store cannot say."""
    try:
        async with asyncio.timeout(GATHER_TIMEOUT):
            snap = await gather(
                store, counts, settings, metrics, time.time() if now is None else now
            )
    except TimeoutError:
        log.warning("Status page: the job store did not answer in %.0f s", GATHER_TIMEOUT)
        return unavailable(f"The job store did not answer within {GATHER_TIMEOUT:.0f} s.")
    except StoreError:
        log.warning("Status page: the job store is not working", exc_info=True)
        return unavailable("The job store is not working; see the bot's log.")
    return web.Response(
        text=render(snap), content_type="text/html", charset="utf-8", headers=HEADERS
    )


def handler(
    bot: StatusBot, *, clock: Callable[[], float] = time.time
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler for `/`. Reads the bot's parts at each request: the store and
    the policy exist only once the bot's setup has run."""

    async def status(request: web.Request) -> web.Response:
        return await page(bot.store, bot.policy, bot.settings, bot.metrics, now=clock())

    return status
