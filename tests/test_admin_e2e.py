"""/voiceclone end to end: real discord.py against the fake Discord and the fake Segmind.

Who may run what (members, server admins, the bot's owner), and that each setting changes
what /speak does for members.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from discord import app_commands

from bot.segmind import account
from bot.store import SqliteJobStore
from tests.fakes.discord import DEFAULT_MEMBER_PERMISSIONS, FakeDiscord, FakeInteraction
from tests.fakes.segmind import FAKE_API_KEY, FakeSegmind, Injection, JobScript
from tests.harness import World, bot_settings, running_bot, world

MANAGE_GUILD = 1 << 5


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path) as running:
        yield running


def add_admin(w: World, name: str = "admin") -> int:
    """A member with Manage Server who is neither the guild owner nor the bot's owner."""
    return w.discord.add_user(name, permissions=DEFAULT_MEMBER_PERMISSIONS | MANAGE_GUILD)


async def run(
    w: World,
    subcommand: str,
    options: Mapping[str, Any] | None = None,
    *,
    user: int | None = None,
    channel: int | None = None,
) -> FakeInteraction:
    """Run /voiceclone <subcommand> (as the guild and bot owner unless `user` is given)
    and wait for its final answer, which must be ephemeral and ping nobody."""
    interaction = await w.discord.slash(
        "voiceclone",
        dict(options or {}),
        subcommand=subcommand,
        user_id=w.discord.owner_id if user is None else user,
        channel_id=channel,
    )

    def answered() -> bool:
        msg = interaction.original
        return msg is not None and not msg.loading

    await w.discord.wait_for(answered)
    msg = interaction.original
    assert msg is not None
    assert msg.ephemeral
    assert msg.mentions == []
    assert not msg.mention_everyone
    assert msg.allowed_mentions == {"parse": []}
    return interaction


async def text_of(
    w: World, subcommand: str, options: Mapping[str, Any] | None = None, **kwargs: Any
) -> str:
    interaction = await run(w, subcommand, options, **kwargs)
    assert interaction.original is not None
    content = interaction.original.content
    assert len(content) <= 2000
    return content


async def speak_refused(w: World, **kwargs: Any) -> str:
    """A member's /speak that must be refused at once (ephemeral, nothing sent to Segmind)."""
    submits = w.segmind.count("submit")
    interaction = await w.speak(**kwargs)
    await w.discord.wait_for(lambda: interaction.original is not None)
    msg = interaction.original
    assert msg is not None
    assert msg.ephemeral
    assert w.segmind.count("submit") == submits
    return msg.content


async def speak_delivered(w: World, **kwargs: Any) -> None:
    interaction = await w.speak(**kwargs)
    msg = await w.answered(interaction)
    assert msg.attachments, msg.content
    await w.job_ended(interaction)


# -- who may run what -------------------------------------------------------------------


async def test_schema_hides_the_group_from_members_and_dms(w: World) -> None:
    [group] = [c for c in w.discord.commands(w.discord.guild_id) if c["name"] == "voiceclone"]
    assert group["default_member_permissions"] == str(MANAGE_GUILD)
    subcommands = {o["name"] for o in group["options"]}
    assert subcommands == {
        "status",
        "enable",
        "disable",
        "consent",
        "channels",
        "roles",
        "limits",
        "usage",
        "block",
        "unblock",
        "audit",
        "global",
        "credits",
        "ceilings",
        "delivery",
        "stop",
    }


async def test_every_subcommand_has_exactly_one_permission_check(w: World) -> None:
    # Written once in cogs/checks.py: a new subcommand cannot forget its check.
    group = w.bot.tree.get_command("voiceclone", guild=None)
    assert isinstance(group, app_commands.Group)
    subcommands = [c for c in group.commands if isinstance(c, app_commands.Command)]
    checks = {c.name: [f.__qualname__.split(".")[0] for f in c.checks] for c in subcommands}
    owners = {"global", "credits", "ceilings"}
    assert checks == {
        name: ["bot_owner" if name in owners else "manage_server_here"] for name in checks
    }
    assert len(checks) == 16


