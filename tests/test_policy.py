"""Fair-use rules: each limit, 0 meaning none, refunds, per-guild overrides, the day
boundary, and a rebuild from the store after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import Secret, Settings
from bot.policy import (
    DAY,
    LIMIT_NAMES,
    OPERATOR,
    SERVER,
    AboveCeiling,
    Ask,
    GuildConfig,
    Limits,
    Policy,
    Reason,
    Refusal,
    looser,
    stricter,
)
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


# -- the gaps mutation testing finds in the rules (docs/mutation.md) ---------------------


def test_guild_config_json_round_trip_and_defaults() -> None:
    config = GuildConfig(
        enabled=False,
        require_consent=False,
        require_owner_consent=True,
        channels=frozenset({72, 70}),
        roles=frozenset({5, 3}),
        overrides=(("user_cooldown_seconds", 90.0), ("user_max_in_flight", 1.0)),
        ceilings=(("guild_daily_jobs", 50.0),),
        send_as="voice_message",
        play=True,
    )
    assert config.to_json() == {
        "enabled": False,
        "require_consent": False,
        "require_owner_consent": True,
        "channels": [70, 72],
        "roles": [3, 5],
        "limits": {"user_cooldown_seconds": 90.0, "user_max_in_flight": 1.0},
        "ceilings": {"guild_daily_jobs": 50.0},
        "send_as": "voice_message",
        "play": True,
    }
    assert GuildConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    assert GuildConfig.from_json({}) == GuildConfig()
    assert GuildConfig().to_json() == {
        "enabled": True,
        "require_consent": None,
        "require_owner_consent": None,
        "channels": [],
        "roles": [],
        "limits": {},
        "ceilings": {},
        "send_as": None,
        "play": None,
    }
    assert GuildConfig.from_json({"send_as": "carrier pigeon"}).send_as is None
    nulls = {"channels": None, "roles": None, "limits": None, "ceilings": None}
    assert GuildConfig.from_json(nulls) == GuildConfig()
    assert GuildConfig.from_json({"require_consent": True}).require_consent is True


def test_guild_config_from_json_reads_older_and_odd_values() -> None:
    config = GuildConfig.from_json(
        {
            "enabled": 0,
            "channels": ["70", 71],
            "roles": ["3"],
            "limits": {"user_max_in_flight": 2, "gone_limit": 5, "guild_daily_chars": "300"},
            "ceilings": {"user_daily_chars": 1000, "nonsense": 1},
        }
    )
    assert config.enabled is False
    assert config.channels == frozenset({70, 71})
    assert config.roles == frozenset({3})
    # Unknown names (a limit an older or newer version had) are dropped; values are floats.
    assert config.overrides == (("guild_daily_chars", 300.0), ("user_max_in_flight", 2.0))
    assert all(type(value) is float for _, value in config.overrides)
    assert config.ceilings == (("user_daily_chars", 1000.0),)
    assert GuildConfig.from_json({"enabled": 1}).enabled is True


def test_stricter_and_looser_on_every_limit() -> None:
    smaller_is_stricter = [n for n in LIMIT_NAMES if n != "user_cooldown_seconds"]
    assert len(smaller_is_stricter) == 4
    for name in smaller_is_stricter:
        assert stricter(name, 5, 7) == stricter(name, 7, 5) == 5
        assert stricter(name, 0, 7) == stricter(name, 7, 0) == 7
        assert stricter(name, 0, 0) == 0
        assert looser(name, 8, 7)
        assert looser(name, 0, 7)
        assert not looser(name, 6, 7)
        assert not looser(name, 7, 7)
        assert not looser(name, 6, 0)
    name = "user_cooldown_seconds"  # a longer wait is stricter; 0 = no wait
    assert stricter(name, 5, 7) == stricter(name, 7, 5) == 7
    assert stricter(name, 0, 7) == stricter(name, 7, 0) == 7
    assert stricter(name, 0, 0) == 0
    assert looser(name, 6, 7)
    assert looser(name, 0, 7)
    assert not looser(name, 8, 7)
    assert not looser(name, 7, 7)
    assert not looser(name, 8, 0)


def test_above_ceiling_says_what_and_keeps_the_values() -> None:
    error = AboveCeiling("user_max_in_flight", 3.0, 2.0)
    assert str(error) == "user_max_in_flight = 3 is looser than the operator's 2"
    assert (error.name, error.value, error.ceiling) == ("user_max_in_flight", 3.0, 2.0)
    assert isinstance(error, ValueError)


async def test_limits_keep_their_types_through_overrides_and_ceilings(
    store: SqliteJobStore,
) -> None:
    policy = await policy_with(store, Clock(), user_max_in_flight=3, user_cooldown_seconds=30)
    await policy.set_ceilings(8, 1, {"user_max_in_flight": 4, "guild_daily_jobs": 9})
    await policy.set_limits(8, 77, {"user_max_in_flight": 2, "user_cooldown_seconds": 45})
    limits = policy.limits(8)
    assert limits == Limits(45.0, 2, 0, 9, 0)
    assert type(limits.user_max_in_flight) is int
    assert type(limits.guild_daily_jobs) is int
    assert policy.ceilings(8) == Limits(30.0, 4, 0, 9, 0)
    assert type(policy.ceilings(8).user_max_in_flight) is int
    assert policy.ceilings(5) == policy.limits(5) == Limits(30.0, 3, 0, 0, 0)


async def test_overrides_and_ceilings_merge_one_write_at_a_time(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock(), user_max_in_flight=5, guild_daily_jobs=50)
    await policy.set_limits(8, 77, {"user_max_in_flight": 2})
    await policy.set_limits(8, 77, {"guild_daily_jobs": 20})
    assert policy.guild(8).overrides == (("guild_daily_jobs", 20.0), ("user_max_in_flight", 2.0))
    await policy.set_limits(8, 77, {"user_daily_chars": None})  # not set: nothing to drop
    assert len(policy.guild(8).overrides) == 2
    await policy.set_limits(8, 77, {"user_daily_chars": 500}, reset=True)
    assert policy.guild(8).overrides == (("user_daily_chars", 500.0),)
    await policy.set_ceilings(8, 1, {"user_max_in_flight": 9})
    await policy.set_ceilings(8, 1, {"guild_daily_jobs": 90})
    await policy.set_ceilings(8, 1, {"user_daily_chars": None})
    assert policy.guild(8).ceilings == (("guild_daily_jobs", 90.0), ("user_max_in_flight", 9.0))
    await policy.set_ceilings(8, 1, {"guild_daily_jobs": None})
    assert policy.guild(8).ceilings == (("user_max_in_flight", 9.0),)
    await policy.set_ceilings(8, 1, {"guild_daily_chars": 7}, reset=True)
    assert policy.guild(8).ceilings == (("guild_daily_chars", 7.0),)
    assert policy.guild(8).overrides == (("user_daily_chars", 500.0),)  # the admins' stay
    with pytest.raises(ValueError, match=r"^unknown limit 'a_nonsense'$"):
        await policy.set_ceilings(8, 1, {"b_nonsense": 1, "a_nonsense": 2})
    with pytest.raises(ValueError, match=r"^unknown limit 'nonsense'$"):
        await policy.set_limits(8, 77, {"nonsense": 1})
    assert policy.guild(8).ceilings == (("guild_daily_chars", 7.0),)


async def test_setter_names_the_server_only_where_its_value_is_in_force(
    store: SqliteJobStore,
) -> None:
    policy = await policy_with(store, Clock(), user_max_in_flight=3, user_cooldown_seconds=30)
    await policy.set_limits(8, 77, {"user_max_in_flight": 3, "user_cooldown_seconds": 60})
    assert policy.setter(8, "user_max_in_flight") == SERVER  # the same value: theirs too
    assert policy.setter(8, "user_cooldown_seconds") == SERVER
    assert policy.setter(8, "guild_daily_jobs") == OPERATOR
    assert policy.setter(5, "user_cooldown_seconds") == OPERATOR
    await policy.set_ceilings(8, 1, {"user_cooldown_seconds": 120})  # now stricter than theirs
    assert policy.limits(8).user_cooldown_seconds == 120
    assert policy.setter(8, "user_cooldown_seconds") == OPERATOR


async def test_each_quota_refusal_carries_its_data(store: SqliteJobStore) -> None:
    clock = Clock()
    tomorrow = 20_001 * DAY
    policy = await policy_with(store, clock, user_cooldown_seconds=30, user_max_in_flight=2)
    await policy.set_limits(8, 77, {"user_cooldown_seconds": 40, "user_max_in_flight": 1})
    assert policy.reserve(ask(), "1") is None
    clock.now += 10
    assert policy.reserve(ask(), "2") == Refusal(
        Reason.COOLDOWN,
        retry_at=NOON + 40,
        limit="user_cooldown_seconds",
        setter=SERVER,
        cap=40,
    )
    clock.now += 30
    assert policy.reserve(ask(), "2") == Refusal(
        Reason.IN_FLIGHT, limit="user_max_in_flight", setter=SERVER, cap=1, running=1
    )
    assert policy.reserve(ask(guild=5), "2") is None
    clock.now += 30
    assert policy.reserve(ask(guild=5), "3") is None
    clock.now += 30
    assert policy.reserve(ask(guild=5), "4") == Refusal(
        Reason.IN_FLIGHT, limit="user_max_in_flight", setter=OPERATOR, cap=2, running=2
    )

    await policy.set_limits(8, 77, {"user_daily_chars": 100, "guild_daily_jobs": 3}, reset=True)
    policy = await policy_with(store, clock, user_daily_chars=200, guild_daily_jobs=5)
    assert policy.reserve(ask(user=1, chars=100), "1") is None
    assert policy.reserve(ask(user=1, chars=1), "2") == Refusal(
        Reason.USER_DAILY_CHARS,
        retry_at=tomorrow,
        limit="user_daily_chars",
        setter=SERVER,
        cap=100,
        chars=1,
        left=0,
    )
    assert policy.reserve(ask(user=2), "3") is None
    assert policy.reserve(ask(user=3), "4") is None
    assert policy.reserve(ask(user=4), "5") == Refusal(
        Reason.GUILD_DAILY, retry_at=tomorrow, limit="guild_daily_jobs", setter=SERVER, cap=3
    )
    assert policy.reserve(ask(user=1, chars=150, guild=5), "6") is None
    assert policy.reserve(ask(user=1, chars=51, guild=5), "7") == Refusal(
        Reason.USER_DAILY_CHARS,
        retry_at=tomorrow,
        limit="user_daily_chars",
        setter=OPERATOR,
        cap=200,
        chars=51,
        left=50,
    )

    await policy.set_limits(8, 77, {"guild_daily_chars": 20}, reset=True)
    policy = await policy_with(store, clock, guild_daily_chars=25, global_daily_jobs=2)
    assert policy.reserve(ask(user=1, chars=15), "1") is None
    assert policy.reserve(ask(user=2, chars=6), "2") == Refusal(
        Reason.GUILD_DAILY, retry_at=tomorrow, limit="guild_daily_chars", setter=SERVER, cap=20
    )
    assert policy.reserve(ask(user=2, chars=5), "2") is None  # exactly the cap
    assert policy.reserve(ask(user=3, guild=5), "3") == Refusal(
        Reason.GLOBAL_DAILY, retry_at=tomorrow, limit="global_daily_jobs", setter=OPERATOR, cap=2
    )


async def test_left_is_never_below_0_when_a_cap_was_lowered(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock(), user_daily_chars=100)
    assert policy.reserve(ask(chars=90), "1") is None
    await policy.set_limits(8, 77, {"user_daily_chars": 50})
    refusal = policy.reserve(ask(chars=1), "2")
    assert refusal is not None
    assert (refusal.code, refusal.chars, refusal.left, refusal.cap) == (
        "user_daily_chars",
        1,
        0,
        50,
    )


async def test_channel_and_role_refusals_list_the_allowed_ids_in_order(
    store: SqliteJobStore,
) -> None:
    policy = await policy_with(store, Clock())
    await policy.update_guild(8, 77, channels=frozenset({73, 70, 72}))
    assert policy.check(ask(channel_ids=(71,))) == Refusal(Reason.CHANNEL, allowed=(70, 72, 73))
    await policy.update_guild(8, 77, channels=frozenset(), roles=frozenset({6, 4}))
    assert policy.check(ask(role_ids=frozenset({5}))) == Refusal(Reason.ROLE, allowed=(4, 6))
    assert policy.check(ask(role_ids=frozenset({5, 6}))) is None


async def test_credit_pause_ends_at_its_retry_at(store: SqliteJobStore) -> None:
    clock = Clock()
    paused: list[float | None] = [NOON]
    policy = Policy(settings(), store, clock=clock, credits_paused_until=lambda: paused[0])
    await policy.load([])
    assert policy.check(ask()) is None  # the pause ends now
    paused[0] = NOON - 1
    assert policy.check(ask()) is None
    paused[0] = NOON + 1
    assert policy.check(ask()) == Refusal(Reason.CREDITS, retry_at=NOON + 1)
    assert policy.recheck(ask()) == Refusal(Reason.CREDITS, retry_at=NOON + 1)


async def test_no_cooldown_even_when_the_clock_steps_back(store: SqliteJobStore) -> None:
    clock = Clock()
    policy = await policy_with(store, clock)
    assert policy.reserve(ask(), "1") is None
    clock.now -= 5  # the wall clock was corrected
    assert policy.reserve(ask(), "2") is None


async def test_check_and_recheck_count_nothing(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock(), user_max_in_flight=1, user_daily_chars=10)
    assert policy.check(ask(chars=10)) is None
    assert policy.check(ask(chars=10)) is None
    assert policy.today(8) == (0, 0)
    assert policy.reserve(ask(chars=10), "1") is None
    refusal = policy.check(ask(chars=10))
    assert refusal is not None
    assert refusal.code == "in_flight"
    # The job already reserved is about to start: its own count does not refuse it ...
    assert policy.recheck(ask(chars=10)) is None
    assert policy.today(8) == (1, 10)
    # ... but a rule that changed meanwhile does.
    await policy.update_guild(8, 77, enabled=False)
    assert policy.recheck(ask(chars=10)) == Refusal(Reason.GUILD_OFF)


async def test_counts_are_per_guild_member_and_dm(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock(), user_cooldown_seconds=30, user_daily_chars=10)
    assert policy.reserve(ask(chars=10), "1") is None
    assert policy.reserve(ask(chars=10, guild=5), "2") is None  # the same member elsewhere
    assert policy.reserve(ask(chars=10, guild=None), "3") is None  # and in a DM
    assert policy.reserve(ask(user=10, chars=10), "4") is None
    refusal = policy.reserve(ask(chars=1, guild=None), "5")
    assert refusal is not None
    assert refusal.code == "cooldown"
    assert (policy.today(8), policy.today(5), policy.today(0)) == ((2, 20), (1, 10), (1, 10))
    assert (policy.in_flight(), policy.in_flight(8), policy.in_flight(5)) == (4, 2, 1)
    assert (policy.in_flight(0), policy.in_flight(6)) == (1, 0)
    policy.release("4", refund=False)
    assert (policy.in_flight(), policy.in_flight(8)) == (3, 1)


async def test_refunds_give_back_exactly_one_job(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock(), user_max_in_flight=3)
    for job_id in "123":
        assert policy.reserve(ask(chars=7), job_id) is None
    policy.release("2", refund=True)
    assert policy.today(8) == (2, 14)
    assert policy.in_flight(8) == 2
    policy.release("2", refund=True)  # twice: nothing more
    assert policy.today(8) == (2, 14)
    policy.release("1", refund=False)
    assert policy.today(8) == (2, 14)
    assert policy.in_flight(8) == 1


async def test_a_refund_restores_the_cooldown_of_the_job_before(store: SqliteJobStore) -> None:
    clock = Clock()
    policy = await policy_with(store, clock)
    assert policy.reserve(ask(), "1") is None
    clock.now += 10
    assert policy.reserve(ask(), "2") is None
    await policy.set_limits(8, 77, {"user_cooldown_seconds": 60})
    clock.now += 10
    # The first job's refund leaves the later start in place ...
    policy.release("1", refund=True)
    refusal = policy.check(ask())
    assert refusal is not None
    assert refusal.retry_at == NOON + 10 + 60
    # ... and the later one's refund goes back to the first's.
    policy.release("2", refund=True)
    refusal = policy.check(ask())
    assert refusal is not None
    assert refusal.retry_at == NOON + 60
    assert policy.today(8) == (0, 0)


async def test_job_ended_refunds_only_what_was_never_submitted(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock())
    assert policy.reserve(ask(chars=5), "1") is None
    assert policy.reserve(ask(chars=5), "2") is None
    policy.job_ended(dataclasses.replace(make_job("1"), submit_started_at=NOON))
    assert policy.today(8) == (2, 10)
    policy.job_ended(make_job("2"))
    assert policy.today(8) == (1, 5)
    assert policy.in_flight() == 0


async def test_a_new_day_starts_the_budgets_afresh(store: SqliteJobStore) -> None:
    clock = Clock()
    policy = await policy_with(store, clock, user_daily_chars=10)
    assert policy.reserve(ask(chars=10), "1") is None
    assert policy.reserve(ask(chars=4, user=10), "2") is None
    clock.now = 20_001 * DAY  # midnight UTC
    assert policy.today(8) == (0, 0)
    # Yesterday's job refunded today gives nothing back to today.
    assert policy.reserve(ask(chars=6), "3") is None
    policy.release("1", refund=True)
    assert policy.today(8) == (1, 6)
    refusal = policy.reserve(ask(chars=5), "4")
    assert refusal is not None
    assert refusal.retry_at == 20_002 * DAY
    assert policy.in_flight(8) == 2


async def test_usable_before_load(store: SqliteJobStore) -> None:
    policy = Policy(settings(user_max_in_flight=1), store, clock=Clock())
    assert policy.globally_enabled
    assert policy.reserve(ask(), "1") is None
    assert policy.today(8) == (1, 10)


async def test_rebuilt_with_dms_long_cooldowns_and_unfinished_jobs(
    store: SqliteJobStore,
) -> None:
    clock = Clock()
    limits = {"user_cooldown_seconds": 2 * DAY, "user_daily_chars": 30}
    dm = dataclasses.replace(make_job("1", created_at=NOON - 10), guild_id=None, text="x" * 25)
    yesterday = make_job("2", created_at=NOON - DAY)
    today = make_job("3", created_at=NOON - 5)
    for record in (dm, yesterday, today):
        await store.add(record)
    # As the bot loads them (with text_chars); today's twice.
    unfinished = {record.id: record for record in await store.unfinished()}
    policy = Policy(settings(**limits), store, clock=clock)
    await policy.load([unfinished["1"], unfinished["2"], unfinished["3"], unfinished["3"]])
    assert policy.in_flight() == 3  # each unfinished job once
    assert (policy.in_flight(0), policy.in_flight(8)) == (1, 2)  # the DM's counts as a DM
    assert policy.today(8) == (1, 11)
    assert policy.today(0) == (1, 25)
    refusal = policy.check(ask(user=9, guild=8))
    assert refusal is not None
    assert refusal.retry_at == NOON - 5 + 2 * DAY  # today's start, not yesterday's
    refusal = policy.check(ask(user=9, guild=None, chars=6))
    assert refusal is not None
    assert refusal.retry_at == NOON - 10 + 2 * DAY
    policy.release("2", refund=True)  # yesterday's: today's count stays
    assert policy.today(8) == (1, 11)
    policy.job_ended(unfinished["3"])  # never submitted: refunded
    assert policy.today(8) == (0, 0)
    policy.job_ended(unfinished["1"])
    assert policy.today(0) == (0, 0)
    assert policy.in_flight() == 0


async def test_the_global_switch_survives_a_restart_both_ways(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock())
    await policy.set_globally_enabled(False)
    assert (await store.flags())["enabled"] == "false"  # what other versions read too
    assert (await policy_with(store, Clock())).check(ask()) == Refusal(Reason.GLOBAL_OFF)
    await policy.set_globally_enabled(True)
    assert (await store.flags())["enabled"] == "true"
    again = await policy_with(store, Clock())
    assert again.globally_enabled
    assert again.check(ask()) is None


async def test_consent_follows_the_guild_then_the_setting(store: SqliteJobStore) -> None:
    policy = await policy_with(store, Clock(), require_consent=False)
    await policy.update_guild(8, 77, require_consent=True)
    assert policy.needs_consent(8, 9)
    assert not policy.needs_consent(5, 9)
    await policy.update_member(8, 9, consent_at=NOON)
    assert not policy.needs_consent(8, 9)
    on = await policy_with(store, Clock(), require_consent=True)
    assert on.needs_consent(None, 9)  # a DM: consent is only stored per server
    assert not on.needs_consent(8, 9)  # guild 8's consent, stored above


async def test_who_changed_a_servers_settings_is_stored(
    store: SqliteJobStore, tmp_path: Path
) -> None:
    policy = await policy_with(store, Clock(), user_max_in_flight=3)

    def changed_by() -> int:
        with contextlib.closing(sqlite3.connect(tmp_path / "jobs.sqlite3")) as db:
            row = db.execute("SELECT updated_by FROM guild_settings WHERE guild_id = 8").fetchone()
        return int(row[0])

    await policy.update_guild(8, 77, enabled=False)
    assert changed_by() == 77
    await policy.set_limits(8, 78, {"user_max_in_flight": 2})
    assert changed_by() == 78
    await policy.set_ceilings(8, 1, {"user_max_in_flight": 5})
    assert changed_by() == 1


async def test_changes_made_at_the_same_moment_are_all_kept(store: SqliteJobStore) -> None:
    """Two commands at once (an /optout and a click on Always allow; two admins' limits)
    each change one field: neither change is lost."""
    policy = await policy_with(store, Clock())
    await asyncio.gather(
        policy.update_member(8, 9, opted_out_at=1.0),
        policy.update_member(8, 9, voice_allowed_at=2.0),
        policy.update_guild(8, 77, require_consent=False),
        policy.set_limits(8, 78, {"user_daily_chars": 10.0}),
    )
    member = policy.member(8, 9)
    assert (member.opted_out_at, member.voice_allowed_at) == (1.0, 2.0)
    assert policy.guild(8).require_consent is False
    assert policy.limits(8).user_daily_chars == 10
    reloaded = await policy_with(store, Clock())
    assert reloaded.member(8, 9).voice_allowed_at == 2.0
    assert reloaded.guild(8).overrides == (("user_daily_chars", 10.0),)
