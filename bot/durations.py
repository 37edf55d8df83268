"""How long this workflow takes at Segmind, learned from the bot's own finished jobs.

Polls see a job's end only through a window: the last poll that found it unfinished
(`lower`, seconds after the submit; 0 when none did) and the first that found it done
(`upper`). The model fits a line through the middles of windows with both ends, by text
length (duration grows with the text), then keeps two multiplicative corrections on it
that track quantiles
from what polls showed: `median` (for the ETA shown to members) and `due` (the time a
poll most likely finds the job done, for when requests are scarce). A poll that came
at or before the due time and found the job done pulls it earlier; one after it that
found the job running pushes it later (the classic online quantile update). Replaying
the same observations in order rebuilds the same model, which is how it survives a
restart: the observations live in the job store.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

HISTORY = 200  # most recent finished jobs that shape the line
DUE_QUANTILE = 0.8  # a poll at the due time finds ~80 % of jobs done
STEP = 0.1  # quantile tracking speed (relative)
TOLERANCE = 0.1  # polls within 10 % of the prediction say nothing about which side it is
_FACTOR_RANGE = (0.25, 4.0)


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


class DurationModel:
    def __init__(self, history: int = HISTORY) -> None:
        self._window: deque[Observation] = deque(maxlen=history)
        # The line is fit to windows with both ends (a poll saw the job running, a later
        # one saw it done: the duration lies between). A window from the submit says only
        # "done by then", and polls timed by this model would feed it its own guess, so
        # those count only while there is nothing better.
        self._bracketed = _Line()
        self._open = _Line()
        self._median_factor = 1.0
        self._due_factor = 1.0
        self.observed = 0

    def estimate(self, chars: int) -> Estimate | None:
        """None until a job has finished: no history, no guess."""
        base = self._base(chars)
        if base is None:
            return None
        median = base * self._median_factor
        return Estimate(median, max(median, base * self._due_factor))

    def observe(self, observation: Observation) -> None:
        if not observation.usable:
            return
        base = self._base(observation.chars)
        if base is not None:
            self._median_factor = self._track(self._median_factor, 0.5, base, observation)
            self._due_factor = self._track(self._due_factor, DUE_QUANTILE, base, observation)
        if len(self._window) == self._window.maxlen:
            self._add(self._window[0], -1)
        self._window.append(observation)
        self._add(observation, 1)
        self.observed += 1

    @staticmethod
    def _track(factor: float, quantile: float, base: float, seen: Observation) -> float:
        predicted = base * factor
        if seen.lower >= predicted * (1 - TOLERANCE):
            factor *= 1 + STEP * quantile  # still running after it: later
        elif seen.upper <= predicted * (1 + TOLERANCE):
            factor *= 1 - STEP * (1 - quantile)  # done by then: the prediction may be earlier
        low, high = _FACTOR_RANGE
        return min(max(factor, low), high)

    def _add(self, seen: Observation, sign: int) -> None:
        if seen.lower > 0:
            self._bracketed.add(seen.chars, (seen.lower + seen.upper) / 2, sign)
        else:
            self._open.add(seen.chars, seen.upper, sign)

    def _base(self, chars: int) -> float | None:
        for line in (self._bracketed, self._open):
            if line.n > 0:
                return line.at(chars)
        return None
