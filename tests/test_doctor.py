"""`python -m bot check` against the loopback fakes: each problem found and named with its
fix, nothing spent (no submit, no gateway connection), no secret in the report."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.doctor import Check, Status, collect, exit_status, render
from bot.doctor.permissions import INVITE_PERMISSIONS
from bot.store.migrations import MIGRATIONS
from bot.store.pg import PostgresJobStore
from bot.store.pg.schema import MIGRATIONS as PG_MIGRATIONS
from bot.store.sqlite import SqliteJobStore
from tests.fakes.discord import (
    ATTACH_FILES,
    CONNECT,
    DEFAULT_BOT_PERMISSIONS,
    SEND_VOICE_MESSAGES,
    SPEAK,
    FakeDiscord,
)
from tests.fakes.segmind import FAKE_API_KEY, FakeSegmind, Injection
from tests.harness import NO_FAIR_USE, bot_settings
from tests.proc import ROOT


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeDiscord, FakeSegmind]]:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        yield discord, segmind


async def doctor(
    discord: FakeDiscord, segmind: FakeSegmind, data_dir: Path, **extra: str
) -> tuple[list[Check], str]:
    """The checks, and the report rendered without the secret scrubbing: a secret that
    reached a check's text would show."""
    settings = bot_settings(data_dir, segmind, discord, **extra)
    with discord.patch_discord_py():
        checks = await collect(settings)
    return checks, render(checks, fancy=False)


def named(checks: list[Check], prefix: str) -> list[Check]:
    found = [c for c in checks if c.name.startswith(prefix)]
    assert found, f"no check named {prefix!r} in {checks}"
    return found


def one(checks: list[Check], prefix: str) -> Check:
    [check] = named(checks, prefix)
    return check


def assert_no_secret(text: str, discord: FakeDiscord) -> None:
    assert discord.token not in text
    assert FAKE_API_KEY not in text


