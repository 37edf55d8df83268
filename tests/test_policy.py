"""Fair-use rules: each limit, 0 meaning none, refunds, per-guild overrides, the day
boundary, and a rebuild from the store after a restart."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import Secret, Settings
from bot.policy import DAY, OPERATOR, SERVER, AboveCeiling, Ask, Policy, looser, stricter
from bot.store import SqliteJobStore
from cogs.refusals import refusal_text

from .test_store import make_job

NOON = 20_000 * DAY + DAY / 2  # a UTC noon


class Clock:
    def __init__(self) -> None:
        self.now = NOON

    def __call__(self) -> float:
        return self.now


def settings(**changes: object) -> Settings:
    base = Settings(
        discord_token=Secret("t"),
        segmind_api_key=Secret("k"),
        user_cooldown_seconds=0,
        user_max_in_flight=0,
        user_daily_chars=0,
        guild_daily_jobs=0,
        guild_daily_chars=0,
        global_daily_jobs=0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def ask(user: int = 9, chars: int = 10, guild: int | None = 8, **changes: object) -> Ask:
    base = Ask(guild, (7,), user, frozenset(), chars, frozenset({user}))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteJobStore]:
    async with SqliteJobStore(tmp_path) as opened:
        yield opened


async def policy_with(store: SqliteJobStore, clock: Clock, **changes: object) -> Policy:
    policy = Policy(settings(**changes), store, clock=clock)
    await policy.load([])
    return policy


async def test_no_limits_means_no_refusals(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock())
    assert all(policy.reserve(ask(), str(i)) is None for i in range(200))


async def test_cooldown_refuses_until_it_passes_and_says_when(store: SqliteJobStore) -> None:
    clock = Clock()
    policy = await policy_with(store, clock, user_cooldown_seconds=30)
    assert policy.reserve(ask(), "1") is None
    refusal = policy.reserve(ask(), "2")
    assert refusal is not None
    assert refusal.code == "cooldown"
    assert refusal.retry_at == NOON + 30
    assert f"<t:{int(NOON + 30)}:R>" in refusal_text(refusal)
    assert policy.reserve(ask(user=10), "3") is None  # someone else is not slowed
    clock.now += 30
    assert policy.reserve(ask(), "4") is None


async def test_in_flight_limit_frees_a_place_when_a_job_ends(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock(), user_max_in_flight=2)
    assert policy.reserve(ask(), "1") is None
    assert policy.reserve(ask(), "2") is None
    refusal = policy.reserve(ask(), "3")
    assert refusal is not None
    assert refusal.code == "in_flight"
    policy.release("1", refund=False)
    policy.release("1", refund=False)  # twice is harmless
    assert policy.reserve(ask(), "3") is None
    assert policy.in_flight() == 2


async def test_daily_chars_count_what_the_job_would_use(store: SqliteJobStore) -> None:
    clock = Clock()
    policy = await policy_with(store, clock, user_daily_chars=100)
    assert policy.reserve(ask(chars=60), "1") is None
    refusal = policy.reserve(ask(chars=41), "2")
    assert refusal is not None
    assert refusal.code == "user_daily_chars"
    assert "40 left" in refusal_text(refusal)
    assert (refusal.chars, refusal.left) == (41, 40)
    assert refusal.retry_at == 20_001 * DAY
    assert policy.reserve(ask(chars=40), "3") is None
    clock.now += DAY  # a new UTC day
    assert policy.reserve(ask(chars=100), "4") is None


async def test_refund_gives_back_budget_and_cooldown(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock(), user_daily_chars=100, user_cooldown_seconds=60)
    assert policy.reserve(ask(chars=100), "1") is None
    policy.release("1", refund=True)  # e.g. consent declined: nothing was sent
    assert policy.reserve(ask(chars=100), "2") is None
    policy.release("2", refund=False)  # sent: stays counted
    refusal = policy.reserve(ask(chars=1), "3")
    assert refusal is not None
    assert refusal.code == "cooldown"


async def test_guild_and_global_budgets(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock(), guild_daily_jobs=2, global_daily_jobs=3)
    assert policy.reserve(ask(user=1), "1") is None
    assert policy.reserve(ask(user=2), "2") is None
    refusal = policy.reserve(ask(user=3), "3")
    assert refusal is not None
    assert refusal.code == "guild_daily"
    assert policy.reserve(ask(user=3, guild=5), "4") is None
    refusal = policy.reserve(ask(user=4, guild=6), "5")
    assert refusal is not None
    assert refusal.code == "global_daily"
    assert policy.today(8) == (2, 20)


async def test_guild_chars_budget(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock(), guild_daily_chars=25)
    assert policy.reserve(ask(user=1, chars=20), "1") is None
    refusal = policy.reserve(ask(user=2, chars=6), "2")
    assert refusal is not None
    assert refusal.code == "guild_daily"


async def test_guild_overrides_may_only_tighten_the_operators_limits(
    store: SqliteJobStore,
) -> None:
    policy = await policy_with(
        store, Clock(), user_max_in_flight=2, user_cooldown_seconds=30, guild_daily_chars=0
    )
    # Looser: a bigger number, 0 (no limit) where the operator has one, a shorter wait.
    for name, value, ceiling in [
        ("user_max_in_flight", 3, 2),
        ("user_max_in_flight", 0, 2),
        ("user_cooldown_seconds", 29, 30),
        ("user_cooldown_seconds", 0, 30),
    ]:
        with pytest.raises(AboveCeiling) as refused:
            await policy.set_limits(8, 77, {"guild_daily_jobs": 5, name: value})
        assert (refused.value.name, refused.value.value, refused.value.ceiling) == (
            name,
            value,
            ceiling,
        )
        assert policy.guild(8).overrides == ()  # nothing was changed, not even the good one
    # Stricter, or where the operator set no limit: anything.
    await policy.set_limits(
        8, 77, {"user_max_in_flight": 1, "user_cooldown_seconds": 90, "guild_daily_chars": 0}
    )
    limits = policy.limits(8)
    assert (limits.user_max_in_flight, limits.user_cooldown_seconds) == (1, 90)
    assert policy.setter(8, "user_max_in_flight") == SERVER
    assert policy.setter(8, "user_daily_chars") == OPERATOR
    assert policy.limits(5).user_max_in_flight == 2  # another guild keeps the operator's
    refusal = policy.reserve(ask(), "1") or policy.reserve(ask(), "2")
    assert refusal is not None
    assert "this server's limit" in refusal_text(refusal)
    assert refusal.setter == SERVER
    await policy.set_limits(8, 77, {"user_max_in_flight": None})  # back to the operator's
    assert policy.limits(8).user_max_in_flight == 2
    with pytest.raises(ValueError, match="unknown limit"):
        await policy.set_limits(8, 77, {"nonsense": 1})


async def test_the_owners_ceilings_replace_the_settings_for_one_guild(
    store: SqliteJobStore,
) -> None:
    policy = await policy_with(store, Clock(), user_max_in_flight=1, user_cooldown_seconds=30)
    await policy.set_limits(8, 77, {"user_max_in_flight": 1})
    await policy.set_ceilings(8, 1, {"user_max_in_flight": 5, "user_cooldown_seconds": 0})
    assert policy.ceilings(8).user_max_in_flight == 5
    # The admins' stricter override still applies; they may now go up to the owner's 5.
    assert policy.limits(8).user_max_in_flight == 1
    await policy.set_limits(8, 77, {"user_max_in_flight": 5, "user_cooldown_seconds": 0})
    with pytest.raises(AboveCeiling):
        await policy.set_limits(8, 77, {"user_max_in_flight": 0})
    assert (policy.limits(8).user_max_in_flight, policy.limits(8).user_cooldown_seconds) == (5, 0)
    assert policy.limits(5).user_max_in_flight == 1
    # Lowered again: the admins' 5 no longer applies.
    await policy.set_ceilings(8, 1, {"user_max_in_flight": 2})
    assert policy.limits(8).user_max_in_flight == 2
    assert policy.setter(8, "user_max_in_flight") == OPERATOR
    await policy.set_ceilings(8, 1, {}, reset=True)
    assert policy.limits(8).user_max_in_flight == 1
    assert policy.limits(8).user_cooldown_seconds == 30


async def test_looser_overrides_from_older_versions_are_clamped(store: SqliteJobStore) -> None:
    old: dict[str, object] = {
        "limits": {"user_max_in_flight": 0, "user_cooldown_seconds": 0, "guild_daily_jobs": 9}
    }
    await store.save_guild_settings(8, old, 77)
    policy = await policy_with(
        store, Clock(), user_max_in_flight=1, user_cooldown_seconds=30, guild_daily_jobs=10
    )
    limits = policy.limits(8)
    assert (limits.user_max_in_flight, limits.user_cooldown_seconds) == (1, 30)
    assert limits.guild_daily_jobs == 9  # stricter: kept
    assert policy.setter(8, "user_max_in_flight") == OPERATOR
    assert policy.reserve(ask(), "1") is None
    refusal = policy.reserve(ask(), "2")
    assert refusal is not None
    assert refusal.code == "cooldown"
    assert "the bot operator's limit" in refusal_text(refusal)
    assert (refusal.limit, refusal.setter) == ("user_cooldown_seconds", OPERATOR)


def test_stricter_and_looser_read_0_as_no_limit() -> None:
    assert stricter("user_max_in_flight", 0, 3) == 3
    assert stricter("user_max_in_flight", 2, 0) == 2
    assert stricter("user_max_in_flight", 2, 3) == 2
    assert stricter("user_cooldown_seconds", 0, 30) == 30
    assert stricter("user_cooldown_seconds", 60, 30) == 60
    assert looser("guild_daily_jobs", 0, 100)
    assert looser("guild_daily_jobs", 101, 100)
    assert not looser("guild_daily_jobs", 100, 100)
    assert not looser("guild_daily_jobs", 0, 0)
    assert not looser("guild_daily_jobs", 10**6, 0)
    assert looser("user_cooldown_seconds", 10, 30)
    assert not looser("user_cooldown_seconds", 0, 0)
    assert not looser("user_cooldown_seconds", 31, 30)


async def test_switches_channels_roles_blocks_and_opt_outs(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock(), allowed_guild_ids=(8,))

    def code(request: Ask) -> str | None:
        refusal = policy.reserve(request, "j")
        policy.release("j", refund=True)
        return None if refusal is None else refusal.code

    assert code(ask()) is None
    assert code(ask(guild=5)) == "guild_not_allowed"
    await policy.update_guild(8, 77, channels=frozenset({70}))
    assert code(ask()) == "channel"
    assert code(ask(channel_ids=(71, 70))) is None  # a thread under an allowed channel
    await policy.update_guild(8, 77, roles=frozenset({3}))
    assert code(ask(channel_ids=(70,))) == "role"
    assert code(ask(channel_ids=(70,), role_ids=frozenset({3}))) is None
    await policy.update_guild(8, 77, channels=frozenset(), roles=frozenset())
    await policy.update_member(8, 9, blocked_at=1.0, blocked_by=77)
    assert code(ask()) == "blocked"
    assert code(ask(user=10)) is None
    await policy.update_member(8, 10, opted_out_at=1.0)
    assert code(ask(user=10)) == "opted_out_self"
    assert code(ask(user=11, voice_owner_ids=frozenset({10}))) == "opted_out"
    await policy.update_guild(8, 77, enabled=False)
    assert code(ask(user=11)) == "guild_off"
    await policy.set_globally_enabled(False)
    assert code(ask(user=11, guild=5)) == "global_off"


async def test_credit_pause_refuses_with_the_time(store: SqliteJobStore) -> None:
    clock = Clock()
    paused: list[float | None] = [NOON + 600]
    policy = Policy(settings(), store, clock=clock, credits_paused_until=lambda: paused[0])
    await policy.load([])
    refusal = policy.reserve(ask(), "1")
    assert refusal is not None
    assert refusal.code == "credits"
    assert refusal.retry_at == NOON + 600
    paused[0] = None
    assert policy.reserve(ask(), "1") is None


async def test_consent_needed_once_per_guild_unless_turned_off(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock(), require_consent=True)
    assert policy.needs_consent(8, 9)
    await policy.update_member(8, 9, consent_at=NOON)
    assert not policy.needs_consent(8, 9)
    assert policy.needs_consent(5, 9)  # per guild
    await policy.update_guild(5, 77, require_consent=False)
    assert not policy.needs_consent(5, 9)
    off = await policy_with(store, Clock(), require_consent=False)
    assert not off.needs_consent(6, 9)


async def test_rebuilt_after_a_restart(store: SqliteJobStore, tmp_path: Path) -> None:
    clock = Clock()
    limits = {"user_cooldown_seconds": 30, "user_max_in_flight": 1, "guild_daily_jobs": 2}
    policy = await policy_with(store, clock, **limits)
    await policy.update_member(8, 9, consent_at=1.0)
    await policy.update_guild(8, 77, roles=frozenset({3}))
    await policy.set_globally_enabled(False)
    running = make_job("1", created_at=NOON)
    await store.add(running)
    yesterday = make_job("0", created_at=NOON - DAY)
    await store.add(yesterday)

    again = Policy(settings(**limits), store, clock=clock)
    await again.load(await store.unfinished())
    assert not again.globally_enabled
    assert not again.needs_consent(8, 9)
    assert again.guild(8).roles == {3}
    await again.set_globally_enabled(True)
    await again.update_guild(8, 77, roles=frozenset())
    refusal = again.reserve(ask(), "2")
    assert refusal is not None
    assert refusal.code == "cooldown"
    clock.now += 30
    refusal = again.reserve(ask(), "2")
    assert refusal is not None
    assert refusal.code == "in_flight"
    again.release("1", refund=False)
    assert again.in_flight() == 1  # yesterday's job, also unfinished
    again.release("0", refund=False)
    assert again.reserve(ask(), "2") is None
    assert again.today(8) == (2, 21)  # yesterday's job is not counted
