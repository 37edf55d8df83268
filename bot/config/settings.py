"""Every setting, declared once, and the loop that reads them.

A field of `Settings` is a setting: its variable is the field's name in upper case, its
type is the annotation, and `setting(...)` gives its default, its kind (which parses the
text and holds the bounds, see `kinds.py`) and its help. `load_settings`, `.env.example`
and the README's settings table (`python -m bot.config --write`) all come from here, in
this order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, cast, dataclass_transform

from dotenv import dotenv_values

from .kinds import (
    MIB,
    Choice,
    ConfigError,
    DatabaseUrl,
    Directory,
    Flag,
    Host,
    HostPort,
    Hosts,
    HttpUrl,
    Ids,
    Kind,
    Languages,
    Secret,
    SecretText,
    decimal,
    limit,
    whole,
)

DEFAULT_WORKFLOW_URL = "https://api.segmind.com/workflows/69b7a526e90fc09c1a796167-v13"
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
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")

T = TypeVar("T")
C = TypeVar("C")


@dataclass(frozen=True)
class Section:
    """A heading in `.env.example`, before the setting that opens it."""

    title: str
    note: str = ""


@dataclass(frozen=True)
class Spec:
    kind: Kind[Any]
    help: str  # Markdown, lower case, no final period: it is a table cell and a comment
    section: Section | None


def setting(*, default: T, kind: Kind[T], help: str, section: Section | None = None) -> T:
    """An optional setting; mypy checks the default and the kind against the field's type."""
    return field(default=default, metadata={"spec": Spec(kind, help, section)})


def required(*, kind: Kind[T], help: str, section: Section | None = None) -> T:
    """A setting with no default: start-up stops when it is not set."""
    return cast(T, field(metadata={"spec": Spec(kind, help, section)}))


@dataclass_transform(
    frozen_default=True, kw_only_default=True, field_specifiers=(setting, required)
)
def declaration(cls: type[C]) -> type[C]:
    """A frozen keyword-only dataclass whose fields are `setting(...)` and `required(...)`
    (`dataclass_transform` tells mypy which fields have defaults)."""
    return dataclass(frozen=True, kw_only=True)(cls)


def spec(declared: Field[Any]) -> Spec:
    return cast(Spec, declared.metadata["spec"])


def variable(declared: Field[Any]) -> str:
    return declared.name.upper()


