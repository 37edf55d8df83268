"""Small valid audio files for the provenance tests, tag stripping as common tools do it,
and real decodable audio made with PyAV for the transcode tests."""

from __future__ import annotations

import io
import struct
from typing import Any

import av
import mutagen
import numpy as np
from av.audio.stream import AudioStream
from mutagen.ogg import OggPage

FloatArray = np.ndarray[Any, np.dtype[np.float32]]


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


# Real, decodable audio made with PyAV (tests/test_transcode.py): container -> (format, codec).
CODECS = {
    "mp3": ("mp3", "libmp3lame"),
    "wav": ("wav", "pcm_s16le"),
    "ogg": ("ogg", "vorbis"),  # FFmpeg's own Vorbis encoder (experimental, fine for tests)
    "flac": ("flac", "flac"),
    "m4a": ("ipod", "aac"),
    "opus": ("ogg", "libopus"),
}


def tone(seconds: float, rate: int, freq: float = 220.0, amplitude: float = 0.5) -> FloatArray:
    """A sine wave, mono float32 in -1..1."""
    t = np.arange(round(seconds * rate), dtype=np.float64) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encode(
    signal: FloatArray, rate: int, kind: str = "mp3", channels: int = 1, bitrate: int = 0
) -> bytes:
    """`signal` (mono float32) encoded as a `kind` file (a CODECS key), on every channel;
    `bitrate` in b/s for lossy codecs (0: the encoder's default)."""
    container_format, codec = CODECS[kind]
    layout = "mono" if channels == 1 else "stereo"
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_format) as output:
        stream = output.add_stream(codec, rate=rate, options={"strict": "experimental"})
        assert isinstance(stream, AudioStream)
        stream.codec_context.layout = layout
        if bitrate:
            stream.codec_context.bit_rate = bitrate
        sample_format = stream.codec_context.format
        step = 1152
        for start in range(0, len(signal), step):
            frame = _frame(signal[start : start + step], sample_format.name, layout, channels)
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()


def _frame(chunk: FloatArray, sample_format: str, layout: str, channels: int) -> av.AudioFrame:
    planar = sample_format.endswith("p")
    array: np.ndarray[Any, Any] = (
        np.tile(chunk, (channels, 1)) if planar else np.repeat(chunk, channels)[None, :]
    )
    if sample_format.startswith("s16"):
        array = (array * 32767).astype(np.int16)
    elif sample_format.startswith("s32"):
        array = (array * 2147483647).astype(np.int32)
    return av.AudioFrame.from_ndarray(array, format=sample_format, layout=layout)


def real_mp3(seconds: float, freq: float = 220.0, rate: int = 44100, channels: int = 1) -> bytes:
    return encode(tone(seconds, rate, freq), rate, "mp3", channels)


def real_wav(seconds: float, freq: float = 220.0, rate: int = 48000, channels: int = 1) -> bytes:
    return encode(tone(seconds, rate, freq), rate, "wav", channels)


def flac_claiming(seconds: float, rate: int = 8000) -> bytes:
    """One second of silent FLAC whose STREAMINFO claims `seconds`: a cheap stand-in for a
    small file that decodes to hours (FFmpeg trusts the claim for the duration)."""
    data = bytearray(encode(np.zeros(rate, np.float32), rate, "flac"))
    assert data[:4] == b"fLaC"
    assert data[4] & 0x7F == 0  # STREAMINFO comes first
    # Bytes 8+10..8+18 of STREAMINFO: rate (20 bits), channels-1 (3), bits-1 (5), samples (36).
    packed = int.from_bytes(data[18:26], "big")
    packed = (packed & ~((1 << 36) - 1)) | round(seconds * rate)
    data[18:26] = packed.to_bytes(8, "big")
    return bytes(data)


def opus_facts(ogg: bytes) -> tuple[str, str, int, int, float]:
    """(container, codec, rate, channels, seconds decoded) of an encoding, read back."""
    with av.open(io.BytesIO(ogg), mode="r") as container:
        assert len(container.streams) == 1
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return (
            container.format.name,
            stream.codec_context.name,
            stream.codec_context.sample_rate,
            stream.codec_context.channels,
            samples / 48000,
        )
