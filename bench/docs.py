"""docs/benchmarks.md: machine description, markdown tables, and per-section blocks.

Each section owns the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`;
re-running one section replaces only its block, and hand-written text outside the blocks
is kept.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from .fake import ROOT

DOCS_PATH = ROOT / "docs" / "benchmarks.md"
NONE = "–"
"""A table cell for a figure the row does not have."""
HEADER = """# Benchmarks

Figures measured by `make bench` (`python -m bench`; `--only SECTION` runs one section).
Each section is rewritten between its `<!-- bench:… -->` markers; text outside them is kept.
"""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """E.g. "AMD EPYC, 2 cores, Linux 6.1, Python 3.11.9"."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu_model()}, {cores} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def versions(*distributions: str) -> str:
    """E.g. "aiohttp 3.14.5, requests 2.34.2"; a missing one says so."""
    parts = []
    for name in distributions:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def provenance(when: str, other_load: float, *distributions: str) -> str:
    """The line under a section's title: when, on what, with which packages, and how busy
    other processes kept the CPUs meanwhile."""
    return (
        f"Measured {when} on {machine()}; {versions(*distributions)}. "
        f"Other processes used {other_load:.0%} of the CPUs meanwhile."
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table padded to line up in a terminal too; numbers right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    # A column of numbers with a few "–" (no such figure for this row) is still numeric.
    numeric = [
        all(_is_number(r[i]) or r[i] == NONE for r in rows) and any(_is_number(r[i]) for r in rows)
        for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    rule = "|".join(
        "-" * (w + 1) + ":" if num else "-" * (w + 2)
        for w, num in zip(widths, numeric, strict=True)
    )
    return "\n".join([line(headers), f"|{rule}|", *(line(r) for r in rows)])


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", "").strip("×"))
    except ValueError:
        return False
    return True


def write_block(name: str, markdown: str, path: Path = DOCS_PATH) -> None:
    """Replace section `name`'s block in `path` (append it if new; create the file)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    head, found, rest = text.partition(start)
    if found:
        _, closed, tail = rest.partition(end)
        if not closed:
            raise ValueError(f"{path}: {start} has no {end}")
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
