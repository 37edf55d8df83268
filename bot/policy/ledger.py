"""What today's jobs count against: each job in flight, and the UTC day's usage."""

from __future__ import annotations

from dataclasses import dataclass, field

DAY = 86400.0


@dataclass(slots=True)
class Job:
    key: tuple[int, int]  # (guild, user); a DM is guild 0
    chars: int
    day: int
    started_at: float
    previous_start: float | None  # the cooldown to restore if refunded


@dataclass(slots=True)
class Counts:
    jobs: int = 0
    chars: int = 0


@dataclass(slots=True)
class Ledger:
    """Today's usage."""

    day: int
    users: dict[tuple[int, int], Counts] = field(default_factory=dict)
    guilds: dict[int, Counts] = field(default_factory=dict)
    total_jobs: int = 0

    def add(self, key: tuple[int, int], jobs: int, chars: int) -> None:
        user = self.users.setdefault(key, Counts())
        guild = self.guilds.setdefault(key[0], Counts())
        user.jobs += jobs
        user.chars += chars
        guild.jobs += jobs
        guild.chars += chars
        self.total_jobs += jobs


def day_of(moment: float) -> int:
    return int(moment // DAY)


def utc_day_start(moment: float) -> float:
    """Midnight UTC of `moment`'s day: where the daily budgets start."""
    return day_of(moment) * DAY
