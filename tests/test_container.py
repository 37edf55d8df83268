"""The container: the lock file, the Dockerfile, docker-compose.yml and the HEALTHCHECK.

No Docker engine runs here, so these check what can be checked without one: the lock pins
every runtime dependency with hashes and agrees with pyproject.toml; the image installs
from it with --require-hashes; the files the image copies exist and are not ignored; the
image's commands exist and run; compose's hardening is in place; and the health check
tells a running bot from a stopped or missing one, against a real bot process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from bot import healthcheck
from bot.config import load_settings
from bot.store import sqlite
from tests.fakes.discord import FakeDiscord
from tests.fakes.segmind import FakeSegmind
from tests.proc import start_bot, stop

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
# The image: Debian's python:3.11-slim.
IMAGE_ENV = {"sys_platform": "linux", "platform_system": "Linux", "python_version": "3.11"}


def locked() -> dict[str, tuple[Version, list[str]]]:
    """requirements.lock as {name: (pinned version, hashes)}."""
    pins: dict[str, tuple[Version, list[str]]] = {}
    name = ""
    for line in LOCK.read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", line)
        if pin:
            name = canonicalize_name(pin[1])
            assert name not in pins, f"{name} pinned twice"
            pins[name] = (Version(pin[2]), [])
        for digest in re.findall(r"--hash=sha256:([0-9a-f]{64})", line):
            pins[name][1].append(digest)
        assert not re.match(r"^\S+\s*(>=|<=|~=|>|<|!=)", line), f"not pinned: {line}"
    return pins


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    pins = locked()
    assert pins
    for name, (version, hashes) in pins.items():
        assert hashes, f"{name}=={version} has no hash"
    for requirement in runtime_requirements():
        if requirement.marker is not None and not requirement.marker.evaluate(IMAGE_ENV):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is in pyproject.toml but not in the lock: run make lock"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (
            f"the lock's {name}=={pins[name][0]} is outside pyproject's {requirement.specifier}"
            ": run make lock"
        )


def test_aiohttp_excludes_the_decompression_bomb_versions() -> None:
    [aiohttp] = [r for r in runtime_requirements() if r.name == "aiohttp"]
    assert not aiohttp.specifier.contains("3.13.2")
    assert aiohttp.specifier.contains("3.13.3")
    assert locked()["aiohttp"][0] >= Version("3.13.3")


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def exec_form(arguments: str) -> list[str]:
    form = json.loads(arguments)
    assert isinstance(form, list)
    return [str(part) for part in form]


def test_image_installs_only_from_the_lock_with_hashes() -> None:
    runs = [args for keyword, args in dockerfile() if keyword == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert installs, "the image installs no dependencies"
    for run in installs:
        words = shlex.split(run)
        assert "--require-hashes" in words
        assert words[words.index("-r") + 1].endswith("requirements.lock")
    copied = [args for keyword, args in dockerfile() if keyword == "COPY"]
    assert any(args.split()[0] == "requirements.lock" for args in copied)


def test_files_the_image_copies_exist_and_are_not_ignored() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for keyword, args in dockerfile():
        if keyword != "COPY" or args.startswith("--from"):
            continue
        *sources, _ = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert source not in ignored, f"COPY {source}: excluded by .dockerignore"


def module_of(command: list[str]) -> Path:
    """The source file `python -m MODULE …` runs."""
    assert command[:2] == ["python", "-m"], command
    path = ROOT / command[2].replace(".", "/")
    return path / "__main__.py" if path.is_dir() else path.with_suffix(".py")


def test_the_images_commands_exist_and_run() -> None:
    instructions = dict(dockerfile())
    cmd = exec_form(instructions["CMD"])
    healthcheck_cmd = instructions["HEALTHCHECK"].split(" CMD ", 1)[1]
    check = exec_form(healthcheck_cmd)
    for command in (cmd, check):
        assert module_of(command).is_file()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    # The bot's entry point parses its arguments (--help needs no settings).
    shown = subprocess.run(
        [sys.executable, *cmd[1:], "--help"], cwd=ROOT, env=env, capture_output=True, timeout=30
    )
    assert shown.returncode == 0
    assert b"--sync" in shown.stdout
    # The health check runs, and needs none of discord.py: it must stay cheap.
    probe = subprocess.run(
        [sys.executable, "-X", "importtime", *check[1:]],
        cwd=ROOT,
        env={**env, "BOT_DATA_DIR": str(ROOT / "no-such-dir")},
        capture_output=True,
        timeout=30,
    )
    assert probe.returncode == 1
    assert b"unhealthy:" in probe.stderr
    assert not re.search(rb"\|\s+(discord|aiohttp|aiosqlite)\b", probe.stderr)
    assert "--interval=" in instructions["HEALTHCHECK"]


def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def test_compose_runs_the_bot_locked_down() -> None:
    document = compose()
    service = document["services"]["voiceclone"]
    assert service["read_only"] is True
    assert any(str(mount).split(":")[0] == "/tmp" for mount in service["tmpfs"])
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    limit = service.get("mem_limit") or service["deploy"]["resources"]["limits"]["memory"]
    assert re.fullmatch(r"\d+[kmg]?", str(limit).lower())
    # /data stays writable: a named volume (read_only covers only the image's files).
    data_dir = service["environment"]["BOT_DATA_DIR"]
    [volume] = [v for v in service["volumes"] if v.split(":")[1] == data_dir]
    name, _, options = volume.partition(":")
    assert "ro" not in options.split(":")
    assert name in document["volumes"]
    assert f"BOT_DATA_DIR={data_dir}" in dict(dockerfile())["ENV"]


def test_healthcheck_agrees_with_the_store_on_its_file_names() -> None:
    assert (healthcheck.DB_NAME, healthcheck.LOCK_NAME) == (sqlite.DB_NAME, sqlite.LOCK_NAME)


def test_flock_holders_parses_proc_locks() -> None:
    device = os.makedev(0xFE, 0x01)
    locks = (
        "1: POSIX  ADVISORY  READ 8743 fe:01:99 128 128\n"
        "2: FLOCK  ADVISORY  WRITE 4242 fe:01:99 0 EOF\n"
        "2: -> FLOCK  ADVISORY  WRITE 4343 fe:01:99 0 EOF\n"
        "3: FLOCK  ADVISORY  WRITE 77 fe:02:99 0 EOF\n"
        "4: FLOCK  ADVISORY  READ 78 fe:01:99 0 EOF\n"
        "5: FLOCK  ADVISORY  WRITE 79 fe:01:990 0 EOF\n"
        "garbage\n"
    )
    assert healthcheck.flock_holders(locks, device, 99) == [4242]
    assert healthcheck.flock_holders(locks, device, 100) == []


async def check(data_dir: Path) -> tuple[int, str]:
    """Run the image's health check against `data_dir`: its exit status and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.healthcheck",
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "BOT_DATA_DIR": str(data_dir)},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, stderr.decode()


