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
    assert identify_audio(data, "application/octet-stream") is None


def test_declared_type_trusted_only_for_non_text() -> None:
    assert identify_audio(b"\x01\x02unknowncodec", "audio/x-custom") == ("audio/x-custom", "bin")
    assert identify_audio(b"<html>error</html>", "audio/mpeg") is None
    assert identify_audio(b"ID3\x04", "text/html") == ("audio/mpeg", "mp3")
