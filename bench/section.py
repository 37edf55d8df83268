"""What the command line hands a benchmark section and what a section hands back.

A section (core, and later Discord end-to-end or job store) is a function from `Options`
to `SectionReport`; `python -m bench` prints its text and writes its markdown into its own
block of docs/benchmarks.md, so sections can be added without touching each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Options:
    jobs: tuple[int, ...] = (100, 1000)
    interval: float = 0.1
    peers: bool = True
    repeat: int = 3
    """Runs per scenario, interleaved; each figure is the median."""
    scenario_timeout: float = 180.0


@dataclass(frozen=True)
class Floor:
    """A goal the measured value must meet: under `limit` (exclusive) by default, or
    `op` "<=" or ">=" it."""

    name: str
    limit: float
    value: float
    unit: str
    op: str = "<"

    @property
    def passed(self) -> bool:
        if self.op == "<=":
            return self.value <= self.limit
        if self.op == ">=":
            return self.value >= self.limit
        return self.value < self.limit

    @property
    def goal(self) -> str:
        return f"{self.op} {self.limit:g} {self.unit}".rstrip()


@dataclass
class SectionReport:
    name: str
    text: str
    """Printed to stdout: the table, ratios and floor checks."""
    markdown: str
    """The section's block in docs/benchmarks.md, without the markers."""
    floors: list[Floor] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    """Scenarios that did not finish: these make the command exit non-zero."""


Section = Callable[[Options], SectionReport]
