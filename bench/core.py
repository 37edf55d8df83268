"""Section "core": N Segmind jobs in flight against the fake, our async stack against the
blocking peers, each scenario in a fresh process next to a fresh fake."""

from __future__ import annotations

import math
import subprocess
import sys
from contextlib import ExitStack

from tests.fakes.segmind import FAKE_API_KEY, SAMPLES_PREFIX, WORKFLOW_PATH

from .core_report import Figures, markdown, text
from .fake import ROOT, fake_segmind, loopback_env
from .noise import OtherLoad
from .pg_store import BenchServer, bench_server
from .result import Crash, Outcome, ScenarioResult, median
from .scenario import IMPLS, OUR_IMPLS, PG_IMPL
from .section import Floor, Options, SectionReport

NAME = "core"
TITLE = "Core: Segmind client and job runner"
FLOOR_JOBS = 1000
LAG_P99_LIMIT_MS = 10.0
CPU_PER_JOB_LIMIT_MS = 2.0
STORE_EXTRA_LIMIT_MS = 0.75  # what the job store may add to ours' CPU per job
# What the PostgreSQL store may add to ours' CPU per job, in the bot's process (the
# server's CPU is reported beside it, not in this floor). 2 ms: the same order as SQLite's
# 0.75, as the brief asks, above the 1.06-1.56 ms measured at N = 1,000 on 2026-12-02 (5
# writes a job, each an asyncpg round trip: pool acquire, encode, decode, a loop wake-up
# for the reply) with room for this host's ±30% run-to-run noise (1.5 was tried first:
# 1.39 is too close to it), yet an extra statement per write (~+1 ms/job, e.g. a read
# after each transition) would fail it.
PG_EXTRA_LIMIT_MS = 2.0
RSS_LIMIT_MB = 100.0
BUSY_SHARE = 0.1  # share of the CPUs used by other processes that makes a run noisy


def run_scenario(impl: str, jobs: int, options: Options, server: BenchServer) -> Outcome:
    """Start a fake (and for ours+pg a fresh database), run `bench.scenario` against it,
    stop the fake (drop the database); a crash is a result."""
    command = [sys.executable, "-m", "bench.scenario", "--impl", impl, "--jobs", str(jobs)]
    command += ["--interval", str(options.interval), "--api-key", FAKE_API_KEY]
    try:
        with ExitStack() as stack:
            if impl == PG_IMPL:
                command += ["--database-url", stack.enter_context(server.database())]
                command += ["--server-pid", str(server.pid)]
            base = stack.enter_context(fake_segmind())
            command += ["--workflow-url", base + WORKFLOW_PATH]
            command += ["--sample-url", f"{base}{SAMPLES_PREFIX}voice.mp3"]
            done = subprocess.run(
                command,
                cwd=ROOT,
                env=loopback_env(),
                capture_output=True,
                text=True,
                timeout=options.scenario_timeout,
                check=False,
            )
    except subprocess.TimeoutExpired:
        return Crash(impl, jobs, f"no result within {options.scenario_timeout:g} s")
    except RuntimeError as exc:  # the fake failed to start or died
        return Crash(impl, jobs, str(exc))
    except Exception as exc:  # the database could not be made or dropped (asyncpg's errors)
        return Crash(impl, jobs, f"database: {exc!r}"[:300])
    if done.stderr.strip():
        print(f"[{impl} × {jobs}] stderr:\n{done.stderr.strip()[-2000:]}", file=sys.stderr)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Crash(impl, jobs, f"exit status {done.returncode}: {last}")
    try:
        return ScenarioResult.from_json(done.stdout.strip().splitlines()[-1])
    except (ValueError, TypeError, IndexError) as exc:
        return Crash(impl, jobs, f"unreadable result: {exc}")


