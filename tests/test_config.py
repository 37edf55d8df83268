"""Settings: defaults, validation, .env merging, and that secrets never print."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import (
    DEFAULT_WORKFLOW_URL,
    MAX_OUTPUT_BYTES,
    MIB,
    ConfigError,
    HostPort,
    load_settings,
)

REQUIRED = {"DISCORD_TOKEN": "discord-secret-token", "SEGMIND_API_KEY": "sg-secret-key"}


def load(**extra: str) -> object:
    return load_settings({**REQUIRED, **extra}, dotenv_path=None)


def test_defaults() -> None:
    s = load_settings(REQUIRED, dotenv_path=None)
    assert s.segmind_workflow_url == DEFAULT_WORKFLOW_URL
    assert s.segmind_poll_interval == 7.0
    assert s.segmind_timeout == 600.0
    assert s.segmind_rpm == 50
    assert s.segmind_max_concurrent == 10
    assert s.segmind_max_output_bytes == 25 * 1024 * 1024
    assert s.segmind_output_hosts == ()
    assert s.bot_data_dir == Path("data")
    assert s.log_level == "INFO"
    assert s.segmind_api_key.get() == "sg-secret-key"


def test_values_parsed() -> None:
    s = load_settings(
        {
            **REQUIRED,
            "SEGMIND_POLL_INTERVAL": "0.5",
            "SEGMIND_RPM": "5",
            "SEGMIND_OUTPUT_HOSTS": "cdn.example.org, 127.0.0.1:8080",
            "LOG_LEVEL": "debug",
        },
        dotenv_path=None,
    )
    assert s.segmind_poll_interval == 0.5
    assert s.segmind_rpm == 5
    assert s.segmind_output_hosts == (HostPort("cdn.example.org"), HostPort("127.0.0.1", 8080))
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("SEGMIND_POLL_INTERVAL", "soon", "number of seconds"),
        ("SEGMIND_POLL_INTERVAL", "nan", "number of seconds"),
        ("SEGMIND_POLL_INTERVAL", "0", "between"),
        ("SEGMIND_TIMEOUT", "-1", "between"),
        ("SEGMIND_RPM", "2.5", "whole number"),
        ("SEGMIND_MAX_CONCURRENT", "0", "between"),
        ("SEGMIND_WORKFLOW_URL", "ftp://x/y", "http(s) URL"),
        ("SEGMIND_OUTPUT_HOSTS", "http://evil/", "host"),
        ("SEGMIND_OUTPUT_HOSTS", "h:99999", "port"),
        ("LOG_LEVEL", "LOUD", "one of"),
    ],
)
def test_invalid_values_name_the_variable(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(**{name: value})
    assert info.value.name == name
    assert str(info.value).startswith(name)
    assert fragment in str(info.value)


@pytest.mark.parametrize("value", [str(100 * MIB + 1), str(1024 * MIB), str(2 * 1024 * MIB)])
def test_output_cap_has_a_ceiling_under_discord_and_sqlite_limits(value: str) -> None:
    """Over Discord's largest upload limit (100 MiB) a result can only be linked, and a
    job holds it 2-3 times in memory and in one SQLite row (1e9 bytes at most)."""
    with pytest.raises(ConfigError) as info:
        load(SEGMIND_MAX_OUTPUT_BYTES=value)
    assert str(info.value) == (
        f"SEGMIND_MAX_OUTPUT_BYTES: must be between 1024 and 104857600, got {value!r}"
    )


def test_output_cap_up_to_100_mib_is_accepted() -> None:
    s = load_settings({**REQUIRED, "SEGMIND_MAX_OUTPUT_BYTES": str(100 * MIB)}, dotenv_path=None)
    assert s.segmind_max_output_bytes == MAX_OUTPUT_BYTES == 100 * MIB


@pytest.mark.parametrize("missing", ["DISCORD_TOKEN", "SEGMIND_API_KEY"])
def test_required_secrets(missing: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ConfigError, match=f"^{missing}: is required"):
        load_settings(env, dotenv_path=None)


def test_secret_never_printed() -> None:
    s = load_settings(REQUIRED, dotenv_path=None)
    text = repr(s) + str(s)
    assert "discord-secret-token" not in text
    assert "sg-secret-key" not in text


def test_dotenv_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "DISCORD_TOKEN=from-file\nSEGMIND_API_KEY=file-key\nSEGMIND_RPM=5\nSEGMIND_TIMEOUT=30\n"
    )
    s = load_settings({"SEGMIND_RPM": "7"}, dotenv_path=env_file)
    assert s.discord_token.get() == "from-file"
    assert s.segmind_rpm == 7  # the environment wins
    assert s.segmind_timeout == 30.0


def test_cli_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DISCORD_TOKEN": "tok-should-not-print", "SEGMIND_RPM": "x"}
    proc = subprocess.run(
        [sys.executable, "-m", "bot"],
        env={
            **env,
            "SEGMIND_API_KEY": "key-should-not-print",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "SEGMIND_RPM" in lines[0]
    assert "Traceback" not in proc.stderr
    assert "should-not-print" not in proc.stderr + proc.stdout


def test_fair_use_defaults_suit_a_small_server() -> None:
    s = load_settings(REQUIRED, dotenv_path=None)
    assert (s.user_cooldown_seconds, s.user_max_in_flight, s.user_daily_chars) == (30, 2, 5000)
    assert (s.guild_daily_jobs, s.guild_daily_chars, s.global_daily_jobs) == (100, 20000, 300)
    assert s.require_consent is True
    assert s.allowed_guild_ids == ()
    assert s.credits_pause_seconds == 600
    assert (s.notify_owner_dm, s.audit_store_text) == (False, False)


def test_fair_use_values_parsed() -> None:
    s = load_settings(
        {
            **REQUIRED,
            "USER_MAX_IN_FLIGHT": "0",
            "REQUIRE_CONSENT": "off",
            "NOTIFY_OWNER_DM": "Yes",
            "ALLOWED_GUILD_IDS": " 12, 34 ,12",
        },
        dotenv_path=None,
    )
    assert s.user_max_in_flight == 0
    assert s.require_consent is False
    assert s.notify_owner_dm is True
    assert s.allowed_guild_ids == (12, 34)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("REQUIRE_CONSENT", "maybe", "must be true or false"),
        ("ALLOWED_GUILD_IDS", "12,abc", "'abc' is not a numeric id"),
        ("USER_DAILY_CHARS", "-1", "between 0"),
        ("GLOBAL_DAILY_JOBS", "many", "0 = no limit"),
        ("USER_COOLDOWN_SECONDS", "nan", "a number of seconds"),
    ],
)
def test_fair_use_errors_name_the_variable(name: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=name) as caught:
        load(**{name: value})
    assert problem in str(caught.value)


def test_shard_ids_each_below_the_count() -> None:
    s = load_settings({**REQUIRED, "SHARD_COUNT": "4", "SHARD_IDS": "2, 3,2"}, dotenv_path=None)
    assert (s.shard_count, s.shard_ids) == (4, (2, 3))
    assert load_settings(REQUIRED, dotenv_path=None).shard_ids == ()
    with pytest.raises(ConfigError, match=r"SHARD_IDS.*shard 4 is not below SHARD_COUNT=4"):
        load_settings({**REQUIRED, "SHARD_COUNT": "4", "SHARD_IDS": "1,4"}, dotenv_path=None)
