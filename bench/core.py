"""Section "core": N Segmind jobs in flight against the fake, our async stack against the
blocking peers, each scenario in a fresh process next to a fresh fake."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import date

from tests.fakes.segmind import FAKE_API_KEY, SAMPLES_PREFIX, WORKFLOW_PATH

from . import docs
from .fake import ROOT, fake_segmind, loopback_env
from .noise import OtherLoad
from .result import Crash, Outcome, ScenarioResult, median
from .scenario import IMPLS
from .section import Floor, Options, SectionReport

NAME = "core"
TITLE = "Core: Segmind client and job runner"
FLOOR_JOBS = 1000
LAG_P99_LIMIT_MS = 10.0
CPU_PER_JOB_LIMIT_MS = 2.0
RSS_LIMIT_MB = 100.0
BUSY_SHARE = 0.1  # share of the CPUs used by other processes that makes a run noisy


def run_scenario(impl: str, jobs: int, options: Options) -> Outcome:
    """Start a fake, run `bench.scenario` against it, stop the fake; a crash is a result."""
    command = [sys.executable, "-m", "bench.scenario", "--impl", impl, "--jobs", str(jobs)]
    command += ["--interval", str(options.interval), "--api-key", FAKE_API_KEY]
    try:
        with fake_segmind() as base:
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
    if done.stderr.strip():
        print(f"[{impl} × {jobs}] stderr:\n{done.stderr.strip()[-2000:]}", file=sys.stderr)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Crash(impl, jobs, f"exit status {done.returncode}: {last}")
    try:
        return ScenarioResult.from_json(done.stdout.strip().splitlines()[-1])
    except (ValueError, TypeError, IndexError) as exc:
        return Crash(impl, jobs, f"unreadable result: {exc}")


def run_all(options: Options) -> list[Outcome]:
    """Every scenario `repeat` times, interleaved (round after round) so that noise from
    other processes spreads over all implementations, then one median row per scenario."""
    impls = IMPLS if options.peers else ("ours",)
    keys = [(impl, jobs) for jobs in options.jobs for impl in impls]
    runs: dict[tuple[str, int], list[Outcome]] = {key: [] for key in keys}
    for round_ in range(1, options.repeat + 1):
        for impl, jobs in keys:
            print(f"core: round {round_}/{options.repeat}, {impl} × {jobs:,} …", file=sys.stderr)
            outcome = run_scenario(impl, jobs, options)
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
    outcomes = run_all(options)
    load = others.share()  # measured, not assumed: parallel test runs skew everything
    if load > BUSY_SHARE:
        print(f"core: other processes used {load:.0%} of the CPUs (noisy)", file=sys.stderr)
    floors = check_floors(outcomes)
    crashed = [f"{c.impl} × {c.jobs} crashed: {c.reason}" for c in outcomes if isinstance(c, Crash)]
    failed = failures(outcomes)
    results = table(outcomes)
    ratio_table = ratios(outcomes)
    floor_table = floors_table(floors)
    conditions = (
        f"poll every {options.interval:g} s, budget off, {_runs(options.repeat)}; "
        f"{date.today().isoformat()}, {docs.machine()}, other processes' CPU share {load:.0%}"
    )
    text = "\n\n".join(
        part
        for part in (
            f"{TITLE}: N jobs in flight ({conditions})",
            results,
            "\n".join(crashed + failed),
            ratio_table and f"Peer ÷ ours, same N:\n{ratio_table}",
            floor_table and f"Floors (ours, N = {FLOOR_JOBS:,}):\n{floor_table}",
        )
        if part
    )
    markdown = render(options, load, results, ratio_table, floor_table, crashed + failed)
    return SectionReport(NAME, text, markdown, floors, crashed)


def failures(outcomes: list[Outcome]) -> list[str]:
    """One line per scenario that lost jobs: how many, of which kinds, the first error."""
    lines = []
    for o in outcomes:
        if isinstance(o, ScenarioResult) and o.failures:
            kinds = ", ".join(f"{kind} × {n}" for kind, n in sorted(o.errors.items()))
            lines.append(
                f"{o.impl} × {o.jobs}: {o.failures} job{'s' if o.failures > 1 else ''} "
                f"without audio ({kinds}); "
                f"first: {o.first_error}"
            )
    return lines


def _runs(repeat: int) -> str:
    return "one run" if repeat == 1 else f"median of {repeat} runs"


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def table(outcomes: list[Outcome]) -> str:
    headers = ["impl", "N", "wall s", "CPU ms/job", "lag p50 ms", "lag p99 ms", "lag max ms"]
    headers += ["base RSS MB", "peak RSS MB", "failures"]
    rows = []
    for o in outcomes:
        if isinstance(o, Crash):
            rows.append([o.impl, f"{o.jobs:,}", "crashed", *["–"] * 7])
            continue
        rows.append(
            [
                o.impl,
                f"{o.jobs:,}",
                _fmt(o.wall_s),
                _fmt(o.cpu_ms_per_job),
                _fmt(o.lag_p50_ms),
                _fmt(o.lag_p99_ms),
                _fmt(o.lag_max_ms),
                _fmt(o.base_rss_mb, 1),
                _fmt(o.peak_rss_mb, 1),
                str(o.failures),
            ]
        )
    return docs.table(headers, rows)


def _ratio(peer: float, ours: float) -> str:
    if not ours or math.isnan(peer) or math.isnan(ours):
        return "n/a"
    return f"{peer / ours:,.1f}×"


def ratios(outcomes: list[Outcome]) -> str:
    ours = {o.jobs: o for o in outcomes if isinstance(o, ScenarioResult) and o.impl == "ours"}
    rows = []
    for o in outcomes:
        base = ours.get(o.jobs)
        if not isinstance(o, ScenarioResult) or o.impl == "ours" or base is None:
            continue
        rows.append(
            [
                o.impl,
                f"{o.jobs:,}",
                _ratio(o.cpu_ms_per_job, base.cpu_ms_per_job),
                _ratio(o.peak_rss_mb, base.peak_rss_mb),
                _ratio(o.lag_p99_ms, base.lag_p99_ms),
                _ratio(o.wall_s, base.wall_s),
            ]
        )
    if not rows:
        return ""
    return docs.table(["peer", "N", "CPU/job", "peak RSS", "lag p99", "wall"], rows)


def check_floors(outcomes: list[Outcome]) -> list[Floor]:
    """The issue's floors for ours at 1,000 jobs, plus "every job returned audio" (figures
    from a run that lost jobs mean little). No N = 1,000 run: nothing to check."""
    runs = [o for o in outcomes if o.impl == "ours" and o.jobs == FLOOR_JOBS]
    if not runs:
        return []
    o = runs[0]
    if isinstance(o, Crash):
        nan = math.nan
        lag, cpu, rss, lost = nan, nan, nan, nan
    else:
        lag, cpu, rss, lost = o.lag_p99_ms, o.cpu_ms_per_job, o.peak_rss_mb, float(o.failures)
    return [
        Floor("event-loop lag p99", LAG_P99_LIMIT_MS, lag, "ms"),
        Floor("CPU per job (submit, polls, download)", CPU_PER_JOB_LIMIT_MS, cpu, "ms"),
        Floor("peak RSS", RSS_LIMIT_MB, rss, "MB"),
        Floor("failed jobs", 1, lost, ""),
    ]


def floors_table(floors: list[Floor]) -> str:
    if not floors:
        return ""
    rows = [
        [
            f.name,
            f"< {f.limit:g} {f.unit}".rstrip(),
            f"{_fmt(f.value, 0 if f.unit == '' else 2)} {f.unit}".rstrip(),
            "PASS" if f.passed else "FAIL",
        ]
        for f in floors
    ]
    return docs.table(["floor", "goal", "measured", "result"], rows)


def render(
    options: Options,
    load: float,
    results: str,
    ratio_table: str,
    floor_table: str,
    problems: list[str],
) -> str:
    parts = [
        f"## {TITLE}",
        f"Measured {date.today().isoformat()} on {docs.machine()}; "
        f"{docs.versions('aiohttp', 'requests', 'segmind', 'httpx')}. "
        f"Other processes used {load:.0%} of the CPUs meanwhile.",
        'Reproduce: `make bench` (this section alone: `make bench ARGS="--only core"`).',
        f"N jobs in flight at once against the fake Segmind on loopback, poll interval "
        f"{options.interval:g} s, request budget off. Each job is one submit, three polls "
        "(QUEUED → PROCESSING → COMPLETED) and one audio download. Figures: "
        f"{_runs(options.repeat)} (failures: summed over all runs).",
        results,
    ]
    if problems:
        parts.append("\n".join(f"- **{p}**" for p in problems))
    if ratio_table:
        parts += ["Peer ÷ ours at the same N (above 1× means the peer costs more):", ratio_table]
    if floor_table:
        parts += [f"Floors for ours at N = {FLOOR_JOBS:,}:", floor_table]
    parts.append(NOTES)
    return "\n\n".join(parts)


NOTES = """How it is measured:

