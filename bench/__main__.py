"""`python -m bench [--only core] [--jobs 100,1000] [--strict] [--no-write] ...`

Runs the chosen sections, prints their figures and floor checks, and rewrites each
section's block of docs/benchmarks.md. Exit status: 2 if a scenario crashed, 1 if
`--strict` and a floor failed, else 0 (a failed floor is a finding, not an error).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import budget, cluster, core, discord_e2e, docs, transcode
from .section import Options, Section

SECTIONS: dict[str, Section] = {
    core.NAME: core.run,
    discord_e2e.NAME: discord_e2e.run,
    budget.NAME: budget.run,
    transcode.NAME: transcode.run,
    cluster.NAME: cluster.run,
}
"""Add a section here: a name (its docs block) and a function Options -> SectionReport."""


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"sections are {', '.join(SECTIONS)}; got {text!r}")
    return names


def _jobs(text: str) -> tuple[int, ...]:
    try:
        jobs = tuple(int(n.replace("_", "")) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected job counts like 100,1000") from None
    if not jobs or min(jobs) < 1:
        raise argparse.ArgumentTypeError("job counts must be >= 1")
    return jobs


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", type=_names, default=list(SECTIONS), metavar="SECTIONS", help="e.g. core"
    )
    parser.add_argument("--jobs", type=_jobs, default=Options.jobs, help="default 100,1000")
    parser.add_argument("--interval", type=_positive, default=Options.interval, help="poll s")
    parser.add_argument(
        "--repeat", type=int, default=Options.repeat, metavar="K", help="runs per scenario"
    )
    parser.add_argument("--no-peers", dest="peers", action="store_false", help="ours only")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a failed floor")
    parser.add_argument("--no-write", dest="write", action="store_false", help="leave docs")
    parser.add_argument("--docs", type=Path, default=docs.DOCS_PATH, help=argparse.SUPPRESS)
    parser.add_argument(
        "--scenario-timeout",
        type=_positive,
        default=Options.scenario_timeout,
        metavar="S",
        help="kill a scenario after S seconds (it counts as crashed)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    options = Options(
        jobs=args.jobs,
        interval=args.interval,
        peers=args.peers,
        repeat=args.repeat,
        scenario_timeout=args.scenario_timeout,
    )
    crashed = floor_failed = False
    for name in args.only:
        report = SECTIONS[name](options)
        print(report.text, end="\n\n", flush=True)
        crashed |= bool(report.crashed)
        floor_failed |= any(not f.passed for f in report.floors)
        if args.write:
            docs.write_block(name, report.markdown, args.docs)
            print(f"wrote the {name} section of {args.docs}", file=sys.stderr)
    if crashed:
        return 2
    return 1 if args.strict and floor_failed else 0


if __name__ == "__main__":
    sys.exit(main())