async def test_members_cannot_see_or_run_voiceclone(w: World) -> None:
    # Needs the fake Discord's default_member_permissions enforcement.
    member = w.discord.user_id
    assert "voiceclone" not in w.discord.visible_commands(member, w.discord.guild_id)
    assert "speak" in w.discord.visible_commands(member, w.discord.guild_id)
    assert "voiceclone" in w.discord.visible_commands(add_admin(w), w.discord.guild_id)
    assert "voiceclone" in w.discord.visible_commands(w.discord.owner_id, w.discord.guild_id)
    with pytest.raises(PermissionError):
        await w.discord.slash("voiceclone", {}, subcommand="status", user_id=member)


async def test_the_bot_checks_manage_server_itself(w: World) -> None:
    # A server's admins can let everyone see the command (Server Settings > Integrations).
    assert "voiceclone" not in w.discord.visible_commands(w.discord.user_id)
    w.discord.set_command_permissions("voiceclone", everyone=True)
    assert "voiceclone" in w.discord.visible_commands(w.discord.user_id)
    for subcommand in ("status", "disable", "audit", "usage"):
        interaction = await run(w, subcommand, user=w.discord.user_id)
        assert interaction.original is not None
        assert "Manage Server" in interaction.original.content
        assert interaction.followups == []  # the refusal is the only answer
    assert w.bot.policy.guild(w.discord.guild_id).enabled
    # Owner-only subcommands answer the same to a member as to an admin.
    assert await text_of(w, "global", {"enabled": False}, user=w.discord.user_id) == (
        "Only the bot's owner can do that."
    )
    assert w.bot.policy.globally_enabled


async def test_an_admin_runs_guild_subcommands_but_not_the_owners(w: World) -> None:
    admin = add_admin(w)
    assert "Voice cloning in this server" in await text_of(w, "status", user=admin)
    assert "disabled" in await text_of(w, "disable", user=admin)
    assert not w.bot.policy.guild(w.discord.guild_id).enabled
    owner_only: list[tuple[str, dict[str, Any]]] = [
        ("global", {"enabled": False}),
        ("global", {}),
        ("credits", {}),
        ("ceilings", {"max_in_flight": 0}),
    ]
    for subcommand, options in owner_only:
        content = await text_of(w, subcommand, options, user=admin)
        assert content == "Only the bot's owner can do that."
    assert w.bot.policy.globally_enabled
    assert w.bot.policy.guild(w.discord.guild_id).ceilings == ()
    assert w.segmind.count("credits") == 0


