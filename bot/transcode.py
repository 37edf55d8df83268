"""Audio in-process with PyAV: decode what Segmind returns, encode Opus, measure it.

PyAV's wheels bundle FFmpeg with libopus, so nothing is needed on the host. The functions
here block (PyAV releases the GIL while it codes); `Transcoder` (bot/transcoder.py) is
their async face on a small bounded pool. Every pass decodes incrementally, one 200 ms
chunk at a time, never the whole PCM, and stops at MAX_SECONDS so a small hostile file
cannot cost hours of CPU.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
from collections.abc import Generator, Iterator
from typing import Any, TypeVar

import av
import av.error
import numpy as np
from av.audio.frame import AudioFrame
from av.container import InputContainer

from .audio import VoiceShape
from .transcoder import AudioError

T = TypeVar("T")


VOICE_BITRATE = 64_000
"""b/s for voice messages: transparent for speech at 48 kHz mono, ~480 KB a minute."""
FLOOR_BITRATE = 24_000
"""The lowest bitrate that still sounds like speech (Opus wideband speech holds up to here)."""
LADDER = (96_000, 64_000, 48_000, 32_000, FLOOR_BITRATE)
"""Bitrates `fit_opus` tries, best first."""
MIN_SECONDS = 0.1
"""Decoded audio shorter than this is refused: no word fits in it, and it is what a few
garbage MPEG frames decode to (FFmpeg conceals some as 78 ms of noise instead of failing)."""
MAX_SECONDS = 30 * 60
"""Decoded audio longer than this is refused. The longest text the bot accepts (5,000
characters) is about 6 minutes of speech, 17 at a very slow 5 characters a second; 30
minutes leaves room for that and bounds a hostile file's cost to 10–20 s of CPU (6–12 ms
per second of audio, bench/transcode.py)."""
RATE = 48_000
"""Opus and Discord's voice both run at 48 kHz."""
FRAME_BYTES = 3840
"""20 ms of 48 kHz stereo s16le PCM: what discord.py's player reads per packet."""
WAVEFORM_POINTS = 256
"""Discord's maximum; official clients use about one point per 100 ms up to it."""
_POINT_SECONDS = 0.1
_CHUNK_SAMPLES = 9600  # 200 ms per resampled frame: a third less CPU than the decoder's
# ~24 ms frames, and two threads scale (measured in bench/transcode.py: fewer GIL round trips)
_BLOCK = 480  # samples (10 ms at 48 kHz) in the waveform's finest bucket
_MAX_BUCKETS = 1024  # the waveform keeps at most this many buckets while decoding
_OGG_BYTES_PER_SECOND = 100  # Ogg page headers at 50 packets/s: measured ~90 at any bitrate
_HEADER_BYTES = 1024  # OpusHead + OpusTags pages (~100 bytes) with room to spare
_REASON_LIMIT = 80  # characters of a PyAV error kept in an AudioError


def _error(action: str, exc: BaseException) -> AudioError:
    """A short message: FFmpeg's reason, never the bytes or a long repr."""
    reason = exc.strerror if isinstance(exc, av.error.FFmpegError) else None
    return AudioError(f"{action}: {(reason or type(exc).__name__)[:_REASON_LIMIT]}")


def _open(data: bytes) -> InputContainer:
    if not data:
        raise AudioError("empty audio")
    try:
        return av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise _error("cannot open audio", exc) from None


