"""Recognising audio by its bytes: content types and file names are only claims."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MIB = 1024 * 1024

# MIME type -> file extension for what we can recognise and hand to Discord.
EXTENSIONS = {
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
    "audio/mp4": "m4a",
    "audio/webm": "webm",
    "audio/aac": "aac",
}
_CONTENT_TYPE_ALIASES = {
    "audio/mp3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/x-flac": "audio/flac",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/opus": "audio/ogg",
    "application/ogg": "audio/ogg",
    "audio/x-aac": "audio/aac",
}


def sniff_audio(data: bytes) -> str | None:
    """The audio MIME type the leading bytes show, or None if they do not look like audio."""
    head = data[:64]
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head[4:8] == b"ftyp" and head[8:12] in (b"M4A ", b"M4B ", b"mp42", b"isom", b"dash"):
        return "audio/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "audio/webm"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "audio/aac"  # ADTS: sync word, layer bits 00
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "audio/mpeg"  # MPEG audio frame sync with a layer set
    return None


def normalise_content_type(content_type: str | None) -> str:
    if not content_type:
        return ""
    base = content_type.split(";", 1)[0].strip().lower()
    return _CONTENT_TYPE_ALIASES.get(base, base)


def _looks_like_text(data: bytes) -> bool:
    head = data[:256].lstrip().lower()
    return head.startswith((b"<", b"{", b"[")) or head[:5] == b"error"


@dataclass(frozen=True, slots=True)
class VoiceShape:
    """What Discord shows for a voice message: its length and its waveform."""

    duration_secs: float
    waveform: str  # base64 of <= 256 bytes, each 0-255


@dataclass(frozen=True, slots=True)
class AudioFile:
    data: bytes
    content_type: str
    extension: str
    source_url: str = ""
    voice: VoiceShape | None = None
    """Set only on audio made to be sent as a voice message (bot/transcode.py)."""

    @property
    def size(self) -> int:
        return len(self.data)


def identify_audio(data: bytes) -> tuple[str, str] | None:
    """(MIME type, extension) if the bytes are audio we recognise, else None.

    Only the bytes decide: a declared type is a claim (a ZIP served as `audio/mpeg` is
    still a ZIP), and a file we cannot recognise is not passed on as audio.
    """
    sniffed = sniff_audio(data)
    if sniffed is None:
        return None
    return sniffed, EXTENSIONS[sniffed]


# What a member may attach as a voice sample (by name, when Discord gives no type).
CLIP_EXTENSIONS = ("mp3", "wav", "ogg", "opus", "m4a", "flac", "webm", "aac")
_NOT_AUDIO_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"PK\x03\x04", b"\x7fELF", b"MZ")


def looks_like_audio(filename: str, content_type: str | None) -> bool:
    """Declared as audio, or named like it (the uploader's claim; the bytes are checked later)."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return normalise_content_type(content_type).startswith("audio/") or extension in CLIP_EXTENSIONS


class ClipProblem(StrEnum):
    """Why an attachment cannot be a voice sample (cogs/refusals.py words it)."""

    NOT_AUDIO = "not_audio"  # neither declared nor named as audio
    EMPTY = "empty"  # no bytes at all
    TOO_BIG = "too_big"  # over the size limit
    CONTENTS_NOT_AUDIO = "contents_not_audio"  # its first bytes are another kind of file


def check_clip(
    filename: str, content_type: str | None, size: int, max_bytes: int
) -> ClipProblem | None:
    """Why an attachment cannot be a voice sample, from its metadata; None if it may be."""
    if not looks_like_audio(filename, content_type):
        return ClipProblem.NOT_AUDIO
    if size <= 0:
        return ClipProblem.EMPTY
    if size > max_bytes:
        return ClipProblem.TOO_BIG
    return None


def check_head(head: bytes) -> ClipProblem | None:
    """Why a clip's first bytes show it is not audio; None if they may be audio."""
    if not head:
        return None
    if sniff_audio(head) is None and (head.startswith(_NOT_AUDIO_MAGIC) or _looks_like_text(head)):
        return ClipProblem.CONTENTS_NOT_AUDIO
    return None