async def until_stopped(pid: int, stopped: bool, within: float = 10.0) -> None:
    """Signals are delivered asynchronously: re-read /proc until the state shows it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (healthcheck.process_state(pid) == "T") != stopped:
        assert loop.time() < deadline, f"pid {pid} never {'stopped' if stopped else 'resumed'}"
        await asyncio.sleep(0.01)


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeDiscord, FakeSegmind]]:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        yield discord, segmind


async def test_healthy_only_while_a_live_bot_holds_its_store(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    data = tmp_path / "data"
    code, why = await check(data)
    assert code == 1
    assert "not started" in why
    proc = await start_bot(discord, segmind, data)
    try:
        await discord.wait_for(lambda: discord.connected, 20)
        assert await check(data) == (0, "")
        proc.send_signal(signal.SIGSTOP)  # frozen: still holds the lock, does nothing
        await until_stopped(proc.pid, True)
        code, why = await check(data)
        assert code == 1
        assert "stopped or dead" in why
        proc.send_signal(signal.SIGCONT)
        await until_stopped(proc.pid, False)
        assert await check(data) == (0, "")
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)
        code, _ = await stop(proc)
    assert code == 0
    code, why = await check(data)
    assert code == 1
    assert "nobody holds" in why  # the lock file stays; its holder is gone
    assert (data / "jobs.lock").exists()


def test_healthcheck_with_postgresql_needs_the_metrics_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No lock file to read with DATABASE_URL: unhealthy, and the line says what to set."""
    monkeypatch.delenv("METRICS_PORT", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://voice:secret@db/voiceclone")
    assert healthcheck.main() == 1
    err = capsys.readouterr().err
    assert "set METRICS_PORT" in err
    assert "secret" not in err


def test_the_scale_compose_file_runs_each_shard_once_on_one_database() -> None:
    document = yaml.safe_load((ROOT / "compose.scale.yml").read_text())
    bots = {name: s for name, s in document["services"].items() if name.startswith("bot-")}
    secrets = {"DISCORD_TOKEN": "t", "SEGMIND_API_KEY": "k"}  # from .env
    settings = [
        load_settings({**s["environment"], **secrets}, dotenv_path=None) for s in bots.values()
    ]
    assert len(bots) >= 2
    assert len({s.database_url.get() for s in settings}) == 1  # one database
    assert {s.shard_count for s in settings} == {len(bots)}
    assert sorted(i for s in settings for i in s.shard_ids) == list(range(len(bots)))
    assert all(s.metrics_port for s in settings)  # the health check needs /healthz
    assert all(s["depends_on"]["postgres"]["condition"] == "service_healthy" for s in bots.values())
    # Each process its own data directory, all locked down as the one-process file is.
    assert len({s["volumes"][0] for s in bots.values()}) == len(bots)
    assert all(s["read_only"] is True and s["cap_drop"] == ["ALL"] for s in bots.values())
