"""Saved voices, the core half: names, the clip's hash, and the one decision about a job
whose saved voice Segmind could not fetch (re-upload from the kept bytes, once).

Assumption (Segmind documents no error codes for it): a job whose `voice_samples` URL
cannot be fetched ends FAILED with an error saying the voice sample could not be
downloaded ("Failed to download voice sample (...)", as the fake answers). Any FAILED
whose reason mentions both "download"/"fetch" and "sample" counts as that.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from .segmind.errors import JobFailedError, SegmindError

MAX_NAME_CHARS = 32
# Letters, digits, spaces and a few marks: names show in lists and autocomplete.
_NAME = re.compile(r"^[\w][\w .'-]*$")
_FETCH_WORDS = ("download", "fetch")
REUPLOADS_PER_JOB = 1  # one fresh URL per job; a second failure is the job's end


def voice_name_problem(name: str) -> str | None:
    """Why `name` cannot name a voice (what the member is told), or None."""
    cleaned = clean_name(name)
    if not cleaned:
        return "Give the voice a name (letters, digits, spaces)."
    if len(cleaned) > MAX_NAME_CHARS:
        return f"A voice name is at most {MAX_NAME_CHARS} characters."
    if not _NAME.match(cleaned):
        return "A voice name may hold letters, digits, spaces, dots, dashes and apostrophes."
    return None


def clean_name(name: str) -> str:
    """The name as kept: normalised, inner runs of spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", name).split())


def sample_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sample_fetch_failed(error: SegmindError) -> bool:
    """Whether a job failed because Segmind could not fetch its voice sample."""
    if not isinstance(error, JobFailedError):
        return False
    reason = error.detail.lower()
    return "sample" in reason and any(word in reason for word in _FETCH_WORDS)


def should_reupload(voice_id: int | None, error: SegmindError, reuploads_done: int) -> bool:
    """Re-upload the kept bytes and submit again? Only for a saved voice, only when the
    sample could not be fetched (the job cost nothing then), and only once per job: a
    second such failure is not a stale URL but something a new upload will not fix."""
    return (
        voice_id is not None and reuploads_done < REUPLOADS_PER_JOB and sample_fetch_failed(error)
    )