async def test_changes_are_logged_with_guild_and_admin(
    w: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cogs.admin")
    admin = add_admin(w)
    await text_of(w, "disable", user=admin)
    await text_of(w, "limits", {"cooldown_seconds": 5}, user=admin)
    lines = [r.getMessage() for r in caplog.records if r.name == "cogs.admin"]
    assert any(
        str(w.discord.guild_id) in line and str(admin) in line and "disabled" in line
        for line in lines
    )
    assert any("cooldown_seconds" in line and str(admin) in line for line in lines)


# -- settings change what /speak does ----------------------------------------------------


async def test_disable_then_enable(w: World) -> None:
    await text_of(w, "disable")
    assert "turned off in this server" in await speak_refused(w)
    assert "already disabled" in await text_of(w, "disable")
    assert "enabled" in await text_of(w, "enable")
    await speak_delivered(w)


async def test_allowed_channels(w: World) -> None:
    voice_room = w.discord.add_channel("voice-fun")
    assert "Allowed channels: all" in await text_of(w, "channels", {"action": "list"})
    content = await text_of(w, "channels", {"action": "add", "channel": voice_room})
    assert f"<#{voice_room}>" in content
    refusal = await speak_refused(w)
    assert "isn't allowed in this channel" in refusal
    assert f"<#{voice_room}>" in refusal
    await speak_delivered(w, channel_id=voice_room, clip=w.clip())
    assert "Pick the channel" in await text_of(w, "channels", {"action": "add"})
    assert "not on the list" in await text_of(
        w, "channels", {"action": "remove", "channel": w.discord.channel_id}
    )
    assert "every channel" in await text_of(
        w, "channels", {"action": "remove", "channel": voice_room}
    )
    await speak_delivered(w)
    await text_of(w, "channels", {"action": "add", "channel": voice_room})
    assert "every channel" in await text_of(w, "channels", {"action": "clear"})
    assert w.bot.policy.guild(w.discord.guild_id).channels == frozenset()


async def test_allowed_roles(w: World) -> None:
    role = w.discord.add_role("Voice actors")
    member = w.discord.user_id
    content = await text_of(w, "roles", {"action": "add", "role": role})
    assert f"<@&{role}>" in content
    assert "needs one of these roles" in await speak_refused(w)
    w.discord.grant_role(member, role)
    await speak_delivered(w)
    assert "every member" in await text_of(
        w, "roles", {"action": "add", "role": w.discord.guild_id}
    )
    assert "every member" in await text_of(w, "roles", {"action": "clear"})
    w.discord.revoke_role(member, role)
    await speak_delivered(w)


async def test_limit_override_and_reset(tmp_path: Path) -> None:
    async with world(tmp_path, USER_COOLDOWN_SECONDS="60", USER_DAILY_CHARS="0") as w:
        admin = add_admin(w)
        content = await text_of(w, "limits", {"user_daily_chars": 11}, user=admin)
        assert "Characters per member per day: **11** (set here)" in content
        assert "Wait between a member's jobs: **60 s** (default)" in content
        assert "(set here)" in await text_of(w, "status", user=admin)
        assert "left of your daily 11" in await speak_refused(w, text="twelve chars")
        content = await text_of(w, "limits", {"reset": True}, user=admin)
        assert "Characters per member per day: **no limit** (default)" in content
        assert w.bot.policy.guild(w.discord.guild_id).overrides == ()
        await speak_delivered(w, text="twelve chars")
        shown = await text_of(w, "limits", user=admin)
        assert "**Limits in this server**" in shown
        assert "60 s** (default)" in shown


async def test_server_admins_can_only_tighten_the_operators_limits(tmp_path: Path) -> None:
    async with world(
        tmp_path, USER_COOLDOWN_SECONDS="60", USER_MAX_IN_FLIGHT="2", GUILD_DAILY_CHARS="0"
    ) as w:
        admin = add_admin(w)
        for options, ceiling, allowed in [
            ({"max_in_flight": 0}, "**2**", "from 1 to 2"),
            ({"max_in_flight": 3}, "**2**", "from 1 to 2"),
            ({"cooldown_seconds": 0}, "**60 s**", "at least 60 s"),
            # One looser value refuses the whole change: the stricter one is not applied.
            ({"cooldown_seconds": 10, "max_in_flight": 1}, "**60 s**", "at least 60 s"),
        ]:
            content = await text_of(w, "limits", options, user=admin)
            assert content.startswith("⛔ Nothing changed:"), content
            assert f"the bot operator's limit of {ceiling}" in content
            assert allowed in content
            assert "Only the bot's owner can raise" in content
            assert "/voiceclone ceilings" not in content  # that is for the owner
        assert "(set here)" not in await text_of(w, "limits", user=admin)
        # The owner is told how to raise it.
        assert "use `/voiceclone ceilings`" in await text_of(w, "limits", {"max_in_flight": 0})
        # Stricter, or anything where the operator set no limit, is applied.
        content = await text_of(
            w,
            "limits",
            {"cooldown_seconds": 3600, "max_in_flight": 1, "guild_daily_chars": 0},
            user=admin,
        )
        assert "Wait between a member's jobs: **3,600 s** (set here)" in content
        assert "Jobs running at once per member: **1** (set here)" in content
        assert "Characters per server per day: **no limit** (set here)" in content
        await speak_delivered(w)
        refusal = await speak_refused(w)
        assert "Slow down" in refusal
        assert "this server's limit: one job every 3600 s" in refusal


async def test_refusals_name_who_set_the_limit(tmp_path: Path) -> None:
    async with world(tmp_path, USER_DAILY_CHARS="20", GUILD_DAILY_JOBS="3") as w:
        await speak_delivered(w, text="twelve chars")
        refusal = await speak_refused(w, text="twelve chars")
        assert "left of your daily 20 (the bot operator's limit)" in refusal
        await text_of(w, "limits", {"user_daily_chars": 10, "guild_daily_jobs": 2})
        other = w.discord.add_user("other")
        refusal = await speak_refused(w, text="eleven char", user_id=other)
        assert "left of your daily 10 (this server's limit)" in refusal
        await speak_delivered(w, text="ten chars!", user_id=other)
        refusal = await speak_refused(w, text="hi", user_id=w.discord.add_user("third"))
        assert "used its daily voice budget (this server's limit)" in refusal


async def test_the_bot_owner_raises_a_servers_limits(tmp_path: Path) -> None:
    async with world(tmp_path, USER_COOLDOWN_SECONDS="60", USER_MAX_IN_FLIGHT="1") as w:
        admin = add_admin(w)
        elsewhere = 4242
        content = await text_of(w, "ceilings", {"server": str(elsewhere), "max_in_flight": 9})
        assert f"server `{elsewhere}`" in content
        assert "Jobs running at once per member: **9** (set for this server)" in content
        assert "not in that server now" in content
        assert w.bot.policy.limits(w.discord.guild_id).user_max_in_flight == 1
        assert "`abc`" not in await text_of(w, "ceilings", {"server": "abc"})

        content = await text_of(w, "ceilings", {"cooldown_seconds": 0, "max_in_flight": 3})
        assert "**The bot operator's limits for this server**" in content
        assert "Wait between a member's jobs: **no limit** (set for this server)" in content
        assert "Characters per member per day: **no limit** (`USER_DAILY_CHARS`)" in content
        shown = await text_of(w, "limits", user=admin)
        assert "Wait between a member's jobs: **no limit** (set by the bot's owner)" in shown
        # No cooldown now, and two jobs at once: above the settings.
        w.segmind.script_jobs(JobScript(statuses=("PROCESSING",) * 400 + ("COMPLETED",)))
        await w.speak("one")
        await w.speak("two")
        await w.segmind.wait_for(lambda: w.segmind.count("submit") == 2)
        # The server's admins may tighten within the owner's ceilings, not beyond them.
        refused = await text_of(w, "limits", {"max_in_flight": 4}, user=admin)
        assert "the bot operator's limit of **3**" in refused
        content = await text_of(w, "limits", {"max_in_flight": 2}, user=admin)
        assert "Jobs running at once per member: **2** (set here)" in content
        assert "2 job(s) running" in await speak_refused(w)
        content = await text_of(w, "ceilings")
        assert "Jobs running at once per member: **3** (set for this server) · stricter" in content
        # Reset: the settings again, and the admins' 2 is looser than them, so it yields.
        content = await text_of(w, "ceilings", {"reset": True})
        assert "Wait between a member's jobs: **60 s** (`USER_COOLDOWN_SECONDS`)" in content
        status = await text_of(w, "status", user=admin)
        assert (
            "Jobs running at once per member: **1** (default; the override set here (2) is looser"
            in status
        )
        refusal = await speak_refused(w)
        assert "Slow down" in refusal
        assert "the bot operator's limit: one job every 60 s" in refusal


async def test_looser_overrides_stored_by_older_versions_do_not_apply(tmp_path: Path) -> None:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        # Written by a version where a server's admins could lift every limit.
        old: dict[str, object] = {
            "enabled": True,
            "limits": {"user_cooldown_seconds": 0, "user_daily_chars": 0},
        }
        async with SqliteJobStore(tmp_path) as store:
            await store.save_guild_settings(discord.guild_id, old, discord.owner_id)
        with discord.patch_discord_py():
            config = bot_settings(
                tmp_path, segmind, discord, USER_COOLDOWN_SECONDS="60", USER_DAILY_CHARS="500"
            )
            async with running_bot(discord, config) as bot:
                w = World(discord, segmind, bot, config)
                await speak_delivered(w)
                refusal = await speak_refused(w)
                assert "Slow down" in refusal
                assert "the bot operator's limit" in refusal
                shown = await text_of(w, "limits")
                assert (
                    "Wait between a member's jobs: **60 s** (default; the override set here "
                    "(no limit) is looser, so it does not apply)"
                ) in shown
                assert "Characters per member per day: **500** (default;" in shown


async def test_max_in_flight_override(w: World) -> None:
    w.segmind.script_jobs(JobScript(statuses=("PROCESSING",) * 400 + ("COMPLETED",)))
    await text_of(w, "limits", {"max_in_flight": 1})
    await w.speak("first")
    await w.segmind.wait_for(lambda: w.segmind.count("submit") == 1)
    assert "1 job(s) running" in await speak_refused(w)
    assert "Jobs running now: 1" in await text_of(w, "status")
    await text_of(w, "limits", {"max_in_flight": 0})
    await speak_delivered(w)


async def test_consent_setting(w: World) -> None:
    guild, member = w.discord.guild_id, w.discord.user_id
    # The harness turns the operator's default (REQUIRE_CONSENT) off.
    assert "off (the operator's default)" in await text_of(w, "status")
    assert "**on**" in await text_of(w, "consent", {"required": "on"})
    assert w.bot.policy.needs_consent(guild, member)
    assert "required (set here)" in await text_of(w, "status")
    prompt = await w.speak()
    await w.discord.wait_for(lambda: prompt.original is not None)
    assert prompt.original is not None
    assert "your own" in prompt.original.content
    assert w.segmind.count("submit") == 0
    assert "**off**" in await text_of(w, "consent", {"required": "off"})
    assert not w.bot.policy.needs_consent(guild, member)
    await speak_delivered(w)
    content = await text_of(w, "consent", {"required": "default"})
    assert "operator's default" in content
    assert w.bot.policy.guild(guild).require_consent is None


async def test_block_and_unblock(w: World) -> None:
    admin = add_admin(w)
    member = w.discord.user_id
    content = await text_of(w, "block", {"member": member, "reason": "@everyone spam"}, user=admin)
    assert f"<@{member}>" in content
    assert "@\u200beveryone" in content  # the reason is echoed neutralised
    record = w.bot.policy.member(w.discord.guild_id, member)
    assert record.blocked_at is not None
    assert (record.blocked_by, record.block_reason) == (admin, "@everyone spam")
    assert "blocked" in await speak_refused(w)
    assert "can't block yourself" in await text_of(w, "block", {"member": admin}, user=admin)
    bot_user = w.discord.bot_user_id
    assert "Bots" in await text_of(w, "block", {"member": bot_user}, user=admin)
    assert "can use voice cloning here again" in await text_of(
        w, "unblock", {"member": member}, user=admin
    )
    assert "not blocked" in await text_of(w, "unblock", {"member": member}, user=admin)
    assert w.bot.policy.member(w.discord.guild_id, member).blocked_at is None
    await speak_delivered(w)


async def test_global_switch_is_the_owners(w: World) -> None:
    other_channel = w.discord.add_channel("elsewhere")
    content = await text_of(w, "global", {"enabled": False})
    assert "**off**" in content
    assert "not set" in content  # no ALLOWED_GUILD_IDS
    assert not w.bot.policy.globally_enabled
    assert "paused by the bot's owner" in await speak_refused(w)
    assert "paused by the bot's owner" in await speak_refused(w, channel_id=other_channel)
    status = await text_of(w, "status", user=add_admin(w))
    assert "owner switch **off**" in status
    assert "paused it everywhere" in await text_of(w, "disable") + await text_of(w, "enable")
    assert "**on**" in await text_of(w, "global", {"enabled": True})
    await speak_delivered(w)


async def test_status_shows_the_allowlist(tmp_path: Path) -> None:
    async with world(tmp_path, ALLOWED_GUILD_IDS="42") as w:
        status = await text_of(w, "status")
        assert "this server is not on it" in status
        assert "`42`" in await text_of(w, "global")


# -- reports -----------------------------------------------------------------------------


async def test_status_lists_everything(w: World) -> None:
    role = w.discord.add_role("Voice actors")
    await text_of(w, "channels", {"action": "add", "channel": w.discord.channel_id})
    await text_of(w, "roles", {"action": "add", "role": role})
    w.discord.grant_role(w.discord.user_id, role)
    await text_of(w, "limits", {"guild_daily_jobs": 7})
    await speak_delivered(w, text="twelve chars")
    status = await text_of(w, "status")
    assert "Bot here: ✅ enabled" in status
    assert f"Allowed channels: <#{w.discord.channel_id}>" in status
    assert f"Allowed roles: <@&{role}>" in status
    assert "Jobs per server per day: **7** (set here)" in status
    assert "Characters per member per day: **no limit** (default)" in status
    assert "Today (UTC): 1 job(s) of 7, 12 characters (no cap)" in status
    assert "Jobs running now: 0" in status
    assert "owner switch on" in status
    assert "server allowlist (`ALLOWED_GUILD_IDS`): none" in status


async def test_usage_today_and_week(w: World) -> None:
    member, other = w.discord.user_id, w.discord.add_user("other")
    for text in ("one", "three", "fivee"):
        await speak_delivered(w, text=text)
    await speak_delivered(w, text="x" * 10, user_id=other)
    interaction = await run(w, "usage")
    assert interaction.original is not None
    content = interaction.original.content
    today, week = content.split("Last 7 days")
    assert "4 job(s), 23 characters" in today
    assert f"1. <@{member}> — 3 job(s), 13 characters" in today
    assert f"2. <@{other}> — 1 job(s), 10 characters" in today
    assert "4 job(s), 23 characters" in week
    assert "JOB_RETENTION_DAYS" not in content


async def test_usage_notes_short_retention(tmp_path: Path) -> None:
    async with world(tmp_path, JOB_RETENTION_DAYS="2") as w:
        content = await text_of(w, "usage")
        assert "0 job(s), 0 characters" in content
        assert "kept 2 day(s)" in content


def audit_embed(interaction: FakeInteraction) -> dict[str, Any]:
    assert interaction.original is not None
    [embed] = interaction.original.embeds
    assert len(embed["description"]) <= 4096
    return embed


async def test_audit_lists_jobs_without_text_by_default(w: World) -> None:
    await speak_delivered(w, text="secret words")
    w.segmind.inject("submit", Injection(status=406))
    failing = await w.speak("never made")
    assert "out of credits" in (await w.answered(failing)).content
    await w.job_ended(failing)
    embed = audit_embed(await run(w, "audit"))
    lines = embed["description"].splitlines()
    assert len(lines) == 2
    assert "❌ failed: `" in lines[0]
    assert "request none" in lines[0]
    [job] = w.segmind.jobs.values()
    assert f"request `{job.request_id}`" in lines[1]
    assert "delivered via interaction" in lines[1]
    assert f"<@{w.discord.user_id}> in <#{w.discord.channel_id}>" in lines[1]
    assert "12 chars" in lines[1]
    assert "`en`" in lines[1]
    assert "clip from `127.0.0.1`" in lines[1]
    assert "<t:" in lines[1]
    assert "secret words" not in embed["description"]
    assert "not stored" in embed["footer"]["text"]
    one = audit_embed(await run(w, "audit", {"count": 1}))
    assert len(one["description"].splitlines()) == 1


async def test_audit_shows_stored_text_neutralised(tmp_path: Path) -> None:
    async with world(tmp_path, AUDIT_STORE_TEXT="true") as w:
        await speak_delivered(w, text="hi @everyone **bold**")
        embed = audit_embed(await run(w, "audit"))
        assert "> hi @\u200beveryone \\*\\*bold\\*\\*" in embed["description"]
        assert "footer" not in embed or "not stored" not in embed["footer"].get("text", "")


async def test_audit_fits_in_one_embed(tmp_path: Path) -> None:
    async with world(tmp_path, AUDIT_STORE_TEXT="true") as w:
        for n in range(25):
            await speak_delivered(w, text=f"{n} " + "long words " * 30)
        embed = audit_embed(await run(w, "audit", {"count": 25}))
        assert "older job(s) not shown" in embed["description"]
        assert "Last 25 job(s)" in embed["title"]


async def test_empty_audit(w: World) -> None:
    assert await text_of(w, "audit") == "No jobs recorded in this server."


# -- credits ---------------------------------------------------------------------------


async def test_credits_show_the_balance(w: World) -> None:
    w.segmind.credits, w.segmind.free_credits = 1234.5, 0.018
    content = await text_of(w, "credits")
    assert "**1,234.50** credits" in content
    assert "**0.02** free credits" in content
    [request] = [r for r in w.segmind.requests if r.kind == "credits"]
    assert request.headers["x-api-key"] == FAKE_API_KEY


async def test_credits_errors_are_clear_and_keyless(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w.segmind.inject("credits", Injection(status=401))
    assert "refused the bot's API key" in await text_of(w, "credits")
    w.segmind.inject("credits", Injection(status=400, body={"error": f"bad {FAKE_API_KEY}"}))
    content = await text_of(w, "credits")
    assert "did not give the balance" in content
    monkeypatch.setattr(account, "CREDITS_TIMEOUT", 0.2)
    w.segmind.inject("credits", Injection(status=200, body={"credits": 1}, delay=5, times=2))
    assert "Could not reach Segmind" in await text_of(w, "credits")
    for request in w.discord.requests:
        assert FAKE_API_KEY not in json.dumps(request.json)