def restrict_bot(discord: FakeDiscord, permissions: int) -> None:
    """Swap the bot's role for one granting exactly `permissions` (as an admin editing it)."""
    [bot_role] = discord.guild(discord.guild_id).members[discord.bot_user_id]
    discord.revoke_role(discord.bot_user_id, bot_role)
    discord.grant_role(discord.bot_user_id, discord.add_role("limited", permissions=permissions))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_all_good_passes_and_spends_nothing(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    checks, text = await doctor(
        discord, segmind, tmp_path / "data", ALLOWED_GUILD_IDS=str(discord.guild_id)
    )
    assert exit_status(checks) == 0, text
    # The two warnings: the fake's commands are not registered until a bot has started,
    # and the fake is not on api.segmind.com.
    warned = [c.name for c in checks if c.status is not Status.OK]
    assert warned == ["Slash commands", "Segmind workflow URL"], text
    assert "accepted: the bot is VoiceClone" in one(checks, "Discord token").message
    assert f"id {discord.application_id}" in one(checks, "Discord application").message
    assert "every permission" in one(checks, "Server 'VoiceClone Test Server'").message
    assert "balance 12.5 credits" in one(checks, "Segmind API key").message
    assert "libopus" in one(checks, "Voice features").message
    assert text.endswith("Ready to run, with 2 warnings\n")
    # Nothing spent, nothing joined: one credits call, REST reads only, no gateway.
    assert [r.kind for r in segmind.requests] == ["credits"]
    assert segmind.count("submit") == 0
    assert {r.method for r in discord.requests} == {"GET"}
    assert discord.gateway_connections == []
    assert_no_secret(text, discord)


async def test_too_few_shards_fails_with_the_count_discord_recommends(tmp_path: Path) -> None:
    async with FakeDiscord(shards=3) as discord, FakeSegmind() as segmind:
        checks, text = await doctor(discord, segmind, tmp_path / "data")
        shards = one(checks, "Shards")
        assert shards.status is Status.FAIL, text
        assert "recommends 3" in shards.message
        assert shards.fix == "set SHARD_COUNT=3"
        checks, _ = await doctor(discord, segmind, tmp_path / "data", SHARD_COUNT="3")
        assert one(checks, "Shards").status is Status.OK


async def test_registered_commands_and_a_public_bot(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    """With no ALLOWED_GUILD_IDS a public bot can be added anywhere: a warning, not a fail."""
    discord, segmind = fakes
    url = f"{discord.api_base}/applications/{discord.application_id}/guilds/{discord.guild_id}"
    command = {"name": "speak", "description": "Speak", "type": 1}
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bot {discord.token}"}
        async with http.put(f"{url}/commands", json=[command], headers=headers) as answer:
            assert answer.status == 200
    checks, _text = await doctor(discord, segmind, tmp_path / "data")
    assert exit_status(checks) == 0
    assert one(checks, "Slash commands").message == f"1 registered in server {discord.guild_id}"
    app = one(checks, "Discord application")
    assert app.status is Status.WARN
    assert "ALLOWED_GUILD_IDS" in app.message
    assert "ALLOWED_GUILD_IDS" in app.fix


async def test_wrong_discord_token(fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path) -> None:
    discord, segmind = fakes
    wrong = "MTIzNDU2Nzg5MDEyMzQ1Njc4.Wr0ng.not-the-right-token-at-all-0123456789"
    checks, text = await doctor(discord, segmind, tmp_path / "data", DISCORD_TOKEN=wrong)
    assert exit_status(checks) == 1
    token = one(checks, "Discord token")
    assert token.status is Status.FAIL
    assert token.message == "DISCORD_TOKEN was rejected (HTTP 401)"
    assert "Reset Token" in token.fix
    assert wrong not in text
    assert one(checks, "Segmind API key").status is Status.OK  # the rest still ran


async def test_discord_unreachable_is_one_clear_line(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    gone = FakeDiscord()
    await gone.start()
    await gone.close()  # its port now refuses connections
    settings = bot_settings(tmp_path / "data", segmind, discord)
    with gone.patch_discord_py():
        checks = await collect(settings)
    assert exit_status(checks) == 1
    [token] = [c for c in checks if c.name.startswith("Discord")]
    assert token.status is Status.FAIL
    assert token.message == "Discord could not be reached (ClientConnectorError)"
    assert one(checks, "Segmind API key").status is Status.OK


async def test_an_unusable_answer_is_a_line_not_a_traceback(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    discord, segmind = fakes
    discord.inject_error("GET", r"/oauth2/applications/@me$", 200, message="no id here")

    def broken(data_dir: Path, sqlite: bool = True) -> list[Check]:
        raise RuntimeError(f"a bug that mentions {discord.token}")

    monkeypatch.setattr("bot.doctor.local_checks", broken)
    checks, text = await doctor(discord, segmind, tmp_path / "data")
    assert exit_status(checks) == 1
    assert one(checks, "Discord application").message == (
        "Discord answered HTTP 200 to GET /oauth2/applications/@me"
    )
    assert one(checks, "Local checks").message == "the check itself failed (RuntimeError)"
    assert_no_secret(text, discord)


async def test_secrets_stay_out_even_when_an_error_body_echoes_them(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    discord.inject_error("GET", r"/users/@me$", 401, message=f"bad token {discord.token}")
    body = {"error": f"invalid key {FAKE_API_KEY}", "key": FAKE_API_KEY}
    segmind.inject("credits", Injection(status=401, body=body))
    checks, text = await doctor(discord, segmind, tmp_path / "data")
    assert exit_status(checks) == 1
    assert one(checks, "Discord token").message == "DISCORD_TOKEN was rejected (HTTP 401)"
    assert one(checks, "Segmind API key").message == "SEGMIND_API_KEY was rejected (HTTP 401)"
    assert_no_secret(text, discord)
    assert_no_secret(repr(checks), discord)


@pytest.mark.parametrize("status", [401, 403])
async def test_wrong_segmind_key(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path, status: int
) -> None:
    discord, segmind = fakes
    extra = {"SEGMIND_API_KEY": "sk-wrong-key-0000000000"} if status == 401 else {}
    if status == 403:
        segmind.inject("credits", Injection(status=403))
    checks, text = await doctor(discord, segmind, tmp_path / "data", **extra)
    assert exit_status(checks) == 1
    key = one(checks, "Segmind API key")
    assert (key.status, key.message) == (
        Status.FAIL,
        f"SEGMIND_API_KEY was rejected (HTTP {status})",
    )
    assert "api-keys" in key.fix
    assert "sk-wrong-key" not in text
    assert segmind.count("submit") == 0


async def test_segmind_unreachable_is_one_clear_line(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    url = f"http://127.0.0.1:{closed_port()}/workflows/x-v1"
    checks, text = await doctor(discord, segmind, tmp_path / "data", SEGMIND_WORKFLOW_URL=url)
    assert exit_status(checks) == 1
    key = one(checks, "Segmind API key")
    assert key.status is Status.FAIL
    assert key.message.startswith("Segmind could not be reached at 127.0.0.1:")
    assert "Traceback" not in text
    assert one(checks, "Segmind workflow URL").status is Status.WARN  # not api.segmind.com


async def test_missing_core_permission_fails_with_the_fix(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    restrict_bot(discord, DEFAULT_BOT_PERMISSIONS & ~ATTACH_FILES & ~SPEAK)
    checks, _text = await doctor(discord, segmind, tmp_path / "data")
    assert exit_status(checks) == 1
    server = one(checks, "Server ")
    assert server.status is Status.FAIL
    assert server.message == "the bot lacks Attach Files (and for the voice features: Speak)"
    assert str(INVITE_PERMISSIONS) in server.fix
    assert f"client_id={discord.application_id}" in server.fix


async def test_missing_voice_permissions_only_warn(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    restrict_bot(discord, DEFAULT_BOT_PERMISSIONS & ~(SEND_VOICE_MESSAGES | CONNECT))
    checks, _ = await doctor(discord, segmind, tmp_path / "data")
    assert exit_status(checks) == 0
    server = one(checks, "Server ")
    assert server.status is Status.WARN
    assert server.message.startswith("the bot lacks Send Voice Messages, Connect:")


async def test_bot_not_in_a_listed_guild(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    stranger = 123456789012345678
    checks, _ = await doctor(
        discord,
        segmind,
        tmp_path / "data",
        ALLOWED_GUILD_IDS=f"{discord.guild_id},{stranger}",
    )
    assert exit_status(checks) == 1
    servers = named(checks, "Server ")
    assert [c.status for c in servers] == [Status.OK, Status.FAIL]
    assert servers[1].name == f"Server {stranger}"
    assert servers[1].message == "the bot is not in this server (listed in ALLOWED_GUILD_IDS)"
    assert "invite it" in servers[1].fix


async def test_data_dir_under_a_file(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    (tmp_path / "file").write_text("not a directory")
    checks, _ = await doctor(discord, segmind, tmp_path / "file" / "data")
    assert exit_status(checks) == 1
    data = one(checks, "Data directory")
    assert data.status is Status.FAIL
    assert "BOT_DATA_DIR=" in data.message
    assert "is a file" in data.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only directory")
async def test_data_dir_not_writable(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o500)
    try:
        checks, _ = await doctor(discord, segmind, data_dir)
    finally:
        data_dir.chmod(0o700)
    data = one(checks, "Data directory")
    assert data.status is Status.FAIL
    assert data.message.endswith("is not writable (Permission denied)")


async def test_newer_schema_fails(fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path) -> None:
    discord, segmind = fakes
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    checks, _ = await doctor(discord, segmind, data_dir)
    assert exit_status(checks) == 1
    schema = one(checks, "Job database")
    assert schema.status is Status.FAIL
    assert f"schema version {len(MIGRATIONS) + 1}, newer than this bot's" in schema.message
    assert "move the file aside" in schema.fix


async def test_older_schema_is_upgraded_later_and_garbage_fails(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        db.execute("PRAGMA user_version = 1")
    checks, _ = await doctor(discord, segmind, data_dir)
    schema = one(checks, "Job database")
    assert (schema.status, schema.message) == (
        Status.OK,
        f"schema version 1; upgraded to {len(MIGRATIONS)} at the next start",
    )
    (data_dir / "jobs.sqlite3").write_bytes(b"not a database at all" * 100)
    checks, _ = await doctor(discord, segmind, data_dir)
    schema = one(checks, "Job database")
    assert schema.status is Status.FAIL
    assert schema.message.endswith("cannot be read (file is not a database)")


async def test_a_running_store_is_fine_and_keeps_its_lock(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    data_dir = tmp_path / "data"
    async with SqliteJobStore(data_dir) as store:
        checks, _ = await doctor(discord, segmind, data_dir)
        assert store.problem() is None
        assert await store.count_by_state() is not None  # still answering
    schema = one(checks, "Job database")
    assert schema.status is Status.OK
    assert schema.message == (
        f"schema version {len(MIGRATIONS)}, this bot's; a running bot has it open (fine)"
    )
    # Stopped: read without leaving a -wal or -shm behind (made by the checking user, they
    # could lock the bot out of its own database).
    files = sorted(p.name for p in data_dir.iterdir())
    checks, _ = await doctor(discord, segmind, data_dir)
    assert one(checks, "Job database").message == f"schema version {len(MIGRATIONS)}, this bot's"
    assert sorted(p.name for p in data_dir.iterdir()) == files


async def check_process(
    discord: FakeDiscord, segmind: FakeSegmind, data_dir: Path, **settings: str
) -> tuple[int, str, str]:
    """`python -m bot check` in a child process (tests.botproc points it at the fake)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": discord.token,
        "SEGMIND_API_KEY": FAKE_API_KEY,
        "SEGMIND_WORKFLOW_URL": segmind.workflow_url,
        "BOT_DATA_DIR": str(data_dir),
        "DISCORD_GUILD_IDS": str(discord.guild_id),
        **NO_FAIR_USE,
        **settings,
    }
    env = {k: v for k, v in env.items() if v}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.botproc",
        discord.api_base,
        discord.gateway_url,
        discord.base_url,
        "check",
        env=env,
        cwd=data_dir.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_as_a_process(fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path) -> None:
    """Exit 0 with warnings, 1 on a failure, 2 on a configuration error; plain text when
    stdout is not a terminal; no secret anywhere."""
    discord, segmind = fakes
    code, out, err = await check_process(discord, segmind, tmp_path / "data")
    assert (code, err) == (0, ""), out
    lines = out.splitlines()
    assert lines[0].startswith("OK   Discord token: accepted")
    assert all(line[:5] in ("OK   ", "WARN ", "     ") for line in lines[:-1]), out
    assert "✅" not in out
    assert "❌" not in out
    assert lines[-1].startswith("Ready to run")

    code, out, err = await check_process(
        discord, segmind, tmp_path / "data", SEGMIND_API_KEY="sk-wrong-key-0000000000"
    )
    assert code == 1
    assert "FAIL Segmind API key: SEGMIND_API_KEY was rejected (HTTP 401)" in out
    assert "sk-wrong-key" not in out + err
    assert_no_secret(out + err, discord)

    url = f"http://127.0.0.1:{closed_port()}/workflows/x-v1"
    code, out, err = await check_process(
        discord, segmind, tmp_path / "data", SEGMIND_WORKFLOW_URL=url
    )
    assert code == 1
    assert "FAIL Segmind API key: Segmind could not be reached at 127.0.0.1:" in out
    assert err == ""  # the client's retry warning stays out of the report

    code, out, err = await check_process(discord, segmind, tmp_path / "data", DISCORD_TOKEN="")
    assert code == 2
    assert "configuration error" in err
    assert "DISCORD_TOKEN" in err
    assert segmind.count("submit") == 0
    assert discord.gateway_connections == []


def test_report_symbols_on_a_terminal() -> None:
    checks = [
        Check("A", Status.OK, "fine"),
        Check("B", Status.WARN, "hmm", "do this"),
        Check("C", Status.FAIL, "broken", "do that"),
    ]
    text = render(checks, fancy=True, secrets=("s3cret-value",))
    assert text.splitlines() == [
        "✅ A: fine",
        "⚠️  B: hmm",
        "     fix: do this",
        "❌ C: broken",
        "     fix: do that",
        "Not ready: 1 problem to fix, 1 warning",
    ]
    scrubbed = render(
        [Check("A", Status.FAIL, "has s3cret-value in it")], fancy=False, secrets=("s3cret-value",)
    )
    assert "s3cret-value" not in scrubbed
    assert "[redacted]" in scrubbed


async def test_postgresql_schema_and_its_errors(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path, pg_database: str
) -> None:
    """With DATABASE_URL the job database is PostgreSQL's, read-only; BOT_DATA_DIR has no
    job file to look at."""
    discord, segmind = fakes
    data_dir = tmp_path / "data"
    checks, _ = await doctor(discord, segmind, data_dir, DATABASE_URL=pg_database)
    assert one(checks, "Job database").message.endswith(
        "empty; the bot creates its tables at start"
    )
    async with PostgresJobStore(pg_database):
        checks, _ = await doctor(discord, segmind, data_dir, DATABASE_URL=pg_database)
    schema = one(checks, "Job database")
    assert schema.status is Status.OK
    assert schema.message.endswith(f"schema version {len(PG_MIGRATIONS)}, this bot's")
    assert exit_status(checks) == 0

    wrong = pg_database.replace("postgres:@", "postgres:hunter2@").replace("/t_", "/missing_")
    checks, report = await doctor(discord, segmind, data_dir, DATABASE_URL=wrong)
    schema = one(checks, "Job database")
    assert schema.status is Status.FAIL
    assert "does not exist" in schema.message
    assert "hunter2" not in report


async def test_shard_ids_without_a_shared_database_warn(
    fakes: tuple[FakeDiscord, FakeSegmind], tmp_path: Path
) -> None:
    discord, segmind = fakes
    checks, _ = await doctor(discord, segmind, tmp_path / "data", SHARD_COUNT="2", SHARD_IDS="1")
    sharing = one(checks, "Several processes")
    assert sharing.status is Status.WARN
    assert "SHARD_IDS=1 of SHARD_COUNT=2 without DATABASE_URL" in sharing.message
    assert "DATABASE_URL" in sharing.fix
