"""The core section's text: the results table, peer ratios, floor checks and the
markdown block with its notes on method."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

from . import docs
from .result import Crash, Outcome, ScenarioResult
from .section import Floor, Options


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


def runs_label(repeat: int) -> str:
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
        if not isinstance(o, ScenarioResult) or o.impl.startswith("ours") or base is None:
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


STORES = {"ours+store": "SQLite", "ours+pg": "PostgreSQL"}
"""The rows that journal each job in a store, and the store's name."""


def store_table(outcomes: list[Outcome]) -> str:
    """The stores side by side: each row minus `ours` at the same N. SQLite does its work
    in the bot's process (a writer thread, counted in its CPU); PostgreSQL in a server's
    processes of its own, reported apart and in the sum."""
    ours = {o.jobs: o for o in outcomes if isinstance(o, ScenarioResult) and o.impl == "ours"}
    rows = []
    for o in outcomes:
        base = ours.get(o.jobs)
        if not isinstance(o, ScenarioResult) or o.impl not in STORES or base is None:
            continue
        server = o.server_cpu_s * 1000 / o.jobs
        in_process = o.impl == "ours+store"
        rows.append(
            [
                STORES[o.impl],
                f"{o.jobs:,}",
                _fmt(o.writes_per_job, 1),
                _fmt(o.wall_s),
                _fmt(o.cpu_ms_per_job),
                f"{o.cpu_ms_per_job - base.cpu_ms_per_job:+.2f}",
                _fmt(o.writer_cpu_s * 1000 / o.jobs) if in_process else docs.NONE,
                docs.NONE if in_process else _fmt(server),
                _fmt(o.cpu_ms_per_job + (0.0 if in_process else server)),
                _fmt(o.peak_rss_mb, 1),
            ]
        )
    if not rows:
        return ""
    headers = ["store", "N", "writes/job", "wall s", "bot CPU ms/job", "over ours"]
    headers += ["writer thread ms/job", "server CPU ms/job", "bot + server ms/job"]
    return docs.table([*headers, "peak RSS MB"], rows)


def pg_skip_line(reason: str) -> str:
    return f"PostgreSQL rows skipped: {reason}." if reason else ""


def floors_table(floors: list[Floor]) -> str:
    if not floors:
        return ""
    rows = [
        [
            f.name,
            f.goal,
            f"{_fmt(f.value, 0 if f.unit == '' else 2)} {f.unit}".rstrip(),
            "PASS" if f.passed else "FAIL",
        ]
        for f in floors
    ]
    return docs.table(["floor", "goal", "measured", "result"], rows)


@dataclass(frozen=True)
class Figures:
    """Everything the core section reports, already measured."""

    title: str
    options: Options
    outcomes: list[Outcome]
    floors: list[Floor]
    floor_jobs: int
    other_load: float
    """Share of the CPUs other processes used during the run."""
    pg_skipped: str = ""
    """Why there are no ours+pg rows (no pgserver, the server did not start), if so."""
    when: date = field(default_factory=date.today)


def problems(f: Figures) -> list[str]:
    crashed = [
        f"{o.impl} × {o.jobs} crashed: {o.reason}" for o in f.outcomes if isinstance(o, Crash)
    ]
    return crashed + failures(f.outcomes)


def text(f: Figures) -> str:
    """For the terminal: conditions in one line, then the tables."""
    conditions = (
        f"poll every {f.options.interval:g} s, budget off, {runs_label(f.options.repeat)}; "
        f"{f.when.isoformat()}, {docs.machine()}, other processes' CPU share {f.other_load:.0%}"
    )
    ratio_table, floor_table = ratios(f.outcomes), floors_table(f.floors)
    store_tab = store_table(f.outcomes)
    parts = [
        f"{f.title}: N jobs in flight ({conditions})",
        table(f.outcomes),
        "\n".join(problems(f)),
        ratio_table and f"Peer ÷ ours, same N:\n{ratio_table}",
        pg_skip_line(f.pg_skipped),
        store_tab and f"Job stores, each minus ours at the same N:\n{store_tab}",
        floor_table and f"Floors (N = {f.floor_jobs:,}):\n{floor_table}",
    ]
    return "\n\n".join(part for part in parts if part)


