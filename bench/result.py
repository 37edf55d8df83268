"""One scenario's figures, passed from its subprocess to the parent as a JSON line."""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScenarioResult:
    impl: str
    jobs: int
    wall_s: float
    cpu_s: float
    """User + system CPU of the whole process (all threads) during the measured run only."""
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    lag_samples: int
    base_rss_mb: float
    """Peak RSS before the measured run: interpreter, imports, set-up and one warm-up job."""
    peak_rss_mb: float
    failures: int
    errors: dict[str, int] = field(default_factory=dict)
    """Failure kinds (exception type names) and how many jobs each hit."""
    first_error: str = ""
    runs: int = 1
    writes_per_job: float = 0.0
    """Committed job-store writes per job (ours+store only)."""
    writer_cpu_s: float = 0.0
    """Of `cpu_s`, the job store's writer thread's share (ours+store only)."""
    server_cpu_s: float = 0.0
    """CPU of the database server's processes during the measured run, not in `cpu_s`
    (ours+pg only: PostgreSQL does the store's work in processes of its own)."""

    @property
    def cpu_ms_per_job(self) -> float:
        return self.cpu_s * 1000 / self.jobs

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, line: str) -> ScenarioResult:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("scenario result is not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def median(results: list[ScenarioResult]) -> ScenarioResult:
    """Repeated runs of one scenario as one row: the median of each figure (runs on a
    shared machine are noisy), and failures summed over all runs so none is hidden."""
    first = results[0]
    if len(results) == 1:
        return first
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)

    def mid(name: str) -> float:
        return float(statistics.median(getattr(r, name) for r in results))

    return ScenarioResult(
        impl=first.impl,
        jobs=first.jobs,
        wall_s=mid("wall_s"),
        cpu_s=mid("cpu_s"),
        lag_p50_ms=mid("lag_p50_ms"),
        lag_p99_ms=mid("lag_p99_ms"),
        lag_max_ms=mid("lag_max_ms"),
        lag_samples=int(mid("lag_samples")),
        base_rss_mb=mid("base_rss_mb"),
        peak_rss_mb=mid("peak_rss_mb"),
        failures=sum(r.failures for r in results),
        errors=dict(errors),
        first_error=next((r.first_error for r in results if r.first_error), ""),
        runs=len(results),
        writes_per_job=mid("writes_per_job"),
        writer_cpu_s=mid("writer_cpu_s"),
        server_cpu_s=mid("server_cpu_s"),
    )


@dataclass(frozen=True)
class Crash:
    """A scenario that did not produce figures (non-zero exit, timeout, garbled output)."""

    impl: str
    jobs: int
    reason: str


Outcome = ScenarioResult | Crash
