"""A job with a saved voice whose Segmind storage URL died: re-upload the kept bytes once
and hand the job back for one more submit (a deliberate, recorded retry: the store's
`mark_resubmit` allows it once per job, so no path can submit a third time).

The failure costs nothing: Segmind could not fetch the sample, so no audio was made.
How it is recognised is `bot.voices.sample_fetch_failed` (an assumption; README).
"""

from __future__ import annotations

import logging
from typing import Protocol

from ..segmind.errors import SegmindError
from ..store import InvalidTransition, JobRecord, JobStore, StoreError, VoiceStore
from ..voices import should_reupload

log = logging.getLogger(__name__)


class Uploader(Protocol):
    async def upload(self, data: bytes, content_type: str) -> str: ...


class Resampler:
    def __init__(self, store: JobStore, voices: VoiceStore, uploader: Uploader) -> None:
        self._store = store
        self._voices = voices
        self._uploader = uploader

    async def resubmission(self, record: JobRecord, error: SegmindError) -> JobRecord | None:
        """The job back in ACCEPTED with a fresh sample URL, or None: fail it as usual."""
        if record.voice_id is None or not should_reupload(
            record.voice_id, error, record.sample_retries
        ):
            return None
        voice = await self._voices.get_voice(record.voice_id)
        sample = await self._voices.voice_sample(record.voice_id)
        if voice is None or sample is None:  # deleted meanwhile: nothing to re-upload
            return None
        try:
            url = await self._uploader.upload(sample, voice.content_type)
            await self._voices.set_voice_url(voice.id, url)
            again = await self._store.mark_resubmit(record.id, url)
        except (SegmindError, StoreError, InvalidTransition) as exc:
            log.warning("Job %s: could not re-upload voice %s: %s", record.id, voice.id, exc)
            return None
        log.info(
            "Job %s: Segmind could not fetch saved voice %s (request %s); re-uploaded, "
            "submitting once more",
            record.id,
            voice.id,
            error.request_id or "-",
        )
        return again
