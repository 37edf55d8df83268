"""The status page in a real browser: Debian's headless Chromium, driven by Playwright
(which never downloads a browser here), opens the page served by `handler()` on loopback
over a real store, and the test checks what a person sees there. Skipped, with the reason,
where /usr/bin/chromium is missing, except under VOICECLONE_REQUIRE_BROWSER=1 (.ci/run),
where a missing browser fails the test instead."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import ConsoleMessage, Dialog, Page, async_playwright

from bot.config import Settings
from bot.observe.status_page import handler
from bot.policy import Policy
from bot.store import SqliteJobStore

from .test_status_page import (
    HOSTILE_CAUSE,
    HOSTILE_LANGUAGE,
    HOSTILE_REF,
    NOW,
    SECRET_TEXT,
    StubMetrics,
    busy_metrics,
    fill,
    loaded_policy,
    status_settings,
)
from .test_store import TOKEN

CHROMIUM = Path("/usr/bin/chromium")
# As the machine's notes give them for root; the background-networking ones keep Chromium
# from reaching for Google's hosts, which this machine's closed network refuses.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A folder to copy the screenshot to, for a person to look at (it is kept in tmp_path).
SCREENSHOT_DIR = os.environ.get("VOICECLONE_SCREENSHOT_DIR")

pytestmark = pytest.mark.timeout(120)


def need_chromium() -> None:
    if CHROMIUM.is_file():
        return
    if os.environ.get("VOICECLONE_REQUIRE_BROWSER") == "1":
        pytest.fail(
            f"VOICECLONE_REQUIRE_BROWSER=1 but {CHROMIUM} is missing: "
            "apt-get install chromium chromium-driver (.ci/run does)"
        )
    pytest.skip(
        f"{CHROMIUM} is missing: the status page's browser test needs Debian's Chromium "
        "(apt-get install chromium; .ci/run installs it and requires this test)"
    )


@dataclass
class Parts:
    """What `handler()` reads of the bot."""

    store: SqliteJobStore
    policy: Policy
    settings: Settings
    metrics: StubMetrics


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[str]:
    """The page on 127.0.0.1 (a free port), over a filled store: its URL."""
    need_chromium()
    async with SqliteJobStore(tmp_path / "data") as store:
        await fill(store)
        settings = status_settings()
        parts = Parts(store, await loaded_policy(store, settings), settings, busy_metrics())
        app = web.Application()
        app.router.add_get("/", handler(parts, clock=lambda: NOW))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            host, port = runner.addresses[0][:2]
            yield f"http://{host}:{port}/"
        finally:
            await runner.cleanup()


@dataclass
class Seen:
    page: Page
    console_errors: list[str]
    dialogs: list[str]


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Seen]:
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh --user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1000, "height": 900},
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            seen = Seen(page, [], [])

            def console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    seen.console_errors.append(message.text)

            async def dialog(opened: Dialog) -> None:
                seen.dialogs.append(opened.message)
                await opened.dismiss()

            page.on("console", console)
            page.on("pageerror", lambda error: seen.console_errors.append(str(error)))
            page.on("dialog", dialog)
            yield seen
        finally:
            await context.close()


async def cells(page: Page, selector: str) -> list[list[str]]:
    rows = page.locator(selector)
    return [
        [text.strip() for text in await rows.nth(i).locator("td").all_inner_texts()]
        for i in range(await rows.count())
    ]


async def test_a_person_sees_jobs_usage_charts_and_failures(
    served: str, browser: Seen, tmp_path: Path
) -> None:
    page = browser.page
    answer = await page.goto(served, wait_until="load")
    assert answer is not None
    assert answer.status == 200
    assert await page.title() == "VoiceClone status"

    jobs = await cells(page, "#jobs tbody tr")
    assert [row[0] for row in jobs] == [
        "delivering",
        "at Segmind",
        "submitting",
        "waiting for the voice's owner",
        "failed, telling the member",
        "queued",
    ]
    assert jobs[1][3] == HOSTILE_LANGUAGE  # shown as text, not run
    assert jobs[0][2] == "direct messages"
    assert {row[4] for row in jobs} == {str(len(SECRET_TEXT))}
    assert await page.locator("#jobs-summary").inner_text() == "4 in flight, 2 queued."

    usage = await cells(page, "#usage tbody tr")
    assert usage[0][:2] == ["8", "4"]
    assert ["9", "2", "10 (20 %)", "22", "20 (110 %)"] in usage
    assert "of 50 (GLOBAL_DAILY_JOBS" in await page.locator("#usage-total").inner_text()

    chart = page.locator("#requests svg")
    assert await chart.locator("rect.bar").count() == 60
    assert await chart.locator("line.limit").count() == 1
    label = chart.locator("text.limit-label")
    assert await label.text_content() == "limit 5/min"
    assert await label.is_visible()
    # The busiest minutes (6 requests) reach above the line at 5; the quiet ones do not.
    line = await chart.locator("line.limit").bounding_box()
    tallest = await chart.locator("rect.bar").nth(6).bounding_box()
    low = await chart.locator("rect.bar").nth(1).bounding_box()
    assert line is not None
    assert tallest is not None
    assert low is not None
    assert tallest["y"] < line["y"] < low["y"]
    assert await page.locator("#durations svg circle.dot").count() == 2

    failures = await cells(page, "#failures tbody tr")
    assert [(row[2], row[3], row[4]) for row in failures] == [
        ("bug", "deadbeef", "bug"),
        (HOSTILE_CAUSE, HOSTILE_REF, "told"),
    ]

    text = await page.locator("body").inner_text()
    assert TOKEN not in text
    assert SECRET_TEXT not in text
    assert browser.console_errors == []
    assert browser.dialogs == []  # the hostile values ran no script

    shot = tmp_path / "status.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if SCREENSHOT_DIR:
        shutil.copy(shot, SCREENSHOT_DIR)


def test_without_chromium_it_skips_with_the_reason_or_under_ci_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(f"{__name__}.CHROMIUM", tmp_path / "chromium")
    monkeypatch.delenv("VOICECLONE_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs Debian's Chromium"):
        need_chromium()
    monkeypatch.setenv("VOICECLONE_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="VOICECLONE_REQUIRE_BROWSER=1 but"):
        need_chromium()
