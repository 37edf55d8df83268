"""One scenario in a fresh process: `python -m bench.scenario --impl ours --jobs 1000 ...`.

A process per scenario keeps the figures clean: peak RSS (VmHWM) is this
implementation's alone, and CPU is the `getrusage` delta around the measured run only (not
interpreter start-up, imports, set-up or the warm-up job). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence

from bot.runtime import run

from . import procstat
from .lag import LagTicker
from .result import ScenarioResult
from .target import Implementation, Target

PG_IMPL = "ours+pg"  # the PostgreSQL store: needs a server (the section starts one)
OUR_IMPLS = ("ours", "ours+store", PG_IMPL)
STORE_THREAD = "job-store"  # the job store's writer thread (bot/store/writer.py)
IMPLS = (*OUR_IMPLS, "requests", "segmind-sdk")


def load(impl: str, database_url: str = "") -> Implementation:
    """Import only the chosen implementation, so no other client's modules inflate RSS."""
    if impl == "ours":
        from .ours import ours

        return ours
    if impl == "ours+store":
        from .ours import ours_with_store

        return ours_with_store
    if impl == PG_IMPL:
        if not database_url:
            raise SystemExit(f"{PG_IMPL} needs --database-url")
        from .ours import ours_with_pg

        return ours_with_pg(database_url)
    if impl == "requests":
        from .peers import requests_peer

        return requests_peer
    if impl == "segmind-sdk":
        from .peers import sdk_peer

        return sdk_peer
    raise ValueError(f"unknown implementation {impl!r}")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu_s(name: str) -> float:
    """User + system CPU so far of this process's thread called `name` (0 if none)."""
    thread = next((t for t in threading.enumerate() if t.name == name), None)
    if thread is None or thread.native_id is None:
        return 0.0
    return procstat.thread_cpu_s(thread.native_id)


def _server_cpu_s(pid: int) -> float:
    """CPU so far of the database server's whole process tree (0 without a server): its
    backends serve only this run's fresh database while it is measured."""
    return procstat.tree_cpu_s(pid) if pid else 0.0


def _rss_mb() -> float:
    """Peak RSS so far in MB (10^6 bytes): VmHWM, the high-water mark of this process's
    own memory. Not `ru_maxrss`: Linux carries that over from the parent across fork and
    exec, so every scenario would report at least the parent's size."""
    return procstat.peak_rss_mb(os.getpid())


def _is_audio(outcome: object) -> bool:
    # The fake's audio is an MP3 with an ID3 tag; ours has checked it already, peers not.
    return isinstance(outcome, bytes) and outcome[:3] == b"ID3"


def _kind(outcome: object) -> str:
    """ "ReadTimeout in download": the exception type, and the step if a peer tagged it."""
    if not isinstance(outcome, BaseException):
        return "not audio"
    notes = getattr(outcome, "__notes__", None)
    return f"{type(outcome).__name__} in {notes[0]}" if notes else type(outcome).__name__


async def measure(
    impl: str,
    target: Target,
    jobs: int,
    interval: float,
    database_url: str = "",
    server_pid: int = 0,
) -> ScenarioResult:
    async with load(impl, database_url)(target, jobs, interval) as job:
        # One job first, unmeasured: lazy imports and first connections are start-up costs.
        try:
            await job(-1)
        except Exception as exc:
            raise SystemExit(f"the warm-up job failed: {exc!r}"[:500]) from exc
        base_rss = _rss_mb()
        ticker = LagTicker()
        ticker.start()
        writes = getattr(job, "store_writes", lambda: 0)
        writes0 = writes()
        writer0 = _thread_cpu_s(STORE_THREAD)
        server0 = _server_cpu_s(server_pid)
        cpu0, wall0 = _cpu_s(), time.perf_counter()
        outcomes = await asyncio.gather(*(job(i) for i in range(jobs)), return_exceptions=True)
        wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
        server_cpu = _server_cpu_s(server_pid) - server0
        writer_cpu = _thread_cpu_s(STORE_THREAD) - writer0
        store_writes = writes() - writes0
        await ticker.stop()
    errors = Counter(_kind(o) for o in outcomes if not _is_audio(o))
    first = next((o for o in outcomes if not _is_audio(o)), None)
    p50, p99, worst = ticker.stats_ms()
    return ScenarioResult(
        impl=impl,
        jobs=jobs,
        wall_s=wall,
        cpu_s=cpu,
        lag_p50_ms=p50,
        lag_p99_ms=p99,
        lag_max_ms=worst,
        lag_samples=len(ticker.lags),
        base_rss_mb=base_rss,
        peak_rss_mb=_rss_mb(),
        failures=sum(errors.values()),
        writes_per_job=store_writes / jobs,
        writer_cpu_s=writer_cpu,
        server_cpu_s=server_cpu,
        errors=dict(errors),
        first_error="" if first is None else repr(first)[:300],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run one benchmark scenario, print JSON.")
    parser.add_argument("--impl", choices=IMPLS, required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--interval", type=float, default=0.1, help="poll interval, seconds")
    parser.add_argument("--workflow-url", required=True)
    parser.add_argument("--sample-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--database-url", default="", help="ours+pg: a fresh database")
    parser.add_argument("--server-pid", type=int, default=0, help="ours+pg: the postmaster")
    args = parser.parse_args(argv)
    # The runner logs every job at INFO; at 1,000 jobs that is noise, not what we measure.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    target = Target(args.workflow_url, args.sample_url, args.api_key)
    # Every implementation is hosted on the loop the bot itself runs on (uvloop if present).
    result = run(
        measure(args.impl, target, args.jobs, args.interval, args.database_url, args.server_pid)
    )
    print(result.to_json(), flush=True)


if __name__ == "__main__":
    main()
