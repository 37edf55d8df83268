"""The real bot in a child process (`python -m bot` via tests.botproc), for crash tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.segmind import FAKE_API_KEY, FakeSegmind
from tests.harness import NO_FAIR_USE

ROOT = Path(__file__).resolve().parents[1]


_STARTED: list[asyncio.subprocess.Process] = []


def reap() -> None:
    """Kill every bot a test started and did not stop (a failed test must not leave
    one running)."""
    while _STARTED:
        proc = _STARTED.pop()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


async def start_bot(
    discord: FakeDiscord,
    segmind: FakeSegmind,
    data_dir: Path,
    *args: str,
    token: str = "",
    **settings: str,
) -> asyncio.subprocess.Process:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": token or discord.token,
        "SEGMIND_API_KEY": FAKE_API_KEY,
        "SEGMIND_WORKFLOW_URL": segmind.workflow_url,
        "SEGMIND_POLL_INTERVAL": "0.05",
        "SEGMIND_RPM": "0",
        "PROGRESS_UPDATE_SECONDS": "0.1",
        "BOT_DATA_DIR": str(data_dir),
        "DISCORD_GUILD_IDS": str(discord.guild_id),
        "LOG_LEVEL": "INFO",
        **NO_FAIR_USE,
        **settings,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.botproc",
        discord.api_base,
        discord.gateway_url,
        discord.base_url,
        *args,
        env=env,
        cwd=data_dir.parent,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _STARTED.append(proc)
    return proc


async def stop(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> tuple[int, str]:
    """Signal the bot and collect its exit status and log (stderr)."""
    if proc.returncode is None:
        proc.send_signal(sig)
    _, stderr = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode is not None
    return proc.returncode, stderr.decode()


async def log_until(proc: asyncio.subprocess.Process, needle: str, within: float = 15.0) -> str:
    """Read the running bot's log (stderr) up to the first line containing `needle`; the
    lines read are returned (`stop` then gives only the rest)."""
    assert proc.stderr is not None
    lines: list[str] = []

    async def read() -> str:
        assert proc.stderr is not None
        while True:
            line = (await proc.stderr.readline()).decode()
            if not line:
                raise AssertionError(f"the bot exited before logging {needle!r}: {lines}")
            lines.append(line)
            if needle in line:
                return "".join(lines)

    return await asyncio.wait_for(read(), within)


async def kill(proc: asyncio.subprocess.Process) -> str:
    """`kill -9`: no chance to clean up."""
    _, log = await stop(proc, signal.SIGKILL)
    return log


def job_state(data_dir: Path, job_id: int) -> str | None:
    """The job's state as the bot last committed it (read-only; WAL allows this)."""
    uri = f"file:{data_dir / 'jobs.sqlite3'}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=5) as db:
        row = db.execute("SELECT state FROM jobs WHERE id = ?", (str(job_id),)).fetchone()
    return None if row is None else str(row[0])


async def until_state(data_dir: Path, job_id: int, state: str, within: float = 15.0) -> None:
    """Wait for a committed state. The database is the only thing another process can
    watch here, so this re-reads it (every 20 ms) instead of waiting on an event."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while job_state(data_dir, job_id) != state:
        if loop.time() > deadline:
            raise TimeoutError(f"job {job_id} never reached {state}: {job_state(data_dir, job_id)}")
        await asyncio.sleep(0.02)
