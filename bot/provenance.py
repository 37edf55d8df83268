"""Provenance: every delivered file says it is AI-generated, by which bot, for which job
and when (ID3 frames in MP3 and WAV, Vorbis comments in Ogg and FLAC, MP4 atoms), and
the hashes that recognise it later are computed from the bytes as delivered.

The tags are built only from stored values (the job's id, application id and creation
time, and the bot's name), so a delivery retried after a restart carries the same bytes
and the recorded hash still holds. Stamping replaces earlier tags of ours (a cached
result delivered again is stamped for its new job) and keeps everyone else's.

Tags are written and read with mutagen, off the event loop. A file mutagen cannot tag
(WebM, ADTS AAC, a malformed file) is delivered as it is, with a log line: provenance
is never a reason to withhold a result.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import mutagen
from mutagen.id3 import COMM, ID3, TENC, TSSE, TXXX
from mutagen.mp4 import MP4FreeForm, MP4Tags

from .audio import AudioFile, identify_audio
from .audio_payload import audio_sha256, sha256, skip_id3v2
from .store import JobRecord

log = logging.getLogger(__name__)

SOFTWARE = "VoiceClone"
# Our keys: Vorbis comment names, ID3 TXXX descriptions, MP4 freeform names.
AI_GENERATED = "AI_GENERATED"
BOT = "VOICECLONE_BOT"
APPLICATION_ID = "VOICECLONE_APPLICATION_ID"
JOB_ID = "VOICECLONE_JOB_ID"
CREATED = "VOICECLONE_CREATED"
KEYS = (AI_GENERATED, BOT, APPLICATION_ID, JOB_ID, CREATED)
MP4_MEAN = "com.voiceclone"
_TAGGABLE = ("audio/mpeg", "audio/wav", "audio/ogg", "audio/flac", "audio/mp4")


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a delivered file says about itself."""

    bot_name: str
    application_id: int
    job_id: str
    created_at: float  # the job's, so that a retried delivery carries the same bytes

    @property
    def created(self) -> str:
        return datetime.fromtimestamp(int(self.created_at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def values(self) -> dict[str, str]:
        return {
            AI_GENERATED: "yes",
            BOT: self.bot_name,
            APPLICATION_ID: str(self.application_id),
            JOB_ID: self.job_id,
            CREATED: self.created,
        }

    @property
    def comment(self) -> str:
        return (
            f"AI-generated speech in a cloned voice, not a recording. Made by {self.bot_name} "
            f"(Discord application {self.application_id}) with {SOFTWARE}, job {self.job_id}, "
            f'{self.created}. Check it with the bot\'s "Was this made by VoiceClone?" '
            "message command."
        )


@dataclass(frozen=True, slots=True)
class Stamped:
    """A file ready to deliver and the hashes to record with its delivery."""

    audio: AudioFile
    sha256: str  # of the file as delivered
    audio_sha256: str | None  # of its audio without tags (audio_payload)
    tagged: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """What a file's tags say about where it came from (tags can be forged: check them
    against the store)."""

    values: Mapping[str, str]

    @property
    def job_id(self) -> str | None:
        return self.values.get(JOB_ID)

    @property
    def application_id(self) -> int | None:
        raw = self.values.get(APPLICATION_ID, "")
        return int(raw) if raw.isdigit() else None


class Provenance:
    """The driver's stamper; the Bot sets `bot_name` once it knows its own user."""

    def __init__(self, bot_name: str = SOFTWARE) -> None:
        self.bot_name = bot_name

    def stamp_for(self, record: JobRecord) -> Stamp:
        return Stamp(self.bot_name, record.application_id, record.id, record.created_at)

    async def stamp(self, record: JobRecord, audio: AudioFile) -> Stamped:
        """The file to deliver for `record`, tagged (CPU work: off the loop)."""
        return await asyncio.to_thread(stamp_file, audio, self.stamp_for(record))

    async def hashes(
        self, record: JobRecord, audio: AudioFile | None
    ) -> tuple[str | None, str | None]:
        """The hashes of what an earlier attempt delivered (the same tags give the same
        bytes); unknown if the stored audio is gone."""
        if audio is None:
            return None, None
        stamped = await self.stamp(record, audio)
        return stamped.sha256, stamped.audio_sha256


def stamp_file(audio: AudioFile, stamp: Stamp) -> Stamped:
    """The file with our tags (or as it was, if it cannot carry them), and its hashes.
    Blocks: call through `asyncio.to_thread`."""
    data = _tagged(audio.data, stamp)
    tagged = data is not None
    if data is None:
        data = audio.data
    else:
        audio = dataclasses.replace(audio, data=data)
    return Stamped(audio, sha256(data), audio_sha256(data), tagged)


def _tagged(data: bytes, stamp: Stamp) -> bytes | None:
    kind = identify_audio(data)
    if kind is None or kind[0] not in _TAGGABLE:
        log.warning(
            "Job %s: the %s file cannot carry provenance tags; delivered untagged",
            stamp.job_id,
            kind[0] if kind else "unrecognised",
        )
        return None
    if kind[0] == "audio/mpeg":
        return _tagged_mp3(data, stamp)
    buffer = io.BytesIO(data)
    try:
        file: Any = mutagen.File(buffer)
        if file is None:
            raise mutagen.MutagenError("mutagen does not recognise the file")
        if file.tags is None:
            file.add_tags()
        tags = file.tags
        if isinstance(tags, ID3):
            _id3(tags, stamp)
        elif isinstance(tags, MP4Tags):
            _mp4(tags, stamp)
        else:  # Vorbis comments (Ogg Vorbis/Opus/FLAC, FLAC)
            for key, value in stamp.values().items():
                tags[key] = [value]
            tags["COMMENT"] = [stamp.comment]
            tags["ENCODEDBY"] = [stamp.bot_name]
        buffer.seek(0)
        if isinstance(tags, ID3):
            file.save(buffer, v2_version=3)  # ID3v2.3: what most players read
        else:
            file.save(buffer)
    except Exception as exc:  # whatever mutagen raises, the member still gets the result
        log.warning(
            "Job %s: could not write provenance tags (%s: %s); delivered untagged",
            stamp.job_id,
            type(exc).__name__,
            exc,
        )
        return None
    return buffer.getvalue()


def _tagged_mp3(data: bytes, stamp: Stamp) -> bytes | None:
    """MP3: the tag is built on its own and put before the audio. Letting mutagen rewrite
    the whole file (it parses the MPEG stream and moves the audio to fit the tag) cost
    seconds of CPU per 20 MiB result under load, and the event loop starved."""
    tags = ID3()
    if data.startswith(b"ID3"):
        try:
            tags = ID3(io.BytesIO(data))  # reads the tag alone: others' frames are kept
        except Exception as exc:  # a broken tag: ours replaces it
            log.info("Job %s: replacing an unreadable ID3 tag (%s)", stamp.job_id, exc)
    _id3(tags, stamp)
    out = io.BytesIO()
    try:
        tags.save(out, v2_version=3, v1=0, padding=lambda info: 0)  # ID3v2.3, most read
    except Exception as exc:
        log.warning(
            "Job %s: could not write provenance tags (%s: %s); delivered untagged",
            stamp.job_id,
            type(exc).__name__,
            exc,
        )
        return None
    return out.getvalue() + data[skip_id3v2(data) :]


def _id3(tags: ID3, stamp: Stamp) -> None:
    for key, value in stamp.values().items():
        tags.setall(f"TXXX:{key}", [TXXX(encoding=3, desc=key, text=[value])])
    tags.setall("COMM::eng", [COMM(encoding=3, lang="eng", desc="", text=[stamp.comment])])
    tags.setall("TENC", [TENC(encoding=3, text=[stamp.bot_name])])
    tags.setall("TSSE", [TSSE(encoding=3, text=[SOFTWARE])])


def _mp4(tags: MP4Tags, stamp: Stamp) -> None:
    for key, value in stamp.values().items():
        tags[f"----:{MP4_MEAN}:{key}"] = [MP4FreeForm(value.encode())]
    tags["\xa9cmt"] = [stamp.comment]
    tags["\xa9too"] = [SOFTWARE]


def read_claim(data: bytes) -> Claim | None:
    """Our tags in a file, or None if it has none (or cannot be parsed). Blocks."""
    try:
        file: Any = mutagen.File(io.BytesIO(data))
    except (mutagen.MutagenError, ValueError, OSError):
        return None
    tags = None if file is None else file.tags
    if tags is None:
        return None
    found: dict[str, str] = {}
    for key in KEYS:
        value: object = None
        if isinstance(tags, ID3):
            frame = tags.get(f"TXXX:{key}")
            value = frame.text[0] if frame is not None and frame.text else None
        elif isinstance(tags, MP4Tags):
            atoms = tags.get(f"----:{MP4_MEAN}:{key}")
            value = bytes(atoms[0]).decode(errors="replace") if atoms else None
        else:
            values = tags.get(key)
            value = values[0] if values else None
        if value is not None:
            found[key] = str(value)
    return Claim(found) if JOB_ID in found or BOT in found else None


@dataclass(frozen=True, slots=True)
class Examined:
    """What a file says of itself and the hashes the store knows delivered files by."""

    claim: Claim | None
    sha256: str
    audio_sha256: str | None


def examine(data: bytes) -> Examined:
    """Read a file's tags and hash it. Blocks: call through `asyncio.to_thread`."""
    return Examined(read_claim(data), sha256(data), audio_sha256(data))