def markdown(f: Figures) -> str:
    """The section's block in docs/benchmarks.md."""
    parts = [
        f"## {f.title}",
        docs.provenance(
            f.when.isoformat(),
            f.other_load,
            "aiohttp",
            "requests",
            "segmind",
            "httpx",
            "asyncpg",
            "pgserver",
        ),
        'Reproduce: `make bench` (this section alone: `make bench ARGS="--only core"`).',
        f"N jobs in flight at once against the fake Segmind on loopback, poll interval "
        f"{f.options.interval:g} s, request budget off. Each job is one submit, three polls "
        "(QUEUED → PROCESSING → COMPLETED) and one audio download. Figures: "
        f"{runs_label(f.options.repeat)} (failures: summed over all runs).",
        table(f.outcomes),
    ]
    if found := problems(f):
        parts.append("\n".join(f"- **{p}**" for p in found))
    if ratio_table := ratios(f.outcomes):
        parts += ["Peer ÷ ours at the same N (above 1× means the peer costs more):", ratio_table]
    if line := pg_skip_line(f.pg_skipped):
        parts.append(f"**{line}**")
    if store_tab := store_table(f.outcomes):
        parts += [STORES_INTRO, store_tab]
    if floor_table := floors_table(f.floors):
        parts += [f"Floors at N = {f.floor_jobs:,}:", floor_table]
    parts.append(NOTES)
    return "\n\n".join(parts)


STORES_INTRO = (
    "The job stores side by side (`ours+store`: SQLite, WAL, synchronous=FULL, group commit "
    "on a writer thread; `ours+pg`: PostgreSQL through asyncpg, a pool of 10 connections, "
    "the server a throwaway pgserver on a unix socket with its default settings, fsync on). "
    "**over ours**: the bot's CPU per job minus ours' without a store; **server CPU**: the "
    "PostgreSQL server's processes (postmaster, backends, walwriter, checkpointer, "
    "autovacuum) over the same measured run, from `/proc`, not part of the bot's figure; "
    "**bot + server**: both. Each figure is its own median."
)


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
SDK, queued for one of its 100 pooled connections).

Known instability: at N = 1,000 the `segmind-sdk` peer loses a job now and then (a
`ReadTimeout` after a 30 s hang, or `ReadError: Bad file descriptor`). One `httpx.Client`
shared by hundreds of threads hits httpcore's sync pool race, where a pooled connection
is closed under a request already assigned to it (encode/httpcore#1110, httpcore 1.0.9).
The SDK shares its client the same way, so the failures are kept and counted.

What the job store adds (`ours+store`): five writes per job, each one statement committed
before the job moves on (`synchronous=FULL`), queued to a writer thread that commits
whatever is waiting as one transaction; at N = 1,000 about 9–14 statements share a commit
(470–570 commits, one WAL fsync each). A transition returns its record without reading the
row back: the writer keeps each unfinished job's last record and applies the values it
wrote (the former `RETURNING *` and the dataclass built from it were ~40% of the store's
own CPU). Measured per thread (the writer's CPU is in the stores' table above; the store alone
is `python -m bench.store_only`): a statement costs the writer ~20 µs when the loop is
idle and about twice that at N = 1,000, a commit ~200 µs (in this VM the fsync's I/O
submission is CPU; the commits are ~30% of the writer's CPU); the loop's share
is a future and a wake-up per write. Tried and dropped: lingering 3–10 ms per commit (a
third of the commits, no measurable gain), running the statements on the loop with only
the commit on the thread, parking the loop while the writer runs a batch (neither
lowered the total; both raised lag p99), and writing all the queued writes of one kind
as one statement (`UPDATE ... FROM (VALUES ...)`, a multi-row `INSERT`): that cut the
writer's statements at N = 1,000 from ~5,000 to ~700 and `bench.store_only`'s writer
CPU from 0.21–0.23 to 0.16–0.17 ms/job, but not the core row's (alternating, 6–7 runs
of 3 each: ours+store 1.98–2.53 ms/job against 2.03–2.39 without it, writer 0.36–0.44
against 0.33–0.42). Under load the writer's time goes to SQLite's work per row (~50 µs
a row even when combined) and to the commits, not to the sqlite3 module's cost per call.
Run to run the CPU figures move by about ±30% with the host's load even when this VM is
otherwise idle (ours at N = 1,000: 1.0–1.8 ms/job over one day, the store's extra
0.4–0.8 ms/job); on 2026-11-25 ours+store measured 1.98–2.53 ms/job in 13 bench runs
(each a median of 3). So the store is judged by what it adds over ours (< 0.75 ms/job)
and ours by its own 2 ms: the sum was the wrong floor on this host.

Where the store's extra ~0.5 ms/job goes (2026-11-25, third session; probes alternated 5–6
times, medians; ours alone 1.74–1.76 ms/job in the same series):
- Not the GIL. With the writer thread on this VM, the GIL's futex hand-offs are most of
  the store's system calls (~37 per job). But a prototype with the SQL in a child process,
  batched over a pipe, cost the same in total: the child's own SQL and commits took
  0.37–0.42 ms/job, and the loop's pickling and pipe I/O another ~0.3.
