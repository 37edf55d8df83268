"""Fair use in the core: the rules and counters (`rules.Policy`), the operator's limits and
a server's own (`limits`), what a refusal says (`refusals`) and today's usage (`ledger`)."""

from .ledger import DAY, utc_day_start
from .limits import (
    GLOBAL_DAILY_JOBS,
    LIMIT_NAMES,
    LONGER_IS_STRICTER,
    OPERATOR,
    SERVER,
    AboveCeiling,
    GuildConfig,
    Limits,
    looser,
    stricter,
)
from .refusals import Ask, Reason, Refusal
from .rules import GLOBAL_SWITCH, Policy

__all__ = [
    "DAY",
    "GLOBAL_DAILY_JOBS",
    "GLOBAL_SWITCH",
    "LIMIT_NAMES",
    "LONGER_IS_STRICTER",
    "OPERATOR",
    "SERVER",
    "AboveCeiling",
    "Ask",
    "GuildConfig",
    "Limits",
    "Policy",
    "Reason",
    "Refusal",
    "looser",
    "stricter",
    "utc_day_start",
]
