"""The async face of the audio work (`bot/transcode.py`, PyAV): its blocking calls on a
small bounded pool, so many results at once never starve the event loop. PyAV and numpy
are imported at the first call, not with the job service: a bot that never converts audio
does not carry them (~25 MB)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from .audio import AudioFile, VoiceShape

T = TypeVar("T")
CLOSE_TIMEOUT = 30.0  # seconds `Transcoder.close` waits for running conversions


class AudioError(Exception):
    """The bytes cannot be made into audio: undecodable, no audio stream, empty, too long."""


class Transcoder:
    """The blocking calls of `bot/transcode.py` on a small bounded pool; each job holds at
    most one decoded copy at a time."""

    def __init__(self, workers: int = 2) -> None:
        # Threads, not processes: PyAV releases the GIL while coding, so the loop's lag
        # stays under its floor (bench/transcode.py; processes finish a burst sooner but
        # cost an interpreter each and pickle the audio). The pool queues the rest.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transcode")
        self._closed = False

    async def _run(self, call: Callable[[], T]) -> T:
        if self._closed:
            raise AudioError("the transcoder is closed")
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def voice_message(self, audio: AudioFile) -> AudioFile:
        """The audio as a voice message: Opus/Ogg with its VoiceShape."""
        from . import transcode  # PyAV and numpy load here, at the first conversion

        ogg, shape = await self._run(partial(transcode.voice_message, audio.data))
        return _ogg_file(ogg, audio.source_url, shape)

    async def fit(self, audio: AudioFile, limit: int) -> AudioFile | None:
        """`audio` itself if it is within `limit` bytes, else an Opus/Ogg re-encoding that
        is (keeping a voice message's shape: the same sound), or None if none can be."""
        if audio.size <= limit:
            return audio
        from . import transcode

        ogg = await self._run(partial(transcode.fit_opus, audio.data, limit))
        return None if ogg is None else _ogg_file(ogg, audio.source_url, audio.voice)

    async def duration(self, audio: AudioFile) -> float:
        from . import transcode

        return await self._run(partial(transcode.duration_of, audio.data))

    async def close(self) -> None:
        """Shut the pool down: queued work is cancelled (its callers get CancelledError);
        running work finishes off the loop (a PyAV call cannot be interrupted), waited for
        up to CLOSE_TIMEOUT. Cancelling this wait leaves the shutdown under way."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        joined = asyncio.shield(asyncio.to_thread(self._pool.shutdown, wait=True))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(joined, CLOSE_TIMEOUT)


def _ogg_file(ogg: bytes, source_url: str, voice: VoiceShape | None) -> AudioFile:
    return AudioFile(ogg, "audio/ogg", "ogg", source_url=source_url, voice=voice)
