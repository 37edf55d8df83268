"""The operator's limits and a server's own: which is stricter, and how overrides merge.

0 means no limit everywhere; for the cooldown a longer wait is stricter, for every other
limit a smaller number is. A server's admins may only tighten the operator's limits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..store.models import SEND_AS


@dataclass(frozen=True, slots=True)
class Limits:
    """0 means no limit."""

    user_cooldown_seconds: float
    user_max_in_flight: int
    user_daily_chars: int
    guild_daily_jobs: int
    guild_daily_chars: int


LIMIT_NAMES = tuple(f.name for f in dataclasses.fields(Limits))
# A longer wait is stricter; for every other limit a smaller number is (0 = none: loosest).
LONGER_IS_STRICTER = frozenset({"user_cooldown_seconds"})
SERVER, OPERATOR = "server", "operator"  # who set a limit in force
GLOBAL_DAILY_JOBS = "global_daily_jobs"  # the operator's limit across every server


def stricter(name: str, a: float, b: float) -> float:
    """The stricter of two values of limit `name` (0 = no limit)."""
    if name in LONGER_IS_STRICTER:
        return max(a, b)
    if not a or not b:
        return a or b
    return min(a, b)


def looser(name: str, value: float, ceiling: float) -> bool:
    """Whether `value` would loosen limit `name` beyond `ceiling`."""
    return stricter(name, value, ceiling) != value


class AboveCeiling(ValueError):
    """A server's override would loosen the operator's limit; nothing was changed."""

    def __init__(self, name: str, value: float, ceiling: float) -> None:
        super().__init__(f"{name} = {value:g} is looser than the operator's {ceiling:g}")
        self.name = name
        self.value = value
        self.ceiling = ceiling


@dataclass(frozen=True, slots=True)
class GuildConfig:
    """What a guild's admins changed; None and empty mean "the operator's default"."""

    enabled: bool = True
    require_consent: bool | None = None
    require_owner_consent: bool | None = None
    channels: frozenset[int] = frozenset()  # empty: every channel
    roles: frozenset[int] = frozenset()  # empty: every member
    overrides: tuple[tuple[str, float], ...] = ()  # the admins' (limit name, value), sorted
    # The bot owner's limits for this server, in place of the settings (may be looser).
    ceilings: tuple[tuple[str, float], ...] = ()
    # How results go out when a request does not say: "file" or "voice_message", and
    # whether they are also played in the requester's voice channel.
    send_as: str | None = None
    play: bool | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "enabled": self.enabled,
            "require_consent": self.require_consent,
            "require_owner_consent": self.require_owner_consent,
            "channels": sorted(self.channels),
            "roles": sorted(self.roles),
            "limits": dict(self.overrides),
            "ceilings": dict(self.ceilings),
            "send_as": self.send_as,
            "play": self.play,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GuildConfig:
        return cls(
            enabled=bool(data.get("enabled", True)),
            require_consent=data.get("require_consent"),
            require_owner_consent=data.get("require_owner_consent"),
            channels=frozenset(int(x) for x in data.get("channels") or ()),
            roles=frozenset(int(x) for x in data.get("roles") or ()),
            overrides=_limit_values(data.get("limits")),
            ceilings=_limit_values(data.get("ceilings")),
            send_as=data.get("send_as") if data.get("send_as") in SEND_AS else None,
            play=data.get("play"),
        )


def _limit_values(data: dict[str, Any] | None) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((k, float(v)) for k, v in (data or {}).items() if k in LIMIT_NAMES))


def replaced(limits: Limits, values: Mapping[str, float]) -> Limits:
    if not values:
        return limits
    return dataclasses.replace(
        limits, **{name: type(getattr(limits, name))(value) for name, value in values.items()}
    )


def checked(values: Mapping[str, float | None]) -> Mapping[str, float | None]:
    unknown = set(values) - set(LIMIT_NAMES)
    if unknown:
        raise ValueError(f"unknown limit {sorted(unknown)[0]!r}")
    return values


def merged(
    current: tuple[tuple[str, float], ...], values: Mapping[str, float | None], reset: bool
) -> tuple[tuple[str, float], ...]:
    merged = {} if reset else dict(current)
    for name, value in values.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = float(value)
    return tuple(sorted(merged.items()))