def _header_seconds(container: InputContainer) -> float | None:
    """The duration the container claims (None if it says nothing)."""
    stream = container.streams.audio[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _resampled(container: InputContainer, layout: str, sample_format: str) -> Iterator[AudioFrame]:
    resampler = av.AudioResampler(
        format=sample_format, layout=layout, rate=RATE, frame_size=_CHUNK_SAMPLES
    )
    for frame in container.decode(container.streams.audio[0]):
        frame.pts = None  # resample by sample count: broken timestamps are common
        yield from resampler.resample(frame)
    yield from resampler.resample(None)


def _frames(data: bytes, layout: str, sample_format: str) -> Generator[AudioFrame, None, None]:
    """Decoded 48 kHz frames of the first audio stream, one at a time; AudioError on bad
    input, no audio stream, under MIN_SECONDS or over MAX_SECONDS. The first MIN_SECONDS
    are held back until they are complete, so a caller never gets a garbage clip's start."""
    with _open(data) as container:
        if not container.streams.audio:
            raise AudioError("no audio stream")
        claimed = _header_seconds(container)
        if claimed is not None and claimed > MAX_SECONDS:
            raise AudioError(f"audio too long: {claimed:.0f} s claimed (max {MAX_SECONDS})")
        samples, most, least = 0, MAX_SECONDS * RATE, round(MIN_SECONDS * RATE)
        held: list[AudioFrame] | None = []
        try:
            for frame in _resampled(container, layout, sample_format):
                samples += frame.samples
                if samples > most:
                    raise AudioError(f"audio too long: over {MAX_SECONDS} s decoded")
                if held is None:
                    yield frame
                    continue
                held.append(frame)
                if samples >= least:
                    yield from held
                    held = None
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise _error("cannot decode audio", exc) from None
        if held is not None:
            raise AudioError(f"audio too short: {samples / RATE:.2f} s decoded")


def duration_of(data: bytes) -> float:
    """Seconds of audio: the container's claim once a first frame decodes (garbage with a
    plausible header is refused), or a full decode when it makes no claim."""
    with _open(data) as container:
        claimed = _header_seconds(container) if container.streams.audio else None
    frames = _frames(data, "mono", "s16")  # checks the claim against MAX_SECONDS too
    try:
        first = next(frames)  # MIN_SECONDS decoded, so the bytes are audio
        if claimed is not None:
            return claimed
        return (first.samples + sum(f.samples for f in frames)) / RATE
    finally:
        frames.close()


class _Waveform:
    """Mean absolute amplitude per bucket, in bounded memory: buckets start at 10 ms and
    pairs merge (doubling the bucket) whenever there are more than _MAX_BUCKETS."""

    def __init__(self) -> None:
        self.size = _BLOCK  # samples per bucket
        self.sums: list[float] = []
        self.partial_sum = 0.0
        self.partial_count = 0

    def add(self, mono: np.ndarray[Any, np.dtype[np.float32]]) -> None:
        magnitudes = np.abs(mono)
        head = min(self.size - self.partial_count, len(magnitudes))
        self.partial_sum += float(magnitudes[:head].sum())
        self.partial_count += head
        if self.partial_count == self.size:
            self.sums.append(self.partial_sum)
            self.partial_sum, self.partial_count = 0.0, 0
        rest = magnitudes[head:]
        whole = len(rest) // self.size * self.size
        if whole:
            self.sums.extend(rest[:whole].reshape(-1, self.size).sum(axis=1).tolist())
        self.partial_sum += float(rest[whole:].sum())
        self.partial_count += len(rest) - whole
        while len(self.sums) > _MAX_BUCKETS:
            self._merge()

    def _merge(self) -> None:
        if len(self.sums) % 2:  # the odd bucket out joins the partial one
            self.partial_sum += self.sums.pop()
            self.partial_count += self.size
        self.sums = [a + b for a, b in zip(self.sums[::2], self.sums[1::2], strict=True)]
        self.size *= 2

    def encode(self, samples: int) -> str:
        """Base64 of 1..256 points, 0–255, the loudest point 255 (silence stays 0)."""
        means = [s / self.size for s in self.sums]
        if self.partial_count:
            means.append(self.partial_sum / self.partial_count)
        seconds = samples / RATE
        points = max(1, min(WAVEFORM_POINTS, round(seconds / _POINT_SECONDS), len(means)))
        edges = np.linspace(0, len(means), points + 1).round().astype(int)
        values = np.array([np.mean(means[a:b]) for a, b in itertools.pairwise(edges)])
        peak = float(values.max())
        scaled = values / peak * 255 if peak > 1e-4 else np.zeros_like(values)
        return base64.b64encode(scaled.round().astype(np.uint8).tobytes()).decode("ascii")


def _encode_opus(
    data: bytes, bitrate: int, vbr: str, waveform: _Waveform | None = None
) -> tuple[bytes, int]:
    """(mono 48 kHz Opus in Ogg, samples decoded); feeds `waveform` on the way."""
    out_buffer = io.BytesIO()
    samples = 0
    with av.open(out_buffer, mode="w", format="ogg") as output:
        stream = output.add_stream("libopus", rate=RATE, options={"vbr": vbr})
        stream.codec_context.layout = "mono"
        stream.codec_context.format = "flt"
        stream.codec_context.bit_rate = bitrate
        for frame in _frames(data, "mono", "flt"):
            samples += frame.samples
            if waveform is not None:
                waveform.add(frame.to_ndarray().reshape(-1).astype(np.float32, copy=False))
            frame.pts = None
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return out_buffer.getvalue(), samples


def voice_message(data: bytes, bitrate: int = VOICE_BITRATE) -> tuple[bytes, VoiceShape]:
    """One decode pass: mono 48 kHz Opus in Ogg, and its duration and waveform."""
    waveform = _Waveform()
    ogg, samples = _encode_opus(data, bitrate, "on", waveform)
    return ogg, VoiceShape(duration_secs=samples / RATE, waveform=waveform.encode(samples))


def to_opus(data: bytes, bitrate: int) -> bytes:
    """Mono 48 kHz Opus in Ogg at a constant `bitrate` b/s: its size is predictable
    (`estimate_size`), which `fit_opus` relies on; VBR would undershoot on pauses."""
    return _encode_opus(data, bitrate, "off")[0]


def estimate_size(seconds: float, bitrate: int) -> int:
    """Bytes an Opus/Ogg file of `seconds` at `bitrate` should take, erring high."""
    return math.ceil(seconds * (bitrate / 8 + _OGG_BYTES_PER_SECOND)) + _HEADER_BYTES


def fit_opus(data: bytes, limit: int) -> bytes | None:
    """The best Opus/Ogg encoding of at most `limit` bytes, or None if even FLOOR_BITRATE
    cannot fit: the highest rung whose estimate fits, one step down if the real size
    does not (constant bitrate keeps the estimate close, so that is rare)."""
    seconds = duration_of(data)
    for bitrate in LADDER:
        if estimate_size(seconds, bitrate) > limit:
            continue
        ogg = to_opus(data, bitrate)
        if len(ogg) <= limit:
            return ogg
    return None


def pcm_frames(data: bytes) -> Iterator[bytes]:
    """48 kHz stereo s16le PCM in 20 ms frames of exactly FRAME_BYTES, the last padded
    with silence: ceil(duration x 50) frames, decoded as they are read."""
    pending = bytearray()
    for frame in _frames(data, "stereo", "s16"):
        pending += bytes(frame.planes[0])[: frame.samples * 4]
        whole = len(pending) // FRAME_BYTES * FRAME_BYTES
        for start in range(0, whole, FRAME_BYTES):
            yield bytes(pending[start : start + FRAME_BYTES])
        del pending[:whole]
    if pending:
        yield bytes(pending) + bytes(FRAME_BYTES - len(pending))
