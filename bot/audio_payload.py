"""The audio of a file without its tags, hashed: how a result is recognised after someone
stripped its metadata.

"Without the tags" means the bytes that stay the same when common tools drop the
metadata and copy the audio as it is (mutagen's `delete()`, `ffmpeg -map_metadata -1
-c copy`), per container:

- MP3: the MPEG frames after the ID3v2 tag(s) and before a trailing ID3v1 / APEv2 tag,
  without a leading Xing/Info/VBRI frame (an encoder's summary frame, which ffmpeg
  rewrites on a copy).
- Ogg (Vorbis, Opus): every packet of every stream except the comment header; pages
  are not hashed (their sequence numbers and checksums change when the comment does).
- FLAC: the frames after the metadata blocks.
- WAV: the `data` chunk. MP4/M4A: the `mdat` boxes' contents.

Anything else (WebM, ADTS AAC, a file we cannot parse): None, and only the hash of the
whole file can recognise it. Re-encoding changes every byte and is not recognised.
"""

from __future__ import annotations

import hashlib
import io
import struct

from mutagen import MutagenError
from mutagen.ogg import OggPage

from .audio import identify_audio


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def audio_sha256(data: bytes) -> str | None:
    """SHA-256 of the file's audio without its tags; None if the format has no such
    definition here or the bytes do not parse."""
    kind = identify_audio(data)
    if kind is None:
        return None
    reader = _READERS.get(kind[0])
    if reader is None:
        return None
    try:
        parts = reader(data)
    except (MutagenError, ValueError, struct.error, IndexError, EOFError, OSError):
        return None  # truncated or malformed: no audio hash
    if not parts:
        return None
    digest = hashlib.sha256()
    for part in parts:
        # Length-prefixed, so that moving a boundary cannot give the same hash.
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


# -- MP3 ----------------------------------------------------------------------------

_BITRATES_V1_L3 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_BITRATES_V2_L3 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def skip_id3v2(data: bytes, start: int = 0) -> int:
    """Offset after the ID3v2 tags at `start` (several may follow each other)."""
    while data[start : start + 3] == b"ID3" and len(data) >= start + 10:
        size = 0
        for byte in data[start + 6 : start + 10]:
            size = (size << 7) | (byte & 0x7F)
        footer = 10 if data[start + 5] & 0x10 else 0
        start += 10 + size + footer
    return start


def _trailing_tags(data: bytes, end: int) -> int:
    """Offset where a trailing ID3v1 and/or APEv2 tag starts (or `end` if none)."""
    while True:
        if end >= 128 and data[end - 128 : end - 125] == b"TAG":
            end -= 128
        elif end >= 32 and data[end - 32 : end - 24] == b"APETAGEX":
            size, flags = struct.unpack("<II", data[end - 20 : end - 12])
            end -= size + (32 if flags & 0x80000000 else 0)
            if end < 0:
                raise ValueError("APE tag larger than the file")
        else:
            return end


def _summary_frame_length(data: bytes, at: int) -> int:
    """The length of a Layer III Xing/Info/VBRI frame at `at`, or 0 if it is another."""
    header = data[at : at + 4]
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return 0
    version = (header[1] >> 3) & 0x3  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    layer = (header[1] >> 1) & 0x3  # 1: Layer III
    bitrate_index, rate_index = header[2] >> 4, (header[2] >> 2) & 0x3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return 0
    mono = header[3] >> 6 == 3
    side = (17 if mono else 32) if version == 3 else (9 if mono else 17)
    body = at + 4 + side + (0 if header[1] & 1 else 2)  # a CRC follows when bit 0 is 0
    if data[body : body + 4] not in (b"Xing", b"Info") and data[at + 36 : at + 40] != b"VBRI":
        return 0
    bitrate = (_BITRATES_V1_L3 if version == 3 else _BITRATES_V2_L3)[bitrate_index] * 1000
    rate = _SAMPLE_RATES[version][rate_index]
    padding = (header[2] >> 1) & 1
    return (144 if version == 3 else 72) * bitrate // rate + padding


def _mp3(data: bytes) -> list[bytes]:
    start = skip_id3v2(data)
    end = _trailing_tags(data, len(data))
    sync = data.find(b"\xff", start, end)
    while sync >= 0 and data[sync + 1] & 0xE0 != 0xE0:
        sync = data.find(b"\xff", sync + 1, end)
    if sync < 0:
        return []
    sync += _summary_frame_length(data, sync)
    return [data[sync:end]]


# -- Ogg ----------------------------------------------------------------------------

_COMMENT_HEADERS = (b"\x03vorbis", b"OpusTags")


def _ogg(data: bytes) -> list[bytes]:
    pages: dict[int, list[OggPage]] = {}
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        page = OggPage(stream)
        pages.setdefault(page.serial, []).append(page)
    parts: list[bytes] = []
    for serial_pages in pages.values():
        packets = OggPage.to_packets(serial_pages, strict=False)
        parts.extend(p for p in packets if not p.startswith(_COMMENT_HEADERS))
    return parts


# -- FLAC, WAV, MP4 -------------------------------------------------------------------


def _flac(data: bytes) -> list[bytes]:
    at = data.find(b"fLaC", skip_id3v2(data))
    if at < 0:
        raise ValueError("no FLAC stream marker")
    at += 4
    while True:
        header = data[at : at + 4]
        if len(header) < 4:
            raise ValueError("truncated FLAC metadata")
        at += 4 + int.from_bytes(header[1:4], "big")
        if header[0] & 0x80:  # the last metadata block
            return [data[at : _trailing_tags(data, len(data))]]


def _wav(data: bytes) -> list[bytes]:
    at = 12
    while at + 8 <= len(data):
        kind, size = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
        if kind == b"data":
            return [data[at + 8 : at + 8 + size]]
        at += 8 + size + (size & 1)  # chunks are padded to an even length
    return []


def _mp4(data: bytes) -> list[bytes]:
    parts: list[bytes] = []
    at = 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[at + 8 : at + 16])[0], 16
        elif size == 0:
            size = len(data) - at
        if size < header:
            raise ValueError("malformed MP4 box")
        if kind == b"mdat":
            parts.append(data[at + header : at + size])
        at += size
    return parts


_READERS = {
    "audio/mpeg": _mp3,
    "audio/ogg": _ogg,
    "audio/flac": _flac,
    "audio/wav": _wav,
    "audio/mp4": _mp4,
}
