"""Settings from the environment and `.env`, validated once at start-up.

Every problem becomes a `ConfigError` naming the variable and what is wrong, so
`python -m bot` can print one line and exit 2. Secrets are wrapped in `Secret`,
whose repr and str never show the value.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values

DEFAULT_WORKFLOW_URL = "https://api.segmind.com/workflows/69b7a526e90fc09c1a796167-v13"
MIB = 1024 * 1024
# The largest result audio an operator may allow. Discord's largest upload limit (a
# server at boost level 3) is 100 MiB, so a bigger file could never be posted, only
# linked; a job holds its audio two to three times in memory (the download, the stored
# blob, the upload) and the store keeps it in one SQLite row, whose default limit is
# 1e9 bytes. 100 MiB stays well inside both.
MAX_OUTPUT_BYTES = 100 * MIB
# The languages ElevenLabs' multilingual models speak.
DEFAULT_LANGUAGES = (
    "en", "ja", "zh", "de", "hi", "fr", "ko", "pt", "it", "es", "id", "nl", "tr", "fil", "pl",
    "sv", "bg", "ro", "ar", "cs", "el", "fi", "hr", "ms", "sk", "da", "ta", "uk", "ru", "hu",
    "no", "vi",
)  # fmt: skip
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")

T = TypeVar("T")


class ConfigError(Exception):
    """A setting is missing or invalid. The message names the variable, never its value
    when the variable is a secret."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class Secret:
    """A string that does not print itself: safe to log the settings object."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class HostPort:
    """An operator-named output host; `port` None means any port."""

    host: str
    port: int | None = None

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    discord_token: Secret
    segmind_api_key: Secret
    segmind_workflow_url: str = DEFAULT_WORKFLOW_URL
    segmind_poll_interval: float = 7.0
    segmind_timeout: float = 600.0
    segmind_rpm: int = 50
    segmind_max_concurrent: int = 10
    segmind_max_output_bytes: int = 25 * MIB
    segmind_output_hosts: tuple[HostPort, ...] = ()
    bot_data_dir: Path = field(default_factory=lambda: Path("data"))
    log_level: str = "INFO"
    discord_guild_ids: tuple[int, ...] = ()
    max_text_chars: int = 1000
    max_sample_bytes: int = 10 * MIB
    supported_languages: tuple[str, ...] = DEFAULT_LANGUAGES
    progress_update_seconds: float = 3.0
    job_retention_days: float = 7.0
    # Fair use (0 = no limit). Per-user limits count per guild; "daily" is the UTC day.
    user_cooldown_seconds: float = 30.0
    user_max_in_flight: int = 2
    user_daily_chars: int = 5000
    guild_daily_jobs: int = 100
    guild_daily_chars: int = 20000
    global_daily_jobs: int = 300
    require_consent: bool = True
    allowed_guild_ids: tuple[int, ...] = ()  # empty: every guild the bot is in
    credits_pause_seconds: float = 600.0
    notify_owner_dm: bool = False
    audit_store_text: bool = False


def _parse_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError
    return value


def _parse_hosts(raw: str) -> tuple[HostPort, ...]:
    hosts: list[HostPort] = []
    for item in raw.split(","):
        entry = item.strip().lower()
        if not entry:
            continue
        if "/" in entry or "@" in entry or entry.startswith("["):
            raise ValueError(f"'{entry}' is not a host or host:port")
        host, sep, port_text = entry.partition(":")
        port: int | None = None
        if sep:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"'{entry}' has an invalid port")
            port = int(port_text)
        if not host:
            raise ValueError(f"'{entry}' has no host")
        hosts.append(HostPort(host, port))
    return tuple(hosts)


class _Reader:
    """Reads and validates one variable at a time from a merged mapping."""

    def __init__(self, env: Mapping[str, str | None]) -> None:
        self._env = env

    def raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def secret(self, name: str) -> Secret:
        value = self.raw(name)
        if value is None:
            raise ConfigError(name, "is required but not set (see .env.example)")
        if any(ch.isspace() for ch in value):
            raise ConfigError(name, "contains whitespace; paste the value without spaces")
        return Secret(value)

    def flag(self, name: str, default: bool) -> bool:
        raw = self.raw(name)
        if raw is None:
            return default
        if raw.lower() in TRUE_WORDS:
            return True
        if raw.lower() in FALSE_WORDS:
            return False
        raise ConfigError(name, f"must be true or false, got {raw!r}")

    def ids(self, name: str) -> tuple[int, ...]:
        found: list[int] = []
        for item in (self.raw(name) or "").split(","):
            if item.strip():
                if not item.strip().isdigit():
                    raise ConfigError(name, f"{item.strip()!r} is not a numeric id")
                found.append(int(item.strip()))
        return tuple(dict.fromkeys(found))

    def limit(self, name: str, default: int, what: str) -> int:
        return self.number(
            name,
            default,
            int,
            minimum=0,
            maximum=10**9,
            what=f"a whole number of {what} (0 = no limit)",
        )

    def seconds(
        self, name: str, default: float, *, minimum: float, maximum: float, what: str = ""
    ) -> float:
        return self.number(
            name,
            default,
            _parse_float,
            minimum=minimum,
            maximum=maximum,
            what=what or "a number of seconds",
        )

    def number(
        self,
        name: str,
        default: T,
        parse: Callable[[str], T],
        *,
        minimum: float,
        maximum: float,
        what: str,
    ) -> T:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = parse(raw)
        except ValueError:
            raise ConfigError(name, f"must be {what}, got {raw!r}") from None
        if not minimum <= value <= maximum:  # type: ignore[operator]
            raise ConfigError(
                name, f"must be between {_plain(minimum)} and {_plain(maximum)}, got {raw!r}"
            )
        return value


def _plain(bound: float) -> str:
    """A bound as an operator types it: 104857600, not 1.04858e+08."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike[str] | None = ".env"
) -> Settings:
    """Merge `.env` (if present) under the process environment and validate."""
    merged: dict[str, str | None] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        merged.update(dotenv_values(dotenv_path))
    merged.update(os.environ if environ is None else environ)
    env = _Reader(merged)

    discord_token = env.secret("DISCORD_TOKEN")
    api_key = env.secret("SEGMIND_API_KEY")

    workflow_url = env.raw("SEGMIND_WORKFLOW_URL") or DEFAULT_WORKFLOW_URL
    parts = urlsplit(workflow_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("SEGMIND_WORKFLOW_URL", "must be an http(s) URL")

    hosts_raw = env.raw("SEGMIND_OUTPUT_HOSTS") or ""
    try:
        output_hosts = _parse_hosts(hosts_raw)
    except ValueError as exc:
        raise ConfigError(
            "SEGMIND_OUTPUT_HOSTS", f"{exc} (comma-separated host or host:port)"
        ) from None

    log_level = (env.raw("LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError("LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}")

    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    if env.raw("SUPPORTED_LANGUAGES"):
        languages = tuple(
            dict.fromkeys(
                x.strip().lower()
                for x in (env.raw("SUPPORTED_LANGUAGES") or "").split(",")
                if x.strip()
            )
        )
        bad = [code for code in languages if not code.replace("-", "").isalpha() or len(code) > 10]
        if bad or not languages:
            raise ConfigError(
                "SUPPORTED_LANGUAGES", "must be comma-separated language codes like en,hi,fr"
            )

    return Settings(
        discord_token=discord_token,
        segmind_api_key=api_key,
        segmind_workflow_url=workflow_url,
        segmind_poll_interval=env.seconds("SEGMIND_POLL_INTERVAL", 7.0, minimum=0.01, maximum=3600),
        segmind_timeout=env.seconds("SEGMIND_TIMEOUT", 600.0, minimum=1, maximum=86400),
        segmind_rpm=env.number(
            "SEGMIND_RPM",
            50,
            int,
            minimum=0,
            maximum=100_000,
            what="a whole number of requests per minute (0 = no limit)",
        ),
        segmind_max_concurrent=env.number(
            "SEGMIND_MAX_CONCURRENT",
            10,
            int,
            minimum=1,
            maximum=10_000,
            what="a whole number of jobs",
        ),
        segmind_max_output_bytes=env.number(
            "SEGMIND_MAX_OUTPUT_BYTES",
            25 * MIB,
            int,
            minimum=1024,
            maximum=MAX_OUTPUT_BYTES,
            what="a whole number of bytes",
        ),
        segmind_output_hosts=output_hosts,
        bot_data_dir=Path(env.raw("BOT_DATA_DIR") or "data"),
        log_level=log_level,
        discord_guild_ids=env.ids("DISCORD_GUILD_IDS"),
        max_text_chars=env.number(
            "MAX_TEXT_CHARS",
            1000,
            int,
            minimum=1,
            maximum=5000,
            what="a whole number of characters",
        ),
        max_sample_bytes=env.number(
            "MAX_SAMPLE_BYTES",
            10 * MIB,
            int,
            minimum=1024,
            maximum=500 * MIB,
            what="a whole number of bytes",
        ),
        supported_languages=languages,
        job_retention_days=env.number(
            "JOB_RETENTION_DAYS",
            7.0,
            _parse_float,
            minimum=0,
            maximum=3650,
            what="a number of days",
        ),
        progress_update_seconds=env.seconds(
            "PROGRESS_UPDATE_SECONDS", 3.0, minimum=0.05, maximum=600
        ),
        user_cooldown_seconds=env.seconds(
            "USER_COOLDOWN_SECONDS",
            30.0,
            minimum=0,
            maximum=86400,
            what="a number of seconds (0 = no cooldown)",
        ),
        user_max_in_flight=env.limit("USER_MAX_IN_FLIGHT", 2, "jobs"),
        user_daily_chars=env.limit("USER_DAILY_CHARS", 5000, "characters"),
        guild_daily_jobs=env.limit("GUILD_DAILY_JOBS", 100, "jobs"),
        guild_daily_chars=env.limit("GUILD_DAILY_CHARS", 20000, "characters"),
        global_daily_jobs=env.limit("GLOBAL_DAILY_JOBS", 300, "jobs"),
        require_consent=env.flag("REQUIRE_CONSENT", True),
        allowed_guild_ids=env.ids("ALLOWED_GUILD_IDS"),
        credits_pause_seconds=env.seconds("CREDITS_PAUSE_SECONDS", 600.0, minimum=0, maximum=86400),
        notify_owner_dm=env.flag("NOTIFY_OWNER_DM", False),
        audit_store_text=env.flag("AUDIT_STORE_TEXT", False),
    )
