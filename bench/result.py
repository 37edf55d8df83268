"""One scenario's figures, passed from its subprocess to the parent as a JSON line."""

from __future__ import annotations

import dataclasses
import json
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


@dataclass(frozen=True)
class Crash:
    """A scenario that did not produce figures (non-zero exit, timeout, garbled output)."""

    impl: str
    jobs: int
    reason: str


Outcome = ScenarioResult | Crash
