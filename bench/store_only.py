"""The job store alone: `python -m bench.store_only [--jobs 1000] [--repeat 5] [--spread S]`.

N jobs at once, each making the bot's five writes with a loop turn or a short sleep
between some of them (as the HTTP steps would), in a fresh database on this disk. Prints
CPU per job for the whole process and for the store's writer thread: a change to the
store can be judged in seconds, where the core section's figures move with the fake
Segmind sharing the cores. With `--spread`, jobs start over that many seconds, so
commits carry a few statements each rather than hundreds. Not part of `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bot.runtime import run
from bot.store import SqliteJobStore

from . import procstat
from .ours import bench_job

# About the size of the fake Segmind's audio: an ID3 tag and three small MPEG frames.
AUDIO = b"ID3\x04\x00\x00\x00\x00\x00\x10" + bytes(16) + (b"\xff\xfb\x10\xc4" + bytes(100)) * 3


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _pause(rng: random.Random) -> None:
    if rng.random() < 0.5:
        await asyncio.sleep(rng.random() * 0.01)
    else:
        await asyncio.sleep(0)


async def _job(store: SqliteJobStore, index: int, rng: random.Random, spread: float) -> None:
    await asyncio.sleep(rng.random() * spread)
    job_id = f"store-only-{index}"
    await store.add(bench_job(job_id, index, "http://127.0.0.1:1/samples/voice.mp3"))
    await store.mark_submit_started(job_id, 1)
    await _pause(rng)
    await store.mark_submitted(job_id, f"req-{index}", f"http://127.0.0.1:1/poll/{index}")
    await _pause(rng)
    await store.mark_completed(
        job_id, AUDIO, "audio/mpeg", "mp3", "http://127.0.0.1:1/a.mp3", delivering=True
    )
    await store.mark_delivered(job_id, "interaction", 1)


async def _once(jobs: int, seed: int, spread: float) -> tuple[float, float, float]:
    """CPU ms per job (process, writer thread) and wall seconds of one run."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="bench-store-only-") as data_dir:
        async with SqliteJobStore(Path(data_dir)) as store:
            await _job(store, -1, rng, 0)  # warm-up: statement cache, first pages
            writer = next(t for t in threading.enumerate() if t.name == "job-store")
            tid = writer.native_id or 0
            cpu0, thread0, wall0 = _cpu_s(), procstat.thread_cpu_s(tid), time.perf_counter()
            await asyncio.gather(*(_job(store, i, rng, spread) for i in range(jobs)))
            wall = time.perf_counter() - wall0
            cpu, thread = _cpu_s() - cpu0, procstat.thread_cpu_s(tid) - thread0
    return cpu / jobs * 1e3, thread / jobs * 1e3, wall


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--spread", type=float, default=0.0, help="start jobs over S seconds")
    args = parser.parse_args(argv)
    cpus, threads = [], []
    for round_ in range(args.repeat):
        cpu, thread, wall = run(_once(args.jobs, round_, args.spread))
        cpus.append(cpu)
        threads.append(thread)
        print(f"run {round_ + 1}: {cpu:.3f} ms/job ({thread:.3f} on the writer), {wall:.2f} s")
    print(
        f"median: {statistics.median(cpus):.3f} ms/job CPU, "
        f"{statistics.median(threads):.3f} on the writer thread"
    )


if __name__ == "__main__":
    main()
