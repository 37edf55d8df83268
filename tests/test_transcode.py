"""bot/transcode.py against real audio made with PyAV, and against hostile bytes."""

from __future__ import annotations

import asyncio
import base64
import math
import os
import threading
import time

import av
import numpy as np
import pytest

from bot import transcode
from bot.audio import AudioFile, VoiceShape
from bot.transcode import (
    FLOOR_BITRATE,
    FRAME_BYTES,
    MAX_SECONDS,
    duration_of,
    estimate_size,
    fit_opus,
    pcm_frames,
    to_opus,
    voice_message,
)
from bot.transcoder import AudioError, Transcoder
from tests.audio_files import encode, flac_claiming, opus_facts, real_mp3, real_wav, tone
from tests.fakes.segmind_shapes import fake_mp3

SECONDS = 2.0


@pytest.mark.parametrize(
    ("kind", "rate", "channels"),
    [
        ("mp3", 44100, 1),
        ("mp3", 48000, 2),
        ("mp3", 8000, 1),
        ("wav", 8000, 1),
        ("wav", 44100, 2),
        ("ogg", 44100, 2),
        ("ogg", 22050, 2),  # FFmpeg's Vorbis encoder makes stereo only
        ("flac", 44100, 1),
        ("flac", 48000, 2),
        ("m4a", 44100, 2),
        ("m4a", 48000, 1),
        ("opus", 48000, 2),
    ],
)
def test_voice_message_is_mono_48k_opus_in_ogg(kind: str, rate: int, channels: int) -> None:
    source = encode(tone(SECONDS, rate), rate, kind, channels)

    ogg, shape = voice_message(source)

    container, codec, out_rate, out_channels, decoded = opus_facts(ogg)
    assert (container, codec, out_rate, out_channels) == ("ogg", "opus", 48000, 1)
    assert shape.duration_secs == pytest.approx(SECONDS, abs=0.03)
    assert decoded == pytest.approx(SECONDS, abs=0.03)
    assert duration_of(source) == pytest.approx(SECONDS, abs=0.03)
    points = base64.b64decode(shape.waveform, validate=True)
    assert 1 <= len(points) <= 256
    assert max(points) == 255  # a steady tone: every point near the loudest


def test_waveform_follows_loudness() -> None:
    rate = 44100
    signal = np.concatenate([np.zeros(rate, np.float32), tone(1.0, rate, amplitude=0.8)])

    _, shape = voice_message(encode(signal, rate, "wav"))

    points = list(base64.b64decode(shape.waveform))
    assert len(points) == 20  # one point per 100 ms
    quiet, loud = points[:9], points[11:]  # the middle two straddle the step
    assert max(quiet) <= 2
    assert min(loud) >= 200
    assert max(points) == 255


def test_waveform_stays_aligned_on_a_long_clip() -> None:
    # 60 s: thousands of 10 ms buckets, merged pairwise while decoding.
    rate = 8000
    signal = np.concatenate([np.zeros(37 * rate, np.float32), tone(23.0, rate)])

    _, shape = voice_message(encode(signal, rate, "wav"))

    points = list(base64.b64decode(shape.waveform))
    step = round(37 / 60 * 256)  # the point where the tone starts
    assert len(points) == 256
    assert max(points[: step - 1]) <= 2
    assert min(points[step + 1 :]) >= 200


def test_voice_message_bitrate_sets_the_size() -> None:
    source = real_mp3(5.0)
    small, _ = voice_message(source, bitrate=24_000)
    large, _ = voice_message(source, bitrate=96_000)
    assert len(small) < len(large) / 2


def test_pyav_bundles_the_codecs_we_need() -> None:
    # PyAV's wheels carry FFmpeg with libopus and an MP3 decoder: nothing on the host.
    assert {"libopus", "mp3"} <= av.codecs_available


def test_waveform_points_are_capped_and_at_least_one() -> None:
    long_clip = voice_message(real_wav(60.0, rate=8000))[1]
    short_clip = voice_message(real_wav(0.12))[1]
    silent = voice_message(encode(np.zeros(8000, np.float32), 8000, "wav"))[1]

    assert len(base64.b64decode(long_clip.waveform)) == 256
    assert long_clip.duration_secs == pytest.approx(60.0, abs=0.03)
    assert len(base64.b64decode(short_clip.waveform)) == 1
    assert set(base64.b64decode(silent.waveform)) == {0}


def test_to_opus_size_follows_the_bitrate() -> None:
    source = real_mp3(10.0)
    sizes = {bitrate: len(to_opus(source, bitrate)) for bitrate in (96_000, 48_000, 24_000)}

    for bitrate, size in sizes.items():
        assert 10.0 * bitrate / 8 <= size <= estimate_size(10.0, bitrate)
    assert opus_facts(to_opus(source, 32_000))[1:4] == ("opus", 48000, 1)


