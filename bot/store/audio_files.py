"""Results' audio kept in files of their own under `audio/` (large audio, and any written
by schema version 1), seen from the event loop: naming, writing, reading and deleting
them on threads of their own (the blocking work is `spool`'s).

Audio over the store's `INLINE_AUDIO_MAX` is not written through the writer: a 20 MiB
blob commits in ~70 ms with its fsync, and every write queued behind it (a new job's
insert, which Discord's 3 s to acknowledge /speak is waiting on) would wait that out. It
is written to a file here, synced, and only then is the job's row (naming the file)
committed; a crash in between leaves an unnamed file that `sweep` removes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath
from typing import Any, TypeVar

from . import spool
from .models import JobRecord, StoreError

log = logging.getLogger(__name__)

THREADS = 2  # threads that write, read and delete audio files
_FILE_PART = re.compile(r"[^A-Za-z0-9_-]")

T = TypeVar("T")


class AudioFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._threads: ThreadPoolExecutor | None = None  # started when first needed

    def path(self, audio_path: str) -> Path:
        # Only ever the file name: a record can never make us touch a file elsewhere.
        return self.directory / PurePath(audio_path).name

    async def write(self, job_id: str, audio: bytes, extension: str) -> str:
        """Write a result's audio to a new, synced file; return the file's name."""
        suffix = _FILE_PART.sub("", extension)[:10] or "bin"
        name = f"{_FILE_PART.sub('_', job_id)[:64]}-{secrets.token_hex(4)}.{suffix}"
        path = self.path(name)
        try:
            await self._in_thread(spool.write_file, path, audio)
        except OSError as exc:
            raise spool.explain(exc, path) from exc
        return name

    async def read(self, audio_path: str) -> bytes | None:
        """The file's audio, or None if it is gone."""
        path = self.path(audio_path)
        try:
            return await self._in_thread(spool.read_file, path)
        except OSError as exc:
            raise StoreError(path, f"cannot read {path} ({exc.strerror})") from exc

    async def remove(self, audio_path: str) -> None:
        await self._in_thread(spool.remove, self.path(audio_path))

    async def drop(self, record: JobRecord) -> None:
        """Delete a finished job's audio file, if it has one (smaller audio lives in the
        row and is cleared with the state). The state is already committed, so a failure
        here is only logged: `sweep` removes the file later."""
        if record.audio_path:
            try:
                await self.remove(record.audio_path)
            except OSError as exc:
                log.warning("job %s: could not delete its audio: %s", record.id, exc)

    async def sweep(self, keep: set[str], modified_before: float) -> int:
        """Delete the files not named in `keep` and older than `modified_before` (a file
        younger may be one being written right now); return how many."""
        try:
            return await asyncio.to_thread(
                spool.remove_unlisted, self.directory, keep, modified_before
            )
        except OSError as exc:
            log.warning("could not sweep %s: %s", self.directory, exc)
            return 0

    def close(self) -> None:
        threads, self._threads = self._threads, None
        if threads is not None:
            # A file write in progress finishes on its own; if its job's row was not
            # committed, the file is an orphan that `sweep` removes.
            threads.shutdown(wait=False, cancel_futures=True)

    async def _in_thread(self, work: Callable[..., T], *args: Any) -> T:
        """Blocking file work, on threads of its own: never the writer's, nor the loop's
        default executor, which other work may need meanwhile."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="job-store-audio")
        return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)
