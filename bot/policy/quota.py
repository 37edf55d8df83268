"""The quota rules: cooldown, jobs in flight and the daily budgets, on a `Standing` (this
process's own counts, or the database's with every process's jobs, see
bot/store/pg/admission.py), so both ask exactly the same questions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..store import Standing
from .ledger import DAY, day_of
from .limits import GLOBAL_DAILY_JOBS, OPERATOR, Limits
from .refusals import Reason, Refusal


def quota_refusal(
    limits: Limits,
    setter: Callable[[str], str],
    global_daily_jobs: int,
    chars: int,
    now: float,
    standing: Standing,
) -> Refusal | None:
    """What counting one more job of `chars` on top of `standing` would break, under the
    server's `limits`. Each refusal names who set the limit (`setter(name)`: the server's
    admins or the operator)."""
    tomorrow = (day_of(now) + 1) * DAY

    def over(reason: Reason, name: str, **data: Any) -> Refusal:
        return Refusal(reason, limit=name, setter=setter(name), cap=getattr(limits, name), **data)

    last = standing.last_start
    if limits.user_cooldown_seconds and last is not None:
        ready = last + limits.user_cooldown_seconds
        if ready > now:
            return over(Reason.COOLDOWN, "user_cooldown_seconds", retry_at=ready)
    running = standing.open_jobs
    if limits.user_max_in_flight and running >= limits.user_max_in_flight:
        return over(Reason.IN_FLIGHT, "user_max_in_flight", running=running)
    used = standing.user_chars
    if limits.user_daily_chars and used + chars > limits.user_daily_chars:
        left = max(0, limits.user_daily_chars - used)
        return over(
            Reason.USER_DAILY_CHARS, "user_daily_chars", retry_at=tomorrow, chars=chars, left=left
        )
    if limits.guild_daily_jobs and standing.guild_jobs >= limits.guild_daily_jobs:
        return over(Reason.GUILD_DAILY, "guild_daily_jobs", retry_at=tomorrow)
    if limits.guild_daily_chars and standing.guild_chars + chars > limits.guild_daily_chars:
        return over(Reason.GUILD_DAILY, "guild_daily_chars", retry_at=tomorrow)
    if global_daily_jobs and standing.total_jobs >= global_daily_jobs:
        return Refusal(
            Reason.GLOBAL_DAILY,
            retry_at=tomorrow,
            limit=GLOBAL_DAILY_JOBS,
            setter=OPERATOR,
            cap=global_daily_jobs,
        )
    return None