@pytest.fixture(scope="module")
def speech_like() -> bytes:
    return real_mp3(20.0)


def encodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The bitrates `to_opus` is called with from now on, in order."""
    tried: list[int] = []
    real_to_opus = transcode.to_opus

    def spy(data: bytes, bitrate: int) -> bytes:
        tried.append(bitrate)
        return real_to_opus(data, bitrate)

    monkeypatch.setattr(transcode, "to_opus", spy)
    return tried


@pytest.mark.parametrize("bitrate", [96_000, 64_000, 48_000, 32_000, 24_000])
def test_fit_opus_picks_the_best_rung_that_fits(
    speech_like: bytes, bitrate: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = estimate_size(20.0, bitrate)
    tried = encodes(monkeypatch)

    ogg = fit_opus(speech_like, limit)

    assert tried == [bitrate]  # the estimate is right: one encode
    assert ogg is not None
    assert len(ogg) <= limit
    assert len(ogg) >= 20.0 * bitrate / 8  # not a lower rung than needed
    assert opus_facts(ogg)[1:4] == ("opus", 48000, 1)


def test_fit_opus_is_none_below_the_floor(speech_like: bytes) -> None:
    assert fit_opus(speech_like, int(20.0 * FLOOR_BITRATE / 8 * 0.9)) is None
    assert fit_opus(speech_like, 1) is None


def test_fit_opus_steps_down_when_the_real_size_is_over(
    speech_like: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transcode, "estimate_size", lambda seconds, bitrate: 0)
    limit = 20 * 40_000 // 8  # between the 32k and 48k encodings' real sizes
    tried = encodes(monkeypatch)

    ogg = fit_opus(speech_like, limit)

    assert ogg is not None
    assert len(ogg) <= limit
    assert tried == [96_000, 64_000, 48_000, 32_000]


def test_pcm_frames_are_20ms_stereo_with_silent_padding() -> None:
    samples = 48000 + 480  # 1.01 s: 50 whole frames and half of one
    frames = list(pcm_frames(encode(tone(samples / 48000, 48000), 48000, "wav")))

    assert len(frames) == math.ceil(samples / 48000 * 50) == 51
    assert {len(f) for f in frames} == {FRAME_BYTES}
    last = np.frombuffer(frames[-1], dtype="<i2").reshape(-1, 2)
    assert np.any(last[:480] != 0)
    assert not np.any(last[480:])  # padding is silence
    first = np.frombuffer(frames[1], dtype="<i2").reshape(-1, 2)
    assert np.array_equal(first[:, 0], first[:, 1])  # mono on both channels
    assert np.abs(first).max() > 10000


@pytest.mark.parametrize(("kind", "rate"), [("mp3", 44100), ("flac", 8000), ("m4a", 44100)])
def test_pcm_frame_count_matches_the_duration(kind: str, rate: int) -> None:
    source = encode(tone(1.234, rate), rate, kind)

    frames = list(pcm_frames(source))

    assert len(frames) == math.ceil(voice_message(source)[1].duration_secs * 50)
    assert abs(len(frames) - math.ceil(1.234 * 50)) <= 1


def _hostile() -> dict[str, bytes]:
    mp3 = real_mp3(1.0)
    return {
        "empty": b"",
        "random": os.urandom(4096),
        "png": b"\x89PNG\r\n\x1a\n" + os.urandom(512),
        "html": b"<html><body>502 Bad Gateway</body></html>",
        "truncated mp3": mp3[:100],
        "segmind fake": fake_mp3(),
        "segmind fake, a job's tag": fake_mp3(b"job-12"),  # FFmpeg decodes these frames
        "too short": real_wav(0.05),
        "claims too long": flac_claiming(MAX_SECONDS + 60),
    }


HOSTILE = _hostile()


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize(
    "call",
    [
        duration_of,
        voice_message,
        lambda data: to_opus(data, 32_000),
        lambda data: fit_opus(data, 10_000_000),
        lambda data: list(pcm_frames(data)),
    ],
    ids=["duration_of", "voice_message", "to_opus", "fit_opus", "pcm_frames"],
)
def test_hostile_input_is_an_audio_error(name: str, call: object) -> None:
    assert callable(call)
    with pytest.raises(AudioError) as caught:
        call(HOSTILE[name])
    assert len(str(caught.value)) < 120  # a short reason, never the bytes


def test_pcm_frames_yield_nothing_from_garbage() -> None:
    # The player thread must not play the start of something that turns out not to be audio.
    for data in (fake_mp3(b"job-12"), real_wav(0.05)):
        with pytest.raises(AudioError):
            next(pcm_frames(data))


def test_decoding_stops_past_max_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    # A container that claims nothing: only the decoded sample count can catch it.
    monkeypatch.setattr(transcode, "MAX_SECONDS", 1)
    monkeypatch.setattr(transcode, "_header_seconds", lambda container: None)
    source = real_wav(3.0, rate=8000)

    with pytest.raises(AudioError, match="too long"):
        voice_message(source)
    with pytest.raises(AudioError, match="too long"):
        duration_of(source)
    with pytest.raises(AudioError, match="too long"):
        list(pcm_frames(source))
    assert duration_of(real_wav(0.5, rate=8000)) == pytest.approx(0.5, abs=0.001)


def test_fake_segmind_audio_is_refused_whatever_its_tag() -> None:
    # The fake's frames are garbage; FFmpeg rejects some and conceals others as 78 ms.
    for index in range(40):
        with pytest.raises(AudioError):
            voice_message(fake_mp3(f"job-{index}".encode()))


def test_max_seconds_allows_the_longest_speech() -> None:
    assert 20 * 60 <= MAX_SECONDS <= 60 * 60
    assert duration_of(flac_claiming(MAX_SECONDS - 60)) == pytest.approx(MAX_SECONDS - 60)
    with pytest.raises(AudioError, match="too long"):
        duration_of(flac_claiming(MAX_SECONDS + 60))


def _mp3_file(seconds: float) -> AudioFile:
    return AudioFile(real_mp3(seconds), "audio/mpeg", "mp3", source_url="https://x/a.mp3")


async def test_transcoder_voice_message_fit_and_duration() -> None:
    transcoder = Transcoder()
    try:
        audio = _mp3_file(4.0)
        voice = await transcoder.voice_message(audio)
        assert (voice.content_type, voice.extension, voice.source_url) == (
            "audio/ogg",
            "ogg",
            "https://x/a.mp3",
        )
        assert isinstance(voice.voice, VoiceShape)
        assert voice.voice.duration_secs == pytest.approx(4.0, abs=0.03)
        assert voice.data.startswith(b"OggS")

        assert await transcoder.fit(audio, audio.size) is audio
        smaller = await transcoder.fit(voice, voice.size - 1)
        assert smaller is not None
        assert smaller.size <= voice.size - 1
        assert smaller.voice == voice.voice  # the same sound: its shape is kept
        plain = await transcoder.fit(audio, audio.size - 1)
        assert plain is not None
        assert (plain.content_type, plain.voice) == ("audio/ogg", None)
        assert await transcoder.fit(audio, 1000) is None

        assert await transcoder.duration(audio) == pytest.approx(4.0, abs=0.03)
        with pytest.raises(AudioError):
            await transcoder.voice_message(AudioFile(fake_mp3(), "audio/mpeg", "mp3"))
    finally:
        await transcoder.close()


async def test_transcoder_keeps_the_loop_responsive() -> None:
    transcoder = Transcoder()
    audio = _mp3_file(90.0)
    gaps: list[float] = []

    async def probe() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(probe())
    try:
        started = time.perf_counter()
        voice = await transcoder.voice_message(audio)
        took = time.perf_counter() - started
    finally:
        ticker.cancel()
        await transcoder.close()
    assert voice.voice is not None
    assert took > 0.1  # long enough for the probe to mean something
    assert len(gaps) >= took / 0.05  # the loop kept ticking while the work ran
    assert max(gaps) < 0.1


async def test_close_cancels_queued_work_and_refuses_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started, release = threading.Event(), threading.Event()

    def blocked(data: bytes, bitrate: int = 0) -> tuple[bytes, VoiceShape]:
        started.set()
        assert release.wait(10)
        return b"OggS", VoiceShape(1.0, "AA==")

    monkeypatch.setattr(transcode, "voice_message", blocked)
    transcoder = Transcoder(workers=1)
    audio = AudioFile(b"x", "audio/mpeg", "mp3")
    running = asyncio.create_task(transcoder.voice_message(audio))
    queued = asyncio.create_task(transcoder.voice_message(audio))
    assert await asyncio.to_thread(started.wait, 10)

    closing = asyncio.create_task(transcoder.close())
    await asyncio.sleep(0)  # let close() cancel the queue before the worker is freed
    release.set()
    await asyncio.wait_for(closing, 10)

    assert (await running).data == b"OggS"  # running work finishes
    with pytest.raises(asyncio.CancelledError):
        await queued
    with pytest.raises(AudioError, match="closed"):
        await transcoder.duration(audio)
    await transcoder.close()  # twice is fine
