"""A member asking to start a job, and why they may not: a reason code and its data,
which the Discord layer words (cogs/refusals.py)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Ask:
    """A member asking to start a job."""

    guild_id: int | None
    channel_ids: tuple[int, ...]  # the channel, then its parent if it is a thread
    user_id: int
    role_ids: frozenset[int]
    chars: int
    voice_owner_ids: frozenset[int] = frozenset()  # whose voice the clip is said to be


class Reason(StrEnum):
    """Why a member may not start a job now (the value: short, for logs and tests)."""

    GLOBAL_OFF = "global_off"  # the bot's owner switched it off everywhere
    GUILD_NOT_ALLOWED = "guild_not_allowed"  # not on ALLOWED_GUILD_IDS
    GUILD_OFF = "guild_off"  # the server's admins switched it off
    CHANNEL = "channel"  # not one of `allowed` (channel ids)
    ROLE = "role"  # none of `allowed` (role ids)
    BLOCKED = "blocked"  # by the server's admins
    OPTED_OUT_SELF = "opted_out_self"  # the member's own voice, and they opted out
    OPTED_OUT = "opted_out"  # the voice's owner opted out
    CREDITS = "credits"  # Segmind is out of credits until `retry_at`
    COOLDOWN = "cooldown"  # `limit` seconds between jobs; ready at `retry_at`
    IN_FLIGHT = "in_flight"  # `running` jobs already, the most `limit` allows
    USER_DAILY_CHARS = "user_daily_chars"  # `chars` asked, `left` of `cap` today
    GUILD_DAILY = "guild_daily"  # the server's daily `limit` (jobs or characters)
    GLOBAL_DAILY = "global_daily"  # the daily jobs across every server


@dataclass(frozen=True, slots=True)
class Refusal:
    """A reason and what the member needs to know about it; cogs/refusals.py words it."""

    reason: Reason
    retry_at: float | None = None  # epoch seconds when trying again can work
    limit: str | None = None  # the limit that refused (a `Limits` field, GLOBAL_DAILY_JOBS)
    setter: str | None = None  # whose limit that is: SERVER (its admins) or OPERATOR
    cap: float = 0  # the limit's value (seconds for the cooldown)
    running: int = 0  # IN_FLIGHT: the member's jobs running now
    chars: int = 0  # USER_DAILY_CHARS: the characters asked for
    left: int = 0  # USER_DAILY_CHARS: the characters left today
    allowed: tuple[int, ...] = ()  # CHANNEL, ROLE: the ids allowed, in order

    @property
    def code(self) -> str:
        """Short, for logs and tests."""
        return self.reason.value
