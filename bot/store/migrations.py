"""Schema versions, applied at open in order, one transaction each.

`PRAGMA user_version` holds the number of migrations applied. A migration is never edited
once released: add a new one. A database from a newer bot is refused, not downgraded.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .models import StoreError

# Migration N (1-based) takes the schema from version N-1 to N.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('accepted', 'submitted', 'completed',
                'delivering', 'delivered', 'failed', 'explained')),
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            sample_url TEXT NOT NULL,
            text TEXT NOT NULL,
            language TEXT NOT NULL,
            application_id INTEGER NOT NULL,
            interaction_token TEXT NOT NULL,
            token_expires_at REAL NOT NULL,
            channel_id INTEGER NOT NULL,
            guild_id INTEGER,
            user_id INTEGER NOT NULL,
            original_message_id INTEGER,
            submit_started_at REAL,
            request_id TEXT,
            poll_url TEXT,
            submitted_at REAL,
            audio_path TEXT,
            audio_content_type TEXT,
            audio_extension TEXT,
            audio_url TEXT,
            audio_size INTEGER,
            failure_cause TEXT,
            failure_message TEXT,
            delivered_at REAL,
            delivery_channel TEXT
                CHECK (delivery_channel IN ('interaction', 'channel', 'dm')),
            delivery_message_id INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0
        )
        """,
        # Serves purge (terminal + age), count_by_state and unfinished (state ranges).
        "CREATE INDEX jobs_by_state ON jobs (state, updated_at)",
    ),
    # 2: finished audio is kept in the row (group-committed with its state) instead of a
    # file per job: creating, renaming and deleting a file cost ~1 ms of CPU per job.
    # Files written by version 1 are still read and swept.
    ("ALTER TABLE jobs ADD COLUMN audio BLOB",),
    # 3: fair use and administration. A job row doubles as its audit entry: the text and
    # the clip's signed URL are wiped when the job ends (unless the operator keeps text),
    # so its length and the clip's host are kept apart. Per-guild settings are one JSON
    # object (new settings need no migration); one row per member holds their consent,
    # opt-out and block.
    (
        "ALTER TABLE jobs ADD COLUMN text_chars INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN sample_host TEXT NOT NULL DEFAULT ''",
        "UPDATE jobs SET text_chars = length(text)",
        "CREATE INDEX jobs_by_time ON jobs (created_at)",
        "CREATE INDEX jobs_by_guild ON jobs (guild_id, created_at)",
        """
        CREATE TABLE guild_settings (
            guild_id INTEGER PRIMARY KEY NOT NULL,
            settings TEXT NOT NULL,
            updated_at REAL NOT NULL,
            updated_by INTEGER
        )
        """,
        """
        CREATE TABLE members (
            guild_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            consent_at REAL,
            opted_out_at REAL,
            blocked_at REAL,
            blocked_by INTEGER,
            block_reason TEXT,
            PRIMARY KEY (guild_id, user_id)
        )
        """,
        "CREATE TABLE bot_state (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
    ),
    # 4: when polls saw each job finish (seconds after its submit: the last poll that
    # found it running, the first that found it done): the history the poll scheduler
    # learns this workflow's duration from, read back at start-up.
    (
        "ALTER TABLE jobs ADD COLUMN seen_running_s REAL",
        "ALTER TABLE jobs ADD COLUMN seen_done_s REAL",
    ),
    # 5: whose voice a job's clip is when it came from someone else's message, so that a
    # result re-used as a clip ("Speak in this voice" on the bot's own message) is held to
    # that member's opt-out.
    ("ALTER TABLE jobs ADD COLUMN voice_owner_id INTEGER",),
    # 6: saved voices, the owner's consent, the result cache and provenance: how a job
    # was asked for, the saved voice it used, its clip's hash, how long it waits for the
    # voice owner, the earlier job it was answered from, and the hash of the delivered
    # file (looked up by "Was this made by VoiceClone?"). An owner's "Always allow" is
    # kept per server with the member's other answers.
    (
        "ALTER TABLE jobs ADD COLUMN origin TEXT NOT NULL DEFAULT 'speak'",
        "ALTER TABLE jobs ADD COLUMN voice_id INTEGER",
        "ALTER TABLE jobs ADD COLUMN sample_sha256 TEXT",
        "ALTER TABLE jobs ADD COLUMN owner_pending_until REAL",
        "ALTER TABLE jobs ADD COLUMN cached_from TEXT",
        "ALTER TABLE jobs ADD COLUMN result_sha256 TEXT",
        "CREATE INDEX jobs_by_result ON jobs (result_sha256) WHERE result_sha256 IS NOT NULL",
        "ALTER TABLE members ADD COLUMN voice_allowed_at REAL",
    ),
    # 7: provenance: the hash of the delivered file's audio without its tags, which
    # recognises a result whose metadata was stripped (bot/audio_payload.py says what
    # "without its tags" means per format).
    (
        "ALTER TABLE jobs ADD COLUMN result_audio_sha256 TEXT",
        "CREATE INDEX jobs_by_result_audio ON jobs (result_audio_sha256) "
        "WHERE result_audio_sha256 IS NOT NULL",
    ),
    # 8: what a result's Again and Edit text buttons need after its job ended (the job row
    # loses its text and clip URL then): one row per delivered result, removed when the
    # result is deleted, on the requester's or the voice owner's /optout, and by the purge.
    (
        """
        CREATE TABLE replays (
            job_id TEXT PRIMARY KEY NOT NULL,
            created_at REAL NOT NULL,
            guild_id INTEGER,
            user_id INTEGER NOT NULL,
            voice_owner_id INTEGER,
            text TEXT NOT NULL,
            language TEXT NOT NULL,
            sample_url TEXT NOT NULL,
            voice_id INTEGER,
            sample_sha256 TEXT
        )
        """,
    ),
    # 9: saved voices (/voice save). The clip's bytes are kept here because Discord's
    # attachment URLs expire and slash-command uploads are removed: Segmind storage's URL
    # is re-made from them when it stops working. A name is unique per owner whatever
    # its case; shares say which servers may use a voice besides its owner.
    (
        "CREATE TABLE voices (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "owner_id INTEGER NOT NULL, name TEXT NOT NULL, sample BLOB NOT NULL, "
        "sha256 TEXT NOT NULL, content_type TEXT NOT NULL, filename TEXT NOT NULL, "
        "storage_url TEXT, uploaded_at REAL, is_default INTEGER NOT NULL DEFAULT 0, "
        "created_at REAL NOT NULL)",
        "CREATE UNIQUE INDEX voices_by_owner_name ON voices (owner_id, name COLLATE NOCASE)",
        "CREATE TABLE voice_shares (voice_id INTEGER NOT NULL, guild_id INTEGER NOT NULL, "
        "shared_at REAL NOT NULL, PRIMARY KEY (voice_id, guild_id))",
        "CREATE INDEX voice_shares_by_guild ON voice_shares (guild_id)",
        # A job re-submitted after its saved voice was re-uploaded: once at most.
        "ALTER TABLE jobs ADD COLUMN sample_retries INTEGER NOT NULL DEFAULT 0",
    ),
    # 10: the result cache (`result_cache`): a delivered result kept under a hash of its
    # clip's bytes, language and text (not the text itself), with whose voice it is so
    # that it can be deleted with the voice and on the owner's /optout.
    (
        """
        CREATE TABLE result_cache (
            key TEXT PRIMARY KEY NOT NULL,
            sample_sha256 TEXT NOT NULL,
            language TEXT NOT NULL,
            source_job TEXT NOT NULL,
            voice_owner_id INTEGER,
            voice_id INTEGER,
            guild_id INTEGER,
            audio BLOB NOT NULL,
            content_type TEXT NOT NULL,
            extension TEXT NOT NULL,
            size INTEGER NOT NULL,
            created_at REAL NOT NULL,
            last_used_at REAL NOT NULL
        )
        """,
        "CREATE INDEX result_cache_by_clip ON result_cache (sample_sha256)",
        "CREATE INDEX result_cache_by_voice ON result_cache (voice_id) WHERE voice_id IS NOT NULL",
        "CREATE INDEX result_cache_by_owner ON result_cache (voice_owner_id)",
        "CREATE INDEX result_cache_by_use ON result_cache (last_used_at)",
    ),
    # 11: how the member asked for the result: as a file or a voice message, and whether
    # it is also played in their voice channel.
    (
        "ALTER TABLE jobs ADD COLUMN send_as TEXT NOT NULL DEFAULT 'file'",
        "ALTER TABLE jobs ADD COLUMN play INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE replays ADD COLUMN send_as TEXT NOT NULL DEFAULT 'file'",
        "ALTER TABLE replays ADD COLUMN play INTEGER NOT NULL DEFAULT 0",
    ),
)


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the schema up to date; return how many migrations were applied. Blocks: run
    on the writer thread (`GroupCommitter.run_alone`), with no transaction open.

    Each step reads the version inside its own write transaction, so the step and its
    version bump commit together or not at all. The last transaction rewrites the
    version unchanged: a cheap probe that the file is writable, found now rather than
    at the first job.
    """
    latest = len(MIGRATIONS)
    applied = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > latest:
                raise StoreError(
                    path,
                    f"{path} has schema version {version} but this bot knows only up to "
                    f"{latest}: run the newer bot again, or move the file aside to start "
                    "fresh (jobs in it will be lost)",
                )
            step = version < latest
            if step:
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
            conn.execute(f"PRAGMA user_version = {version:d}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if not step:
            return applied
        applied += 1
