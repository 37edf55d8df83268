"""LOG_FORMAT=json: the real bot process writes one JSON object per line, lines about a
job carry its id, and the redaction filter still applies (at DEBUG, where discord.py logs
URLs with interaction tokens). Also the process's HTTP server (METRICS_PORT)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bot.logs import REDACTED, RedactSecrets
from bot.observe import JsonFormatter, current_job
from tests.fakes.discord import FakeDiscord
from tests.fakes.segmind import FAKE_API_KEY, FakeSegmind, fake_mp3
from tests.proc import start_bot, stop

SECRET = "s3cr3t-api-key-value"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def healthz_ok(url: str, within: float = 10.0) -> str:
    """/healthz's body once it answers 200. A process is not ready at once: discord.py
    waits for its guilds (2 s) before it is, and the check says so until then; this asks
    as Docker does, again and again, with a deadline."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with asyncio.timeout(within):
            while True:
                async with session.get(url) as resp:
                    body = await resp.text()
                    if resp.status == 200:
                        return body
                    assert resp.status == 503, body
                await asyncio.sleep(0.1)


def parse(log: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert isinstance(line, dict)
        assert {"time", "level", "logger", "message"} <= set(line)
        assert line["time"].endswith("Z")
    return lines


def formatted(record: logging.LogRecord) -> dict[str, Any]:
    RedactSecrets([SECRET]).filter(record)
    return dict(json.loads(JsonFormatter().format(record)))


def test_a_line_carries_the_job_of_the_context_and_is_redacted() -> None:
    try:
        raise RuntimeError(f"boom with {SECRET}")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "bot.x", logging.ERROR, __file__, 1, "key %s failed", (SECRET,), exc_info
    )
    token = current_job.set("1234")
    try:
        line = formatted(record)
    finally:
        current_job.reset(token)
    assert line["job"] == "1234"
    assert line["level"] == "ERROR"
    assert line["logger"] == "bot.x"
    assert line["message"] == f"key {REDACTED} failed"
    assert "RuntimeError" in line["exception"]
    assert SECRET not in json.dumps(line)
    no_job = formatted(logging.LogRecord("bot.x", logging.INFO, __file__, 1, "idle", (), None))
    assert "job" not in no_job


async def test_the_process_logs_json_lines_with_the_job_id(tmp_path: Path) -> None:
    port = free_port()
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        proc = await start_bot(
            discord,
            segmind,
            tmp_path / "data",
            LOG_FORMAT="json",
            LOG_LEVEL="DEBUG",
            METRICS_PORT=str(port),
        )
        try:
            await discord.wait_for(lambda: discord.connected, 20)
            clip = discord.add_attachment("v.mp3", fake_mp3(b"x"), "audio/mpeg")
            interaction = await discord.slash("speak", {"voice": clip, "text": "hello"})
            await discord.wait_for(
                lambda: interaction.original is not None and bool(interaction.original.attachments),
                20,
            )
            health = await healthz_ok(f"http://127.0.0.1:{port}/healthz")
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
                session.get(f"http://127.0.0.1:{port}/metrics") as metrics,
            ):
                scraped = await metrics.text() + health
        finally:
            code, log = await stop(proc)
    assert code == 0
    lines = parse(log)
    job = str(interaction.id)
    about_job = [line for line in lines if line.get("job") == job]
    messages = [line["message"] for line in about_job]
    assert any("submitted" in m for m in messages)  # the runner's line, inside the job
    assert any("delivered via" in m for m in messages)
    assert not any("job" in line for line in lines if "Health and metrics" in line["message"])
    assert 'voiceclone_jobs_total{cause="",outcome="delivered"} 1.0' in scraped
    for secret in (interaction.token, interaction.token[16:48], discord.token, FAKE_API_KEY):
        assert secret not in log
        assert secret not in scraped
    assert any(REDACTED in line["message"] for line in lines)  # not vacuous: DEBUG URLs


async def test_a_taken_metrics_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with FakeDiscord() as discord, FakeSegmind() as segmind:
            proc = await start_bot(discord, segmind, tmp_path / "data", METRICS_PORT=str(port))
            _, stderr = await asyncio.wait_for(proc.communicate(), 20)  # it exits by itself
    assert proc.returncode == 2
    log = stderr.decode()
    assert f"voiceclone: METRICS_PORT: cannot listen on 127.0.0.1:{port}" in log
    assert "Traceback" not in log
