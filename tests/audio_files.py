"""Small valid audio files for the provenance tests, and tag stripping as common tools do it."""

from __future__ import annotations

import io
import struct

import mutagen
from mutagen.ogg import OggPage


def untagged(data: bytes) -> bytes:
    """The file without any tags, as mutagen's `delete()` leaves it: what a test compares
    with the fake's audio once the bot has stamped its provenance tags on it."""
    buffer = io.BytesIO(data)
    file = mutagen.File(buffer)
    if file is not None:
        buffer.seek(0)  # FLAC's delete reads from where the buffer is
        file.delete(buffer)
    return buffer.getvalue()


def fake_opus(payload: bytes = b"\xf8\xff\xfe", vendor: bytes = b"test") -> bytes:
    """A minimal Ogg Opus file: the identification header, a comment header (no comments)
    and one audio packet (a 20 ms CELT silence frame), one page each."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    out = b""
    for sequence, (packet, position) in enumerate(((head, 0), (tags, 0), (payload, 960))):
        page = OggPage()
        page.serial, page.sequence, page.position = 7, sequence, position
        page.packets = [packet]
        page.first, page.last = sequence == 0, sequence == 2
        out += page.write()
    return out