def run_all(options: Options, server: BenchServer) -> list[Outcome]:
    """Every scenario `repeat` times, interleaved (round after round) so that noise from
    other processes spreads over all implementations, then one median row per scenario.
    Without a PostgreSQL server, no ours+pg rows."""
    impls = [i for i in (IMPLS if options.peers else OUR_IMPLS) if i != PG_IMPL or server.server]
    keys = [(impl, jobs) for jobs in options.jobs for impl in impls]
    runs: dict[tuple[str, int], list[Outcome]] = {key: [] for key in keys}
    for round_ in range(1, options.repeat + 1):
        for impl, jobs in keys:
            print(f"core: round {round_}/{options.repeat}, {impl} × {jobs:,} …", file=sys.stderr)
            outcome = run_scenario(impl, jobs, options, server)
            if isinstance(outcome, Crash):
                print(f"  crashed: {outcome.reason}", file=sys.stderr)
            runs[impl, jobs].append(outcome)
    combined: list[Outcome] = []
    for (impl, jobs), outcomes in runs.items():
        crashes = [o for o in outcomes if isinstance(o, Crash)]
        if crashes:
            reason = f"{len(crashes)} of {len(outcomes)} runs; first: {crashes[0].reason}"
            combined.append(Crash(impl, jobs, reason))
        else:
            combined.append(median([o for o in outcomes if isinstance(o, ScenarioResult)]))
    return combined


def run(options: Options) -> SectionReport:
    others = OtherLoad()
    with bench_server(wanted=True) as server:
        outcomes = run_all(options, server)
    # Measured, not assumed: parallel test runs skew everything. The PostgreSQL server is
    # not our child (pg_ctl daemonises it), so its CPU is taken out of the others' by hand.
    load = others.share(own_extra_s=server.cpu_s)
    if load > BUSY_SHARE:
        print(f"core: other processes used {load:.0%} of the CPUs (noisy)", file=sys.stderr)
    figures = Figures(
        TITLE, options, outcomes, check_floors(outcomes), FLOOR_JOBS, load, server.reason
    )
    crashed = [f"{c.impl} × {c.jobs}: {c.reason}" for c in outcomes if isinstance(c, Crash)]
    return SectionReport(NAME, text(figures), markdown(figures), figures.floors, crashed)


def check_floors(outcomes: list[Outcome]) -> list[Floor]:
    """The floors at 1,000 jobs: ours by its own CPU, the job store by what it adds over
    ours (on this 2-vCPU host the sum was the wrong floor: the store's share is what the
    store's design controls), both by lag and memory, plus "every job returned audio"
    (figures from a run that lost jobs mean little)."""
    floors: list[Floor] = []
    at_floor = {o.impl: o for o in outcomes if o.jobs == FLOOR_JOBS}
    nan = math.nan
    for impl in OUR_IMPLS:
        o = at_floor.get(impl)
        if o is None:
            continue
        if isinstance(o, Crash):
            lag, cpu, rss, lost = nan, nan, nan, nan
        else:
            lag, cpu, rss, lost = o.lag_p99_ms, o.cpu_ms_per_job, o.peak_rss_mb, float(o.failures)
        floors.append(Floor(f"{impl}: event-loop lag p99", LAG_P99_LIMIT_MS, lag, "ms"))
        if impl == "ours":
            floors.append(
                Floor(
                    "ours: CPU per job (submit, polls, download)", CPU_PER_JOB_LIMIT_MS, cpu, "ms"
                )
            )
        else:
            base = at_floor.get("ours")
            extra = cpu - base.cpu_ms_per_job if isinstance(base, ScenarioResult) else nan
            limit = PG_EXTRA_LIMIT_MS if impl == PG_IMPL else STORE_EXTRA_LIMIT_MS
            floors.append(Floor(f"{impl}: CPU the store adds over ours", limit, extra, "ms"))
        floors += [
            Floor(f"{impl}: peak RSS", RSS_LIMIT_MB, rss, "MB"),
            Floor(f"{impl}: failed jobs", 1, lost, ""),
        ]
    return floors