- Not the event loop's futures either. Writes resolved on the loop by a timer, with no
  thread and no SQL, cost +0.05 ms/job over ours. Thread plumbing without SQL cost +0.3.
- The cost is SQLite's work per row under load: the five statements and ~0.4 commits per
  job take 60–80 µs of CPU each in place, against 15–20 µs in a tight loop on an idle core.
- `synchronous=NORMAL` saves nothing measurable: the commits get cheaper, so there are
  twice as many of them.
- Lingering 20–50 ms per commit under load cuts the writer thread from 0.40 to 0.27–0.32
  ms/job, but the total stays within noise (2.29 against 2.23–2.25).
- Schema variants made no difference beyond noise, in a tight loop at 13 statements per
  commit: without the `(state, updated_at)` index, and `WITHOUT ROWID`.
- Fewer SQLite writes did not help either. A prototype kept the insert and the final write
  in SQLite and appended the middle transitions to a journal file instead, with one
  fdatasync per batch:
  - two transitions moved: 2.30 ms/job, against 2.33 for the store as it is;
  - three moved: 2.15 ms/job.
  The second sync per batch ate most of what SQLite saved.
- A newer interpreter does not help: with the same packages, Python 3.12.1 and 3.13.0
  cost the same as 3.11.7 within noise (ours 1.6–1.9 ms/job, ours+store 2.1–2.9, all three).
- A slower poll does not help: at a 1 s interval ours costs 1.9–2.2 ms/job and ours+store
  2.3–3.1, because fewer requests and writes share a loop wake-up or a commit.

What the PostgreSQL store adds (`ours+pg`, measured since 2026-12-02): the same five
writes per job, each one statement in its own transaction (autocommit, one WAL flush per
commit unless the server's own group commit merges them), sent at once on one of the
pool's 10 connections: at N = 1,000 the jobs queue for a connection, the likely reason for
the longer wall time (not measured apart). The bot's share is asyncpg's work per statement
(a pool acquire, encoding the parameters, decoding the reply, a loop wake-up for it); the
server's (postmaster, backends, walwriter, checkpointer, autovacuum: the postmaster's
whole process tree, read from `/proc/<pid>/stat` before and after the measured run, the
children it reaped included) is reported apart, as it runs outside the bot's process. On
2026-12-02, in five runs before the one above (medians of 2–3 rounds) at N = 1,000: the
bot's extra 1.06–1.56 ms/job, the server's 1.37–2.09, wall 2.98–4.15 s against SQLite's
1.22–1.78. Every transition and the insert end in `RETURNING` every column and build a
`JobRecord` from the row, which the SQLite store stopped doing (see above): not yet
measured apart, the first lead if the PostgreSQL figures need to come down. The server's
CPU is also taken out of "other processes' share" (pg_ctl daemonises it, so it is not a
child of the bench).

Where ours spends its CPU (cProfile of `python -m bench.scenario --impl ours --jobs 1000`
against a running fake): about nine tenths in aiohttp's client, asyncio and the socket
system calls, under a tenth in the bot's own frames; bare aiohttp doing the same five
requests per job costs the same CPU within run-to-run noise."""
