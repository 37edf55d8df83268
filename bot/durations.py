"""How long this workflow takes at Segmind, learned from the bot's own finished jobs.

Polls see a job's end only through a window: the last poll that found it unfinished
(`lower`, seconds after the submit; 0 when none did) and the first that found it done
(`upper`). The model fits a line through the middles of windows with both ends, by text
length (duration grows with the text), over the last HISTORY jobs, and reads two points
off the spread of those jobs around the line: the `median` (for the ETA shown to members)
and the `due` time, by which DUE_QUANTILE of jobs are done (a job's checks are timed
around it). A window from the submit says only "done by then": those count only while
there is nothing better. Replaying the same observations in order rebuilds the same
model, which is how it survives a restart: the observations live in the job store.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

HISTORY = 200  # most recent finished jobs that shape the line
DUE_QUANTILE = 0.8  # a poll at the due time finds ~80 % of jobs done
DUE_Z = 0.8416  # that quantile of the normal curve
# When a check that finds the job still running costs more than a poll interval (the
# budget's next free request is further off), aim for 95 % instead.
SCARCE_DUE_Z = 1.645
MIN_SPREAD = 0.03  # jobs never take exactly the same time: at least 3 %
DEFAULT_SPREAD = 0.15  # until three jobs were seen between two polls


@dataclass(frozen=True, slots=True)
class Observation:
    chars: int
    lower: float  # seconds after submit: last poll that saw it unfinished (0: none)
    upper: float  # seconds after submit: first poll that saw it finished

    @property
    def usable(self) -> bool:
        return 0 <= self.lower < self.upper and self.chars >= 0


@dataclass(frozen=True, slots=True)
class Estimate:
    median: float  # seconds after submit, half the jobs are done
    due: float  # seconds after submit, most jobs are done (DUE_QUANTILE)

    def likelihood(self, elapsed: float) -> float:
        """A score that grows with the chance the job is done `elapsed` s after submit:
        0 at the median, 1 at the due time (comparable across text lengths)."""
        spread = max(self.due - self.median, 0.05 * self.due, 1e-3)
        return (elapsed - self.median) / spread


@dataclass(slots=True)
class _Line:
    """Least squares of y on x over a window, from running sums."""

    n: int = 0
    sx: float = 0.0
    sy: float = 0.0
    sxx: float = 0.0
    sxy: float = 0.0

    def add(self, x: float, y: float, sign: int) -> None:
        self.n += sign
        self.sx += sign * x
        self.sy += sign * y
        self.sxx += sign * x * x
        self.sxy += sign * x * y

    def at(self, x: float) -> float:
        mean_x, mean_y = self.sx / self.n, self.sy / self.n
        var_x = self.sxx / self.n - mean_x * mean_x
        slope = 0.0
        if self.n >= 3 and var_x > 1.0:
            slope = max(0.0, (self.sxy / self.n - mean_x * mean_y) / var_x)
        return max(0.1, mean_y + slope * (x - mean_x))


@dataclass(frozen=True, slots=True)
class _Entry:
    chars: int
    stands_for: float  # the duration this job counts as in the line
    spread: float  # its squared distance from the line then, relative, plus its own doubt


def _phi(z: float) -> float:
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def _cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


class DurationModel:
    def __init__(self, history: int = HISTORY) -> None:
        # Each job counts in the line as the duration its window most likely hides, given
        # what the model expected of it then (the mean of a normal curve cut to the
        # window: one step of EM). So a window that polls timed by the model cut short
        # ("done by the due time", "still running at it") does not pull the model
        # towards its own guess, and a wide window counts for its middle only as far as
        # the model believes it.
        self._window: deque[_Entry] = deque(maxlen=history)
        self._line = _Line()
        self._spread_sum = 0.0
        self.observed = 0

    def estimate(self, chars: int, z: float = DUE_Z) -> Estimate | None:
        """None until a job has finished: no history, no guess. `z`: how far past the
        median the due time lies, in spreads (DUE_Z: DUE_QUANTILE of jobs are done)."""
        if self._line.n <= 0:
            return None
        base = self._line.at(chars)
        return Estimate(base, base * (1 + z * self._sigma()))

    def _sigma(self) -> float:
        """The spread of durations around the line, relative to it."""
        n = len(self._window)
        if n < 3:
            return DEFAULT_SPREAD
        return max(MIN_SPREAD, math.sqrt(self._spread_sum / n))

    def observe(self, observation: Observation) -> None:
        if not observation.usable:
            return
        entry = self._entry(observation)
        if len(self._window) == self._window.maxlen:
            self._add(self._window[0], -1)
        self._window.append(entry)
        self._add(entry, 1)
        self.observed += 1

    def _entry(self, seen: Observation) -> _Entry:
        lower, upper = seen.lower, seen.upper
        estimate = self.estimate(seen.chars)
        if estimate is None:  # the first job: all there is
            middle = (lower + upper) / 2 if lower > 0 else upper
            return _Entry(seen.chars, middle, DEFAULT_SPREAD**2)
        mean = estimate.median
        sigma = max(mean * self._sigma(), 1e-6)
        alpha = (lower - mean) / sigma if lower > 0 else -math.inf
        beta = (upper - mean) / sigma
        inside = _cdf(beta) - (_cdf(alpha) if lower > 0 else 0.0)
        if inside < 1e-9:  # the model thought this impossible: trust the window
            value, doubt = (lower + upper) / 2, ((upper - lower) / 2) ** 2
        else:
            phi_a = _phi(alpha) if lower > 0 else 0.0
            a_phi_a = alpha * phi_a if lower > 0 else 0.0
            shift = (phi_a - _phi(beta)) / inside
            value = mean + sigma * shift
            doubt = sigma**2 * max(0.0, 1 + (a_phi_a - beta * _phi(beta)) / inside - shift**2)
        value = min(max(value, lower), upper)
        return _Entry(seen.chars, value, ((value - mean) ** 2 + doubt) / (mean * mean))

    def _add(self, entry: _Entry, sign: int) -> None:
        self._line.add(entry.chars, entry.stands_for, sign)
        self._spread_sum += sign * entry.spread