- The fake Segmind (`tests/fakes/segmind.py`) runs in its own process, a fresh one per
  scenario, so its CPU is never counted. Each scenario (implementation × N) runs in a fresh
  process (`python -m bench.scenario`) that sets up, runs one unmeasured warm-up job, then
  starts all N jobs at once.
- **CPU ms/job**: user + system CPU of the whole scenario process (every thread) over the
  measured run only, divided by N. **Wall s**: first submit to last download.
- **Loop lag**: a task in the same event loop sleeps 5 ms and records how late it wakes;
  p50/p99/max over the run. For the peers it is the loop that awaits their threads: what a
  Discord gateway heartbeat would see while the jobs run.
- **Peak RSS**: the scenario process's high-water mark (`VmHWM`; not `ru_maxrss`, which
  Linux carries over from the parent across fork + exec), interpreter and imports included;
  **base RSS** is the peak before the measured run. MB = 10⁶ bytes.
- **ours**: `SegmindClient` + `JobRunner` on one `aiohttp.ClientSession` (default
  connector, at most 100 connections), `RequestBudget(0)`, `max_concurrent=N`.
- **requests**: Segmind's docs sample, hosted naively: `requests.post`, then `time.sleep`
  + `requests.get(poll_url)` until COMPLETED, then `requests.get(audio_url)`; plain
  functions, as the sample has them (a new session and TCP connection per call); one
  thread per job (`loop.run_in_executor` on a `ThreadPoolExecutor(max_workers=N)`).
- **segmind-sdk**: `segmind.SegmindClient(...).pixelflows.run(workflow_url=...,
  poll=True, poll_interval=<same interval>, max_wait_time=300)` on one shared client (its
  httpx pool: 100 connections), the audio fetched with one shared `httpx.Client`; one
  thread per job as above. The SDK accepts the float interval unchanged. It polls once
  right after the submit (the fake still answers QUEUED while it fetches the voice
  sample), so its jobs usually take one more poll than the others.
- The fake and the scenario share the machine's cores; at N = 1,000 both are busy, so wall
  time is set by throughput, not by the poll interval.

Reading the lag columns: a run shorter than about 0.5 s has under 100 ticks, so its p99
is its max. In ours the worst ticks are bursts handled in one loop iteration: all N jobs
are handed over at once (each opens or queues for a connection), and answers that arrive
together are parsed together. For the peers, the loop thread starts the pool's threads
itself (`Thread.start()` waits for the new thread, which must win the GIL from every
thread already running), so the loop stalls for as long as the start-up takes; later ticks
can look fine because the threads spend most of their time blocked (sleeping, or, for the
SDK, queued for one of its 100 pooled connections)."""
