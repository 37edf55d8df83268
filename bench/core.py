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
from .result import Crash, Outcome, ScenarioResult
from .scenario import IMPLS
from .section import Floor, Options, SectionReport

NAME = "core"
TITLE = "Core: Segmind client and job runner"
FLOOR_JOBS = 1000
LAG_P99_LIMIT_MS = 10.0
CPU_PER_JOB_LIMIT_MS = 2.0
RSS_LIMIT_MB = 100.0


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
        return Crash(impl, jobs, f"no result within {options.scenario_timeout:.0f} s")
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


def run(options: Options) -> SectionReport:
    impls = IMPLS if options.peers else ("ours",)
    outcomes: list[Outcome] = []
    for jobs in options.jobs:
        for impl in impls:
            print(f"core: {impl} × {jobs:,} …", end=" ", file=sys.stderr, flush=True)
            outcome = run_scenario(impl, jobs, options)
            done = f"crashed: {outcome.reason}" if isinstance(outcome, Crash) else "done"
            print(done, file=sys.stderr, flush=True)
            outcomes.append(outcome)
    floors = check_floors(outcomes)
    crashed = [f"{c.impl} × {c.jobs}: {c.reason}" for c in outcomes if isinstance(c, Crash)]
    results = table(outcomes)
    ratio_table = ratios(outcomes)
    floor_table = floors_table(floors)
    heading = (
        f"{TITLE}: N jobs in flight, poll every {options.interval:g} s, budget off "
        f"({date.today().isoformat()}; {docs.machine()})"
    )
    text = "\n\n".join(
        part
        for part in (
            heading,
            results,
            ratio_table and f"Peer ÷ ours, same N:\n{ratio_table}",
            floor_table and f"Floors (ours, N = {FLOOR_JOBS:,}):\n{floor_table}",
        )
        if part
    )
    markdown = render(options, results, ratio_table, floor_table, crashed)
    return SectionReport(NAME, text, markdown, floors, crashed)


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
        lag, cpu, rss, failures = nan, nan, nan, nan
    else:
        lag, cpu, rss, failures = o.lag_p99_ms, o.cpu_ms_per_job, o.peak_rss_mb, o.failures
    return [
        Floor("event-loop lag p99", LAG_P99_LIMIT_MS, lag, "ms"),
        Floor("CPU per job (submit, polls, download)", CPU_PER_JOB_LIMIT_MS, cpu, "ms"),
        Floor("peak RSS", RSS_LIMIT_MB, rss, "MB"),
        Floor("failed jobs", 1, failures, ""),
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
    options: Options, results: str, ratio_table: str, floor_table: str, crashed: list[str]
) -> str:
    parts = [
        f"## {TITLE}",
        f"Measured {date.today().isoformat()} on {docs.machine()}; "
        f"{docs.versions('aiohttp', 'requests', 'segmind', 'httpx')}.",
        'Reproduce: `make bench` (this section alone: `make bench ARGS="--only core"`).',
        f"N jobs in flight at once against the fake Segmind on loopback, poll interval "
        f"{options.interval:g} s, request budget off. Each job is one submit, three polls "
        "(QUEUED → PROCESSING → COMPLETED) and one audio download.",
        results,
    ]
    if crashed:
        parts.append("Crashed: " + "; ".join(crashed))
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
- **segmind-sdk**: `segmind.SegmindClient(...).pixelflows.run(workflow_url=..., poll=True,
  poll_interval=0.1, max_wait_time=300)` on one shared client (its httpx pool: 100
  connections), the audio fetched with one shared `httpx.Client`; one thread per job as
  above. The SDK accepts the float interval unchanged. It polls once right after the
  submit (the fake still answers QUEUED while it fetches the voice sample), so its jobs
  usually take one more poll than the others."""