@declaration
class Settings:
    discord_token: Secret = required(
        kind=SecretText(),
        help="the bot's token: <https://discord.com/developers/applications> → your app → "
        "**Bot** → **Reset Token**",
        section=Section("Required"),
    )
    segmind_api_key: Secret = required(
        kind=SecretText(),
        help="your Segmind API key, from <https://cloud.segmind.com/console/api-keys>",
    )
    segmind_workflow_url: str = setting(
        default=DEFAULT_WORKFLOW_URL,
        kind=HttpUrl(),
        help='the workflow to run: Segmind\'s "ElevenLabs Voice Clone + Speak" (the `-v13` '
        "suffix is its version)",
        section=Section("Segmind"),
    )
    segmind_poll_interval: float = setting(
        default=7.0,
        kind=decimal("seconds", 0.01, 3600),
        help="least seconds between status checks of a job (fractions allowed); each wait "
        "adds up to 50 % at random so jobs don't poll in lockstep, and busy bots check each "
        "job less often to stay within `SEGMIND_RPM`",
    )
    segmind_timeout: float = setting(
        default=600.0,
        kind=decimal("seconds", 1, 86400),
        help="seconds a job may take at Segmind (from submission) before the bot gives up",
    )
    segmind_rpm: int = setting(
        default=50,
        kind=whole("requests per minute (0 = no limit)", 0, 100_000),
        help="requests per minute to Segmind, all jobs together, submits and status checks "
        "alike (50 = Pro plan; **5 for the Free plan**; 0 = no limit, for Enterprise)",
    )
    segmind_max_concurrent: int = setting(
        default=10,
        kind=whole("jobs", 1, 10_000),
        help="jobs at Segmind at once; the rest wait in line, taking turns between members "
        "(round robin)",
    )
    segmind_max_output_bytes: int = setting(
        default=25 * MIB,
        kind=whole("bytes", 1024, MAX_OUTPUT_BYTES),
        help="largest result audio the bot downloads; the ceiling is Discord's largest upload "
        "limit (a server at boost level 3), as a bigger file could only be linked, and a job "
        "holds its audio 2–3 times in memory and in one SQLite row (whose limit is 1e9 bytes)",
    )
    segmind_output_hosts: tuple[HostPort, ...] = setting(
        default=(),
        kind=Hosts(),
        help="extra hosts the result audio may come from, over http or https (Segmind's own "
        "hosts are always allowed, over https)",
    )
    discord_guild_ids: tuple[int, ...] = setting(
        default=(),
        kind=Ids(),
        help="servers to register the slash commands in instantly, for testing; empty = "
        "register globally (can take up to an hour to appear)",
        section=Section("Discord"),
    )
    shard_count: int = setting(
        default=1,
        kind=whole("shards", 1, 4096),
        help="gateway connections (shards) this process opens; Discord requires one per "
        "2,500 servers (`make check` and the log say when); with several processes, the "
        "total over all of them",
    )
    shard_ids: tuple[int, ...] = setting(
        default=(),
        kind=Ids(),
        help="the shards this process opens, each below SHARD_COUNT (e.g. `0,1`); empty = all "
        'of them. Several processes, each with its own shards, need DATABASE_URL (see "Running '
        'at scale")',
    )
    max_text_chars: int = setting(
        default=1000,
        kind=whole("characters", 1, 5000),
        help="longest text `/speak` accepts, in characters",
    )
    max_sample_bytes: int = setting(
        default=10 * MIB,
        kind=whole("bytes", 1024, 500 * MIB),
        help="largest voice clip `/speak` accepts",
    )
    supported_languages: tuple[str, ...] = setting(
        default=DEFAULT_LANGUAGES,
        kind=Languages(),
        help="language codes `/speak` offers; the default is the languages ElevenLabs' "
        "multilingual models speak",
    )
    progress_update_seconds: float = setting(
        default=3.0,
        kind=decimal("seconds", 0.05, 600),
        help="at most one progress edit per job this often",
    )
    bot_data_dir: Path = setting(
        default=Path("data"),
        kind=Directory(),
        help="where the bot keeps its state: the job database, a lock file and the "
        'command-sync fingerprint (see "What survives a restart" in the README); keep it '
        "across restarts",
        section=Section("Bot"),
    )
    database_url: Secret = setting(
        default=Secret(""),
        kind=DatabaseUrl(),
        help="keep the jobs in PostgreSQL instead of the SQLite file in BOT_DATA_DIR (see "
        '"PostgreSQL" below); the URL may carry a password and is never printed',
    )
    job_lease_seconds: float = setting(
        default=30.0,
        kind=decimal("seconds", 2, 600),
        help="with DATABASE_URL: how long a process's claim on the jobs it drives lasts "
        "(renewed every third of it); the jobs of a process that stops renewing (killed, cut "
        "off) are resumed by another after about this long",
    )
    job_retention_days: float = setting(
        default=7.0,
        kind=decimal("days", 0, 3650),
        help="days to keep finished jobs' records (0 = forever)",
    )
    log_level: str = setting(
        default="INFO",
        kind=Choice(LOG_LEVELS),
        help="the least severe log messages written; secrets are redacted at every level",
    )
    log_format: str = setting(
        default="text",
        kind=Choice(("text", "json"), lower=True),
        help="`text`: one readable line per message; `json`: one JSON object per line (time, "
        "level, logger, message, and `job` when the line is about a job), for log collectors",
    )
    user_cooldown_seconds: float = setting(
        default=30.0,
        kind=decimal("seconds (0 = no cooldown)", 0, 86400),
        help="seconds a member waits between starting two jobs in a server",
        section=Section(
            'Fair use (0 = no limit; per server; "daily" = the UTC day)',
            "Server admins can make the per-member and per-server limits stricter for their "
            "server with /voiceclone limits.",
        ),
    )
    user_max_in_flight: int = setting(
        default=2,
        kind=limit("jobs"),
        help="jobs one member may have running or queued at once in a server",
    )
    user_daily_chars: int = setting(
        default=5000,
        kind=limit("characters"),
        help="characters of text one member may have spoken per day in a server",
    )
    guild_daily_jobs: int = setting(default=100, kind=limit("jobs"), help="jobs per day per server")
    guild_daily_chars: int = setting(
        default=20000, kind=limit("characters"), help="characters per day per server"
    )
    global_daily_jobs: int = setting(
        default=300,
        kind=limit("jobs"),
        help="jobs per day across all servers: the hard cap on your Segmind bill",
    )
    require_consent: bool = setting(
        default=True,
        kind=Flag(),
        help="ask each member to confirm consent before their first clone in a server "
        "(server admins can turn it off or on for their server)",
    )
    allowed_guild_ids: tuple[int, ...] = setting(
        default=(),
        kind=Ids(),
        help="servers the bot works in; empty = every server it is invited to",
    )
    credits_pause_seconds: float = setting(
        default=600.0,
        kind=decimal("seconds", 0, 86400),
        help="after Segmind says the account is out of credits, refuse new jobs this long "
        "before trying again",
    )
    notify_owner_dm: bool = setting(
        default=False,
        kind=Flag(),
        help="also DM the bot's owner (once) when the Segmind account runs out of credits",
    )
    audit_store_text: bool = setting(
        default=False,
        kind=Flag(),
        help="keep each job's text in the audit log after it finishes (off: only its length "
        "is kept)",
    )

    voices_per_member: int = setting(
        default=5,
        kind=whole("voices", 0, 1000),
        help="saved voices (`/voice save`) one member may keep; 0 turns saved voices off",
        section=Section(
            "Saved voices, the voice owner's consent and the result cache",
            "A saved voice's clip is kept in the data directory and at Segmind's storage until "
            "its owner deletes it or opts out.",
        ),
    )
    require_owner_consent: bool = setting(
        default=True,
        kind=Flag(),
        help='"Speak in this voice" on another member\'s clip waits for that member to allow '
        "it (server admins can turn it off or on for their server with /voiceclone consent)",
    )
    owner_consent_timeout_seconds: float = setting(
        default=600.0,
        kind=decimal("seconds", 10, 86400),
        help="how long a job waits for the voice owner's answer before it is dropped, at no cost",
    )
    result_cache_days: float = setting(
        default=7.0,
        kind=decimal("days (0 = off)", 0, 3650),
        help="answer a request identical to an earlier one (same voice, text and language) "
        "from the stored result, with no Segmind request, for this many days",
    )
    result_cache_mb: int = setting(
        default=200,
        kind=whole("MiB", 1, 1_000_000),
        help="most disk space the result cache may use; the oldest results go first",
    )

    voice_idle_seconds: float = setting(
        default=120.0,
        kind=decimal("seconds", 5, 86400),
        help="how long the bot stays in a voice channel with nothing left to play "
        "(it leaves at once when the channel empties)",
        section=Section(
            "Voice messages and voice channels",
            "Members choose per request (`/speak as:` and `play:`); server admins set the "
            "defaults with /voiceclone delivery.",
        ),
    )

    metrics_port: int = setting(
        default=0,
        kind=whole("port (0 = off)", 0, 65535),
        help="serve `/healthz` and `/metrics` (Prometheus) over HTTP on this port; 0 = no "
        "HTTP server. The Docker health check then asks `/healthz`",
        section=Section(
            "Health, metrics and logs",
            "Read-only and without secrets, but not meant for the internet: keep it on "
            "127.0.0.1 or a private network.",
        ),
    )
    metrics_host: str = setting(
        default="127.0.0.1",
        kind=Host(),
        help="the address the HTTP server listens on (`0.0.0.0`: every interface, as in a "
        "container whose port is published)",
    )


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike[str] | None = ".env"
) -> Settings:
    """Merge `.env` (if present) under the process environment and validate, in the order
    declared; an empty variable means its default."""
    merged: dict[str, str | None] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        merged.update(dotenv_values(dotenv_path))
    merged.update(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for declared in fields(Settings):
        name = variable(declared)
        raw = (merged.get(name) or "").strip()
        if not raw:
            if declared.default is MISSING:
                raise ConfigError(name, "is required but not set (see .env.example)")
            continue
        try:
            values[declared.name] = spec(declared).kind.parse(raw)
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None
    settings = Settings(**values)
    beyond = [shard for shard in settings.shard_ids if shard >= settings.shard_count]
    if beyond:
        raise ConfigError(
            "SHARD_IDS",
            f"shard {beyond[0]} is not below SHARD_COUNT={settings.shard_count} "
            "(shards are numbered from 0)",
        )
    return settings
