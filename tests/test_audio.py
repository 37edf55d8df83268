"""Audio recognition by bytes."""

from __future__ import annotations

import pytest

from bot.audio import identify_audio, sniff_audio


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"ID3\x04\x00\x00" + b"\x00" * 20, "audio/mpeg"),
        (b"\xff\xfb\x90\x64" + b"\x00" * 20, "audio/mpeg"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"OggS\x00\x02" + b"\x00" * 20, "audio/ogg"),
        (b"fLaC\x00\x00\x00\x22", "audio/flac"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", "audio/mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "audio/webm"),
        (b"\xff\xf1\x50\x80", "audio/aac"),
    ],
)
def test_sniff(data: bytes, mime: str) -> None:
    assert sniff_audio(data) == mime


@pytest.mark.parametrize("data", [b"", b"<html>", b"%PDF-1.7", b"\x89PNG\r\n", b'{"a":1}'])
def test_not_audio(data: bytes) -> None:
    assert sniff_audio(data) is None
    assert identify_audio(data) is None


@pytest.mark.parametrize(
    "data",
    [b"PK\x03\x04zipped-archive", b"\x01\x02unknowncodec", b"<html>error</html>", b"\x7fELF"],
)
def test_only_the_bytes_make_audio(data: bytes) -> None:
    # Whatever the server declared (the caller no longer even passes it), these are not audio.
    assert identify_audio(data) is None


def test_recognised_bytes_name_the_type() -> None:
    assert identify_audio(b"ID3\x04") == ("audio/mpeg", "mp3")
    assert identify_audio(b"OggS\x00\x02") == ("audio/ogg", "ogg")
