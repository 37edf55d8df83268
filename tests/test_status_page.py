"""The operator's status page without a browser: the store's summaries, the snapshot as the
rules count it, the HTML and its charts, hostile values escaped, nothing secret shown, and
a 503 when the store cannot answer. tests/test_status_browser.py shows it in Chromium."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bot.config import Secret, Settings
from bot.observe import status_page
from bot.observe.status_data import Snapshot, StatusReads, failure_ref, gather
from bot.observe.status_page import page, render
from bot.policy import Policy
from bot.store import JobRecord, JobState, StoreError
from bot.store.models import Store
from tests.fakes.discord import FAKE_TOKEN
from tests.fakes.segmind import FAKE_API_KEY, JobScript
from tests.harness import world
from tests.store_backends import MakeStore

from .test_store import TOKEN, make_job

# Noon UTC: every job below falls on one UTC day, whatever the real clock says.
NOW = 1_796_212_800.0
HOSTILE_LANGUAGE = "<script>alert('lang')</script>"
HOSTILE_CAUSE = '<img src=x onerror="alert(1)">'
HOSTILE_REF = "<b>r&1</b>"
SECRET_TEXT = "Hello there"  # make_job's text
CLIP_URL = "cdn.discordapp.com/attachments"
RESULT_URL = "https://out.segmind.com/result-secret.mp3"
BUG_MESSAGE = "Something went wrong on the bot's side (ref `deadbeef`). Please try again."
SEGMIND_MESSAGE = f"❌ The voice service failed. Please try again. (ref `{HOSTILE_REF}`)"


def status_settings(**changes: object) -> Settings:
    base = Settings(
        discord_token=Secret(TOKEN + "-discord"),
        segmind_api_key=Secret("segmind-key-never-shown"),
        segmind_rpm=5,
        global_daily_jobs=50,
        guild_daily_jobs=10,
        guild_daily_chars=20,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


class StubMetrics:
    """Stands in for the bot's Metrics: a fixed hour of requests and durations."""

    def __init__(self, requests: list[int], durations: list[tuple[float, float]]) -> None:
        self.requests = requests
        self.durations = durations

    def requests_per_minute(self, now: float | None = None) -> list[int]:
        return list(self.requests)

    def recent_durations(self) -> list[tuple[float, float]]:
        return list(self.durations)


def busy_metrics() -> StubMetrics:
    requests = [i % 7 for i in range(60)]  # up to 6: over the limit of 5 at times
    return StubMetrics(requests, [(NOW - 600, 12.5), (NOW - 1800, 31.0), (NOW - 7200, 99.0)])


def job(job_id: str, *, ago: float, guild: int | None = 8, **changes: object) -> JobRecord:
    record = make_job(job_id, created_at=NOW - ago)
    return dataclasses.replace(record, guild_id=guild, **changes)  # type: ignore[arg-type]


async def fill(store: Store) -> None:
    """Jobs in every state the page tells apart, two guilds and DMs, hostile values."""
    await store.add(job("queued", ago=5))
    await store.add(job("owner", ago=50, owner_pending_until=NOW + 500))
    await store.add(job("submitting", ago=70, guild=9))
    await store.mark_submit_started("submitting")
    await store.add(job("segmind", ago=130, language=HOSTILE_LANGUAGE))
    await store.mark_submit_started("segmind")
    await store.mark_submitted("segmind", "req-1", "https://api.segmind.com/p/secret-poll")
    await store.add(job("delivering", ago=3700, guild=None))
    await store.mark_submit_started("delivering")
    await store.mark_submitted("delivering", "req-2", "https://api.segmind.com/p/2")
    await store.mark_completed("delivering", b"ID3audio", "audio/mpeg", "mp3", RESULT_URL)
    await store.add(job("done", ago=200))
    await store.mark_submit_started("done")
    await store.mark_submitted("done", "req-3", "https://api.segmind.com/p/3")
    await store.mark_completed("done", b"ID3audio", "audio/mpeg", "mp3", RESULT_URL)
    await store.mark_delivering("done")
    await store.mark_delivered("done", "interaction", 77)
    # Failures, oldest first: one told with Segmind's (hostile) ref, then a bug not yet told.
    await store.add(job("told", ago=300, guild=9))
    await store.mark_submit_started("told")
    await store.mark_failed("told", HOSTILE_CAUSE, SEGMIND_MESSAGE)
    await store.mark_explained("told")
    await store.add(job("bug", ago=20))
    await store.mark_failed("bug", "bug", BUG_MESSAGE)


@pytest.fixture
async def store(make_store: MakeStore) -> AsyncIterator[Store]:
    async with make_store() as opened:
        await fill(opened)
        yield opened


async def loaded_policy(store: Store, settings: Settings) -> Policy:
    policy = Policy(settings, store, clock=lambda: NOW)
    await policy.load(await store.unfinished())
    return policy


