"""Never pay twice for the same audio: a request whose clip (the same bytes), language and
text match a result made in the last `RESULT_CACHE_DAYS` is answered from that stored
result, with no Segmind request.

The key is a hash of the clip's bytes' SHA-256, the language and the text with its
whitespace normalised; the text itself is not kept. A saved voice's job carries its
clip's hash already; for a one-off clip (a Discord attachment) the bytes are fetched
once here, bounded by `MAX_SAMPLE_BYTES` and a timeout, and the hash is recorded on
the job. A fetch that fails only skips the cache: the job runs as it would have.

Cached audio is someone's voice: it is deleted with the voice (`forget_clip`,
`forget_voice`), on the owner's /optout (`forget_owner`), after the retention
(`expire`, from the daily purge), and the least recently used go first past
`RESULT_CACHE_MB`. Every failure of the cache is logged and passed over: it may cost a
Segmind request, never the member's result.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import unicodedata
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

from ..audio import MIB, AudioFile
from ..store import (
    CachedResult,
    InvalidTransition,
    JobRecord,
    JobState,
    ResultCacheStore,
    StoreError,
)

log = logging.getLogger(__name__)

DAY = 86400.0
# Results larger than this are not cached: the entry's audio lives in its row, and a blob
# this size already holds the store's writer up for a few milliseconds.
CACHE_AUDIO_MAX = 4 * MIB
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
FETCH_CHUNK = 64 * 1024
KEY_VERSION = "1"  # bump if the key's recipe changes: old entries then simply miss
FRESH_ORIGIN = "again"  # Again always makes a fresh take


def normalised(text: str) -> str:
    """The text as the voice service would speak it alike: NFC, runs of whitespace as one
    space, no leading or trailing space. Case and punctuation are kept (they change how
    it is spoken)."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def cache_key(sample_sha256: str, language: str, text: str) -> str:
    joined = "\0".join((KEY_VERSION, sample_sha256, language, normalised(text)))
    return hashlib.sha256(joined.encode()).hexdigest()


class ResultCache:
    def __init__(
        self,
        store: ResultCacheStore,
        session: aiohttp.ClientSession,
        *,
        days: float,
        max_mb: int,
        max_sample_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._session = session
        self.days = days
        self.max_bytes = max_mb * MIB
        self._max_sample_bytes = max_sample_bytes
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self.days > 0

    async def answer(self, record: JobRecord) -> tuple[JobRecord, AudioFile | None]:
        """Before a job's first submit: its record, and the audio if an identical request
        was answered before (the record is then DELIVERING with `cached_from` set, its
        audio stored with it, as after any completed job). Else no audio, and the record
        perhaps with its one-off clip's hash now recorded (for `remember`)."""
        if (
            not self.enabled
            or record.origin == FRESH_ORIGIN
            or record.state is not JobState.ACCEPTED
            or record.submit_started_at is not None
        ):
            return record, None
        try:
            if record.sample_sha256 is None:
                sha = await self._clip_sha256(record)
                if sha is None:
                    return record, None
                record = await self._store.set_sample_sha256(
                    record.id, sha, record.original_message_id
                )
            sha = record.sample_sha256
            assert sha is not None
            entry = await self._store.cache_lookup(
                cache_key(sha, record.language, record.text), self._clock() - self.days * DAY
            )
            if entry is None:
                return record, None
            audio = AudioFile(entry.audio, entry.content_type, entry.extension)
            record = await self._store.mark_cached(
                record.id, entry.source_job, audio, sha, record.original_message_id
            )
        except (StoreError, InvalidTransition) as exc:
            log.warning("Job %s: result cache skipped (%s)", record.id, exc)
            return record, None
        log.info(
            "Job %s answered from the result cache (made by job %s): no Segmind request",
            record.id,
            entry.source_job,
        )
        return record, audio

    async def remember(self, record: JobRecord, audio: AudioFile) -> None:
        """Keep a job's fresh result for identical requests (an older take is replaced)."""
        sha = record.sample_sha256
        if not self.enabled or sha is None or audio.size > min(CACHE_AUDIO_MAX, self.max_bytes):
            return
        now = self._clock()
        entry = CachedResult(
            key=cache_key(sha, record.language, record.text),
            sample_sha256=sha,
            language=record.language,
            source_job=record.id,
            voice_owner_id=record.user_id
            if record.voice_owner_id is None
            else record.voice_owner_id,
            voice_id=record.voice_id,
            guild_id=record.guild_id,
            audio=audio.data,
            content_type=audio.content_type,
            extension=audio.extension,
            size=audio.size,
            created_at=now,
            last_used_at=now,
        )
        try:
            evicted = await self._store.cache_put(entry, self.max_bytes)
        except StoreError as exc:
            log.warning("Job %s: its result could not be cached (%s)", record.id, exc)
            return
        if evicted:
            log.info(
                "Result cache over %d MiB: %d least recently used evicted",
                self.max_bytes // MIB,
                evicted,
            )

    async def expire(self) -> int:
        """Delete entries older than the retention (the daily purge); all when off."""
        try:
            removed = await self._store.cache_expire(max(self.days, 0.0) * DAY)
        except StoreError as exc:  # tried again tomorrow; a stale entry never answers
            log.warning("Could not purge the result cache: %s", exc)
            return 0
        if removed:
            log.info("Removed %d cached result(s) older than %g days", removed, self.days)
        return removed

    async def forget_clip(self, sample_sha256: str) -> int:
        """Delete every result made from a clip with these bytes (a deleted saved voice)."""
        return _removed("clip", await self._store.cache_forget(sample_sha256=sample_sha256))

    async def forget_voice(self, voice_id: int) -> int:
        """Delete every result made with saved voice `voice_id`."""
        return _removed("saved voice", await self._store.cache_forget(voice_id=voice_id))

    async def forget_owner(self, user_id: int) -> int:
        """Delete every result in this member's voice, in every server (their /optout)."""
        return _removed("voice owner", await self._store.cache_forget(voice_owner_id=user_id))

    async def _clip_sha256(self, record: JobRecord) -> str | None:
        """The one-off clip's bytes' hash, fetched within bounds; None if they can't be."""
        host = urlsplit(record.sample_url).hostname or "?"  # the URL is signed: not logged
        limit = self._max_sample_bytes
        data = bytearray()
        try:
            async with self._session.get(record.sample_url, timeout=FETCH_TIMEOUT) as resp:
                if resp.status != 200:
                    log.info(
                        "Job %s: clip fetch from %s got HTTP %d; cache skipped",
                        record.id,
                        host,
                        resp.status,
                    )
                    return None
                if (resp.content_length or 0) > limit:
                    return None
                async for chunk in resp.content.iter_chunked(FETCH_CHUNK):
                    data += chunk
                    if len(data) > limit:
                        log.info("Job %s: clip over %d bytes; cache skipped", record.id, limit)
                        return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info(
                "Job %s: clip fetch from %s failed (%s); cache skipped",
                record.id,
                host,
                type(exc).__name__,
            )
            return None
        if not data:
            return None
        return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())


def _removed(what: str, count: int) -> int:
    if count:
        log.info("Removed %d cached result(s) of a %s", count, what)
    return count
