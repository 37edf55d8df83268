"""`make bench ARGS="--only transcode"`: what bot/transcode.py costs, and whether the event
loop stays responsive while many results are transcoded at once.

The clip is speech-like: 30 s of voiced syllables (a 110–190 Hz glottal buzz with its
harmonics, ~4 syllables a second, breath noise and pauses), a 128 kb/s 44.1 kHz mono MP3
as Segmind returns. CPU is this process's (`time.process_time`, all threads) per second of
audio. The burst runs `BURST` conversions at once through `Transcoder` (threads) and, for
the choice of threads over processes, through a process pool of the same size.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from bot import transcode
from bot.audio import AudioFile
from bot.transcoder import Transcoder
from tests.audio_files import FloatArray, encode

from . import docs
from .core_report import floors_table
from .lag import LagTicker
from .noise import OtherLoad, own_cpu_s
from .procstat import peak_rss_mb
from .section import Floor, Options, SectionReport

NAME = "transcode"
TITLE = "Transcode: audio in-process with PyAV"
CLIP_SECONDS = 30.0
CLIP_RATE = 44100
CLIP_BITRATE = 128_000
BURST = 50
WORKERS = 2  # Transcoder's default
LAG_P99_LIMIT_MS = 10.0
BURST_HEADERS = ("wall s", "CPU s", "lag p50 ms", "lag p99 ms", "lag max ms", "p99 each run")
POOLS = ("threads", "processes")
FIT_BITRATE = 32_000  # the rung fit_opus must step down to (the MP3 is ~4x its size)


def speech_like(seconds: float = CLIP_SECONDS, rate: int = CLIP_RATE) -> FloatArray:
    """Mono float32 that codes like speech: voiced syllables with pauses, not a pure tone."""
    rng = np.random.default_rng(14)
    t = np.arange(round(seconds * rate)) / rate
    pitch = 150 + 40 * np.sin(2 * np.pi * 0.3 * t) + 10 * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = np.zeros_like(t)
    for harmonic in range(1, 16):
        voiced += np.sin(harmonic * phase) / harmonic
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
    pauses = (t % 3.0) < 2.4  # a phrase of 2.4 s, then 0.6 s of breath
    signal = 0.25 * voiced * syllables * pauses + 0.01 * rng.standard_normal(t.size)
    peak = float(np.abs(signal).max())
    scaled: FloatArray = (signal * (0.8 / peak)).astype(np.float32)
    return scaled


@dataclass(frozen=True)
class Burst:
    pool: str
    wall_s: float
    cpu_s: float  # this process and its reaped children (the pool's worker processes)
    lag_ms: tuple[float, float, float]  # p50, p99, max


def _cpu_per_audio_s(call: Callable[[], object], repeat: int) -> float:
    """Median CPU seconds per second of clip over `repeat` runs."""
    costs = []
    for _ in range(repeat):
        started = time.process_time()
        call()
        costs.append((time.process_time() - started) / CLIP_SECONDS)
    return statistics.median(costs)


async def _burst(pool: str, audio: AudioFile) -> Burst:
    ticker = LagTicker()
    convert: Callable[[], Awaitable[object]]
    if pool == "threads":
        transcoder = Transcoder(workers=WORKERS)

        def convert() -> Awaitable[object]:
            return transcoder.voice_message(audio)

        close: Callable[[], Awaitable[None]] = transcoder.close
    else:
        processes = ProcessPoolExecutor(max_workers=WORKERS)
        loop = asyncio.get_running_loop()

        def convert() -> Awaitable[object]:
            return loop.run_in_executor(processes, transcode.voice_message, audio.data)

        async def close() -> None:
            await asyncio.to_thread(processes.shutdown)

        # Start the workers first: their start-up is not the transcoding's cost.
        await asyncio.gather(*(loop.run_in_executor(processes, os.getpid) for _ in range(2)))
    try:
        ticker.start()
        wall, cpu = time.perf_counter(), own_cpu_s()
        await asyncio.wait_for(asyncio.gather(*(convert() for _ in range(BURST))), 600)
        wall = time.perf_counter() - wall
        await ticker.stop()
    finally:
        await ticker.stop()
        await close()  # joins the worker processes, so their CPU is counted
    return Burst(pool, wall, own_cpu_s() - cpu, ticker.stats_ms())


def _median_burst(runs: list[Burst]) -> Burst:
    lags = tuple(statistics.median(r.lag_ms[i] for r in runs) for i in range(3))
    return Burst(
        runs[0].pool,
        statistics.median(r.wall_s for r in runs),
        statistics.median(r.cpu_s for r in runs),
        (lags[0], lags[1], lags[2]),
    )


def run(options: Options) -> SectionReport:
    when = time.strftime("%Y-%m-%d")
    others = OtherLoad()
    mp3 = encode(speech_like(), CLIP_RATE, "mp3", bitrate=CLIP_BITRATE)
    audio = AudioFile(mp3, "audio/mpeg", "mp3")
    ogg, _ = transcode.voice_message(mp3)
    fit_limit = transcode.estimate_size(CLIP_SECONDS, FIT_BITRATE)
    fitted = transcode.fit_opus(mp3, fit_limit)
    repeat = max(options.repeat, 3)
    costs = [
        (
            f"voice_message: decode + Opus {transcode.VOICE_BITRATE // 1000} kb/s + waveform",
            _cpu_per_audio_s(lambda: transcode.voice_message(mp3), repeat),
            f"{len(ogg) / 1000:,.0f} KB",
        ),
        (
            f"fit_opus to {fit_limit / 1000:,.0f} KB (steps down to {FIT_BITRATE // 1000} kb/s)",
            _cpu_per_audio_s(lambda: transcode.fit_opus(mp3, fit_limit), repeat),
            f"{len(fitted or b'') / 1000:,.0f} KB",
        ),
        (
            "duration_of: the header, checked by decoding 0.1 s",
            _cpu_per_audio_s(lambda: transcode.duration_of(mp3), repeat),
            f"{transcode.duration_of(mp3):.2f} s",
        ),
        (
            "pcm_frames: decode to 20 ms stereo PCM (voice channels)",
            _cpu_per_audio_s(lambda: sum(1 for _ in transcode.pcm_frames(mp3)), repeat),
            f"{len(list(transcode.pcm_frames(mp3)))} frames",
        ),
    ]
    runs: dict[str, list[Burst]] = {pool: [] for pool in POOLS}
    for _ in range(repeat):  # interleaved, so a busy spell on the host hits both alike
        for pool in POOLS:
            runs[pool].append(asyncio.run(_burst(pool, audio)))
            print(f"  {pool}: {runs[pool][-1]}", flush=True)
    bursts = [_median_burst(runs[pool]) for pool in POOLS]
    rss = peak_rss_mb(os.getpid())
    load = others.share()

    cost_table = docs.table(
        ["call (30 s speech-like MP3, 128 kb/s 44.1 kHz mono)", "CPU ms / s of audio", "out"],
        [[name, f"{cpu * 1000:.2f}", out] for name, cpu, out in costs],
    )
    burst_table = docs.table(
        [f"{BURST} voice_message at once, {WORKERS} workers", *BURST_HEADERS],
        [
            [
                "threads (Transcoder)" if b.pool == "threads" else "processes (for comparison)",
                f"{b.wall_s:.2f}",
                f"{b.cpu_s:.2f}",
                *(f"{v:.2f}" for v in b.lag_ms),
                " / ".join(f"{r.lag_ms[1]:.1f}" for r in runs[b.pool]),
            ]
            for b in bursts
        ],
    )
    threads, processes = bursts
    floors = [
        Floor(
            f"loop lag p99, {BURST} results transcoded at once (Transcoder)",
            LAG_P99_LIMIT_MS,
            threads.lag_ms[1],
            "ms",
        )
    ]
    floor_text = floors_table(floors)
    notes = (
        f"Clip: {len(mp3) / 1000:,.0f} KB. CPU per second of audio: the median of {repeat} "
        "runs, this process's CPU time (all threads) divided by the clip's 30 s. fit_opus "
        "codes fewer bits than voice_message yet costs more: libopus's modes below ~40 kb/s "
        f"take more CPU. The burst: {BURST} conversions queued at once while the loop runs a "
        "5 ms ticker (bench/lag.py); lag is how late it wakes. Each figure is the median of "
        f"{repeat} runs, threads and processes interleaved; CPU counts the worker processes "
        f"too. Processes finished the burst in {processes.wall_s / threads.wall_s:.0%} of the "
        "threads' time (threads still take turns on the GIL between PyAV calls), but the "
        "floor is the loop's lag, which threads meet as well, with no interpreter per worker "
        "and no audio pickled across: `Transcoder` uses threads (its pool is internal, so "
        "that is one line to change). PyAV decodes into 200 ms frames: with the decoder's "
        "~24 ms frames two threads scaled far worse. On this shared 2-core host the lag of "
        "both varies with the other processes' load (see each run's p99). Each job holds one "
        f"decoded chunk at a time; peak RSS of the whole benchmark process: {rss:.0f} MB."
    )
    markdown = "\n\n".join(
        (
            f"## {TITLE}",
            docs.provenance(when, load, "av", "numpy"),
            cost_table,
            burst_table,
            notes,
            f"Floors:\n\n{floor_text}",
        )
    )
    text = "\n\n".join((TITLE, cost_table, burst_table, floor_text))
    return SectionReport(NAME, text, markdown, floors)