class Checker(HTMLParser):
    """Fails on a tag closed out of order or left open: the page's elements nest."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open[-1:] == [tag], f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def checked(html: str) -> Checker:
    assert html.startswith("<!DOCTYPE html>\n")
    checker = Checker()
    checker.feed(html)
    checker.close()
    assert checker.open == []
    return checker


async def test_store_summaries_leave_out_text_urls_and_tokens(store: Store) -> None:
    open_jobs = await store.open_jobs(100)
    assert [(j.id, j.state) for j in open_jobs] == [
        ("delivering", JobState.COMPLETED),
        ("segmind", JobState.SUBMITTED),
        ("submitting", JobState.ACCEPTED),
        ("owner", JobState.ACCEPTED),
        ("bug", JobState.FAILED),
        ("queued", JobState.ACCEPTED),
    ]
    assert {j.text_chars for j in open_jobs} == {len(SECRET_TEXT)}
    fields = {f.name for f in dataclasses.fields(open_jobs[0])}
    assert not fields & {"text", "sample_url", "interaction_token", "audio_url", "poll_url"}
    assert [j.id for j in await store.open_jobs(2)] == ["delivering", "segmind"]

    failures = await store.recent_failures(20)
    assert [(f.id, f.cause, f.message) for f in failures] == [
        ("bug", "bug", BUG_MESSAGE),
        ("told", HOSTILE_CAUSE, SEGMIND_MESSAGE),
    ]
    assert [f.id for f in await store.recent_failures(1)] == ["bug"]


def test_failure_refs_are_read_from_the_bots_wording() -> None:
    assert failure_ref(BUG_MESSAGE) == "deadbeef"
    assert failure_ref(SEGMIND_MESSAGE) == HOSTILE_REF
    assert failure_ref("❌ Segmind said no (ref abc-123)") == "abc-123"
    assert failure_ref("❌ The clip was too long.") == ""


async def test_snapshot_counts_as_the_rules_do(store: Store) -> None:
    settings = status_settings()
    policy = await loaded_policy(store, settings)
    snap = await gather(store, policy, settings, busy_metrics(), NOW)

    phases = {j.id: (j.phase, j.queued) for j in snap.open_jobs}
    assert phases == {
        "queued": ("queued", True),
        "owner": ("waiting for the voice's owner", True),
        "submitting": ("submitting", False),
        "segmind": ("at Segmind", False),
        "delivering": ("delivering", False),
        "bug": ("failed, telling the member", False),
    }
    assert snap.open_total == 6
    # Billable today: every job but "bug" (failed before its submit: refunded). The one
    # delivering started 3700 s ago, which may be yesterday (UTC).
    guilds = {g.guild_id: (g.jobs, g.jobs_cap, g.chars, g.chars_cap) for g in snap.guilds}
    assert guilds[8] == (*policy.today(8)[:1], 10, policy.today(8)[1], 20)
    assert guilds[8][0] == 4  # queued, owner, segmind, done
    assert guilds[9] == (2, 10, 22, 20)  # over the characters cap
    assert snap.jobs_today == sum(g.jobs for g in snap.guilds)
    assert (snap.global_cap, snap.rpm_limit) == (50, 5)
    assert len(snap.requests) == 60
    assert snap.durations == [(600, 12.5), (1800, 31.0)]  # the one 2 h ago is dropped
    assert [(f.job_id, f.cause, f.ref) for f in snap.failures] == [
        ("bug", "bug", "deadbeef"),
        ("told", HOSTILE_CAUSE, HOSTILE_REF),
    ]


async def test_page_escapes_hostile_values_and_shows_no_secret(store: Store) -> None:
    settings = status_settings()
    policy = await loaded_policy(store, settings)
    html = render(await gather(store, policy, settings, busy_metrics(), NOW))
    checker = checked(html)

    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(&#x27;lang&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "&lt;b&gt;r&amp;1&lt;/b&gt;" in html
    for secret in (
        TOKEN,
        SECRET_TEXT,
        CLIP_URL,
        RESULT_URL,
        "secret-poll",
        settings.discord_token.get(),
        settings.segmind_api_key.get(),
    ):
        assert secret not in html
    assert "deadbeef" in html
    # Only the page's own markup: no script, no link, no image, no form.
    assert not set(checker.tags) & {"script", "link", "img", "iframe", "form", "a"}
    assert '<meta http-equiv="refresh" content="30">' in html


def chart(html: str, section: str) -> str:
    found = re.search(rf'<section id="{section}">.*?</section>', html, re.S)
    assert found is not None
    return found.group(0)


def test_request_chart_has_sixty_titled_bars_and_the_limit_line() -> None:
    snap = _empty_snapshot(requests=[0] * 59 + [7], rpm_limit=5)
    svg = chart(render(snap), "requests")
    bars = re.findall(r'<rect class="bar"[^>]*><title>([^<]*)</title></rect>', svg)
    assert len(bars) == 60
    assert bars[-1].endswith(": 7 requests")
    assert bars[0].endswith(": 0 requests")
    assert svg.count('<line class="limit"') == 1
    assert "limit 5/min" in svg
    assert "7 requests in the last hour; busiest minute 7; limit: 5 per minute" in svg

    unlimited = chart(render(_empty_snapshot(requests=[1] * 60, rpm_limit=0)), "requests")
    assert 'class="limit"' not in unlimited
    assert "limit: none" in unlimited


def test_duration_chart_has_a_titled_dot_per_job_and_axis_labels() -> None:
    svg = chart(render(_empty_snapshot(durations=[(60.0, 14.0), (1200.0, 40.5)])), "durations")
    assert re.findall(r"<circle[^>]*><title>([^<]*)</title>", svg) == [
        "14 s, finished 1 min ago",
        "40.5 s, finished 20 min ago",
    ]
    assert "job duration (seconds)" in svg
    assert "finished (minutes ago)" in svg
    empty = chart(render(_empty_snapshot()), "durations")
    assert "<circle" not in empty
    assert "no job finished in the last hour" in empty


def test_an_idle_bot_renders_a_valid_page() -> None:
    html = render(_empty_snapshot())
    checked(html)
    assert "No job is running or waiting." in html
    assert "No failures on record." in html
    assert "Jobs today, all servers: <strong>0</strong> of 50" in html


def _empty_snapshot(
    requests: list[int] | None = None,
    rpm_limit: int = 5,
    durations: list[tuple[float, float]] | None = None,
) -> Snapshot:
    return Snapshot(
        now=NOW,
        open_jobs=[],
        open_total=0,
        jobs_today=0,
        global_cap=50,
        guilds=[],
        guilds_total=0,
        requests=[0] * 60 if requests is None else requests,
        rpm_limit=rpm_limit,
        durations=durations or [],
        failures=[],
    )


class HungStore:
    """A store whose reads never answer (a hung disk)."""

    async def open_jobs(self, limit: int) -> list[object]:
        await asyncio.Event().wait()
        return []

    async def recent_failures(self, limit: int) -> list[object]:
        return []

    async def usage(self, since: float, guild_id: int | None = None) -> list[object]:
        return []

    async def count_by_state(self) -> dict[JobState, int]:
        return {}


class BrokenStore(HungStore):
    async def open_jobs(self, limit: int) -> list[object]:
        raise StoreError(Path("/data"), "/data/jobs.sqlite3: disk I/O error")


async def test_a_store_that_does_not_answer_gives_503(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = status_settings()
    policy = await loaded_policy(store, settings)
    monkeypatch.setattr(status_page, "GATHER_TIMEOUT", 0.05)
    hung: StatusReads = HungStore()  # type: ignore[assignment]
    answer = await page(hung, policy, settings, busy_metrics())
    assert answer.status == 503
    assert "did not answer" in (answer.text or "")

    broken: StatusReads = BrokenStore()  # type: ignore[assignment]
    answer = await page(broken, policy, settings, busy_metrics())
    assert answer.status == 503
    assert "not working" in (answer.text or "")

    ok = await page(store, policy, settings, busy_metrics(), now=NOW)
    assert ok.status == 200
    assert ok.content_type == "text/html"
    assert "script-src" not in ok.headers["Content-Security-Policy"]
    assert ok.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_the_page_reads_a_running_bots_store_and_policy(tmp_path: Path) -> None:
    """The real bot against the fakes: one job delivered, one failed at Segmind (with
    hostile words), one at Segmind and one queued behind it (one slot)."""
    async with world(
        tmp_path, SEGMIND_MAX_CONCURRENT="1", GUILD_DAILY_JOBS="50", GLOBAL_DAILY_JOBS="99"
    ) as w:
        w.segmind.script_jobs(
            JobScript(),
            JobScript(statuses=("FAILED",), failure_reason="<i>too noisy</i>"),
            JobScript(statuses=("PROCESSING",) * 100_000),
        )
        done = await w.speak("first secret words")
        await w.answered(done)
        failed = await w.speak("second secret words")
        await w.answered(failed)
        await w.job_ended(failed)
        running = await w.speak("third secret words")
        await w.segmind.wait_for(lambda: w.segmind.count("submit") == 3)
        queued = await w.speak("fourth secret words")
        await w.discord.wait_for(
            lambda: queued.original is not None and "position" in queued.original.content
        )

        answer = await page(w.bot.store, w.bot.policy, w.bot.settings, busy_metrics())
        assert answer.status == 200
        html = answer.text or ""
        checked(html)
        jobs = re.findall(r"<tr><td>([^<]*)</td><td class=\"n\">", chart(html, "jobs"))
        assert jobs == ["at Segmind", "queued"]
        assert "1 in flight, 1 queued." in html
        guild = w.discord.guild_id
        assert f'<tr><td>{guild}</td><td class="n">4</td><td class="n">50 (8 %)</td>' in html
        assert "<strong>4</strong> of 99" in html
        failed_job = next(j for j in w.segmind.jobs.values() if j.text == "second secret words")
        assert f'<td class="ref">{failed_job.request_id}</td><td>{failed.id}</td>' in html
        for secret in ("secret words", FAKE_TOKEN, FAKE_API_KEY, "too noisy", running.token):
            assert secret not in html
