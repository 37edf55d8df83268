"""Fair use end to end through real discord.py: limits under concurrent commands, the fair
queue and its Cancel button, the consent prompt, opt-out, and the out-of-credits pause."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cogs.speak import MESSAGE_COMMAND
from tests.fakes.discord import (
    DEFAULT_MEMBER_PERMISSIONS,
    MANAGE_GUILD,
    FakeDiscord,
    FakeInteraction,
    FakeMessage,
)
from tests.fakes.segmind import FakeSegmind, Injection, JobScript, fake_mp3
from tests.harness import World, bot_settings, is_final, running_bot, world

HELD = ["QUEUED", "PROCESSING"]  # a job that runs until the test appends "COMPLETED"


async def refusal(w: World, interaction: FakeInteraction) -> str:
    await w.discord.wait_for(lambda: interaction.original is not None)
    assert interaction.original is not None
    assert interaction.original.ephemeral
    return interaction.original.content


async def message_of(w: World, interaction: FakeInteraction) -> FakeMessage:
    await w.discord.wait_for(lambda: interaction.original is not None)
    assert interaction.original is not None
    return interaction.original


def custom_ids(message: FakeMessage) -> list[str]:
    return [
        component["custom_id"]
        for row in message.components
        for component in row.get("components", [])
        if "custom_id" in component
    ]


async def held_job(w: World, text: str, **kwargs: Any) -> tuple[FakeInteraction, list[str]]:
    """A job that occupies its slot until `statuses.append("COMPLETED")`."""
    statuses = list(HELD)
    w.segmind.script_jobs(JobScript(statuses=statuses))
    interaction = await w.speak(text, **kwargs)
    await w.segmind.wait_for(lambda: any(j.text == text for j in w.segmind.jobs.values()))
    return interaction, statuses


async def test_two_commands_at_once_cannot_pass_the_in_flight_limit(tmp_path: Path) -> None:
    async with world(tmp_path, USER_MAX_IN_FLIGHT="1") as w:
        first, second = await asyncio.gather(w.speak("one"), w.speak("two"))
        texts = []
        for interaction in (first, second):
            msg = await message_of(w, interaction)
            texts.append((msg.ephemeral, msg.content))
        refused = [content for ephemeral, content in texts if ephemeral]
        assert len(refused) == 1
        assert "1 job(s) running" in refused[0]
        await w.segmind.wait_for(lambda: w.segmind.count("submit") >= 1)
        accepted = first if not first.original or not first.original.ephemeral else second
        await w.answered(accepted)
        assert w.segmind.count("submit") == 1
        # Finished: the place is free again.
        await w.job_ended(accepted)
        await w.answered(await w.speak("three"))


async def test_daily_characters_and_cooldown_say_when_to_retry(tmp_path: Path) -> None:
    async with world(tmp_path, USER_DAILY_CHARS="15", USER_COOLDOWN_SECONDS="3600") as w:
        first, second = await asyncio.gather(w.speak("ten chars!"), w.speak("ten chars?"))
        contents = [(await message_of(w, i)).content for i in (first, second)]
        # One ran; the other was refused by the first rule it met (the cooldown).
        assert sum("you can start another job <t:" in c for c in contents) == 1
        other = w.discord.add_user("other")
        text = await refusal(w, await w.speak("sixteen chars!!!", user_id=other))
        assert "you have 15 left of your daily 15" in text
        assert "resets <t:" in text
        accepted = next(i for i in (first, second) if i.original and not i.original.ephemeral)
        await w.answered(accepted)
        assert w.segmind.count("submit") == 1


async def test_queue_is_round_robin_and_shows_positions(tmp_path: Path) -> None:
    async with world(tmp_path, SEGMIND_MAX_CONCURRENT="1") as w:
        bob = w.discord.add_user("bob")
        cat = w.discord.add_user("cat")
        first, statuses = await held_job(w, "a1")
        queued = [await w.speak(f"a{n}") for n in (2, 3, 4)]
        queued.append(await w.speak("b1", user_id=bob))
        queued.append(await w.speak("c1", user_id=cat))
        await w.discord.wait_for(lambda: w.bot.jobs.waiting == 5)
        c1 = queued[-1]
        # Alice's second job goes first, then one each for Bob and Cat, then Alice again.
        await w.discord.wait_for(
            lambda: c1.original is not None and "position **3**" in c1.original.content
        )
        statuses.append("COMPLETED")
        for interaction in (first, *queued):
            msg = await w.answered(interaction)
            assert msg.attachments
            # The Cancel button is gone with the result; the result's mark came with it.
            ids = [f"vc:{action}:{interaction.id}" for action in ("again", "edit", "delete")]
            assert custom_ids(msg) == ids
        order = [job.text for job in w.segmind.jobs.values()]
        assert order == ["a1", "a2", "b1", "c1", "a3", "a4"]


async def test_cancel_while_queued_is_free_and_after_submit_may_be_billed(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, SEGMIND_MAX_CONCURRENT="1", USER_MAX_IN_FLIGHT="2") as w:
        running, _ = await held_job(w, "running")
        waiting = await w.speak("waiting")
        await w.discord.wait_for(
            lambda: waiting.original is not None and bool(custom_ids(waiting.original))
        )
        assert waiting.original is not None
        [button] = custom_ids(waiting.original)
        assert button == f"vc:cancel:{waiting.id}"
        stranger = w.discord.add_user("stranger")
        click = await w.discord.click(waiting.original.id, button, user_id=stranger)
        assert "Only the member who asked" in await refusal(w, click)

        await w.discord.click(waiting.original.id, button)
        msg = await w.answered(waiting)
        assert msg.content.startswith("🚫 Cancelled. Nothing was sent")
        assert custom_ids(msg) == []

        # The cancelled job gave its place back: a new one is accepted at the limit of 2.
        await w.job_ended(waiting)
        third = await w.speak("third")
        assert not (await message_of(w, third)).ephemeral

        await w.discord.wait_for(
            lambda: running.original is not None and bool(custom_ids(running.original))
        )
        assert running.original is not None
        await w.discord.click(running.original.id, f"vc:cancel:{running.id}")
        msg = await w.answered(running)
        assert "may still be billed" in msg.content
        await w.answered(third)
        assert [job.text for job in w.segmind.jobs.values()] == ["running", "third"]


async def test_cancel_only_from_the_jobs_own_server(tmp_path: Path) -> None:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        other = discord.add_guild("Their own server")
        admin_there = discord.add_user(
            "admin-there", permissions=DEFAULT_MEMBER_PERMISSIONS | MANAGE_GUILD, guild_id=other
        )
        with discord.patch_discord_py():
            config = bot_settings(
                tmp_path, segmind, discord, DISCORD_GUILD_IDS=f"{discord.guild_id},{other}"
            )
            async with running_bot(discord, config) as bot:
                w = World(discord, segmind, bot, config)
                victim, statuses = await held_job(w, "not yours")
                await discord.wait_for(
                    lambda: victim.original is not None and bool(custom_ids(victim.original))
                )
                # An admin of another server sends the job's Cancel from a bot message there.
                there = await discord.slash(
                    "voiceclone",
                    {},
                    subcommand="status",
                    user_id=admin_there,
                    channel_id=discord.guild(other).channel_ids[0],
                )
                source = await message_of(w, there)
                click = await discord.click(
                    source.id, f"vc:cancel:{victim.id}", user_id=admin_there, forged=True
                )
                assert "Only the member who asked" in await refusal(w, click)
                statuses.append("COMPLETED")
                msg = await w.answered(victim)
                assert msg.attachments
                assert "Cancelled" not in msg.content


async def test_consent_prompt_accept_then_never_again(tmp_path: Path) -> None:
    async with world(tmp_path, REQUIRE_CONSENT="true") as w:
        prompt = await w.speak("hello")
        msg = await message_of(w, prompt)
        assert msg.ephemeral
        assert "your own" in msg.content
        assert "AI-generated" in msg.content
        assert custom_ids(msg) == [f"vc:consent:yes:{prompt.id}", f"vc:consent:no:{prompt.id}"]
        assert w.segmind.count("submit") == 0

        click = await w.discord.click(msg.id, f"vc:consent:yes:{prompt.id}")
        result = await w.answered(click)
        assert not result.ephemeral
        assert result.attachments
        assert "AI-generated" in result.content
        await w.discord.wait_for(lambda: "recorded" in msg.content)
        assert custom_ids(msg) == []
        members = await w.bot.store.members()
        assert [(m.user_id, m.consent_at is not None) for m in members] == [
            (w.discord.user_id, True)
        ]

        again = await w.speak("hello again")
        assert (await w.answered(again)).attachments  # no second prompt
        assert w.segmind.count("submit") == 2


async def voiceclone(
    w: World, subcommand: str, options: dict[str, Any] | None = None, *, user: int
) -> str:
    """Run /voiceclone <subcommand> as `user` and return its (ephemeral) answer."""
    interaction = await w.discord.slash(
        "voiceclone", options or {}, subcommand=subcommand, user_id=user
    )
    return await refusal(w, interaction)


def add_admin(w: World) -> int:
    return w.discord.add_user("admin", permissions=DEFAULT_MEMBER_PERMISSIONS | MANAGE_GUILD)


async def block(w: World) -> None:
    await voiceclone(w, "block", {"member": w.discord.user_id}, user=add_admin(w))


async def opt_out(w: World) -> None:
    await refusal(w, await w.discord.slash("optout"))


async def disable(w: World) -> None:
    await voiceclone(w, "disable", user=add_admin(w))


async def switch_off_everywhere(w: World) -> None:
    await voiceclone(w, "global", {"enabled": False}, user=w.discord.owner_id)


async def other_channels_only(w: World) -> None:
    channel = w.discord.add_channel("voice-fun")
    await voiceclone(w, "channels", {"action": "add", "channel": channel}, user=add_admin(w))


async def role_needed(w: World) -> None:
    role = w.discord.add_role("Voice actors")
    await voiceclone(w, "roles", {"action": "add", "role": role}, user=add_admin(w))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (block, "blocked by its admins"),
        (opt_out, "You opted out of voice cloning in this server"),
        (disable, "turned off in this server"),
        (switch_off_everywhere, "paused by the bot's owner"),
        (other_channels_only, "isn't allowed in this channel"),
        (role_needed, "needs one of these roles"),
    ],
)
async def test_consent_click_rechecks_the_rules(
    tmp_path: Path, change: Callable[[World], Awaitable[None]], reason: str
) -> None:
    async with world(tmp_path, REQUIRE_CONSENT="true", USER_MAX_IN_FLIGHT="1") as w:
        prompt = await message_of(w, await w.speak("hello"))
        assert "your own" in prompt.content
        await change(w)  # while the prompt waits for an answer
        await w.discord.click(prompt.id, f"vc:consent:yes:{prompt.interaction_id}")
        await w.discord.wait_for(lambda: prompt.content.startswith("🚫"))
        assert reason in prompt.content
        assert "nothing was sent" in prompt.content
        assert custom_ids(prompt) == []
        assert prompt.mentions == []
        assert w.segmind.count("submit") == 0
        # Refunded: the refused job neither runs nor counts against today's budget.
        status = await voiceclone(w, "status", user=w.discord.owner_id)
        assert "Jobs running now: 0" in status
        assert "Today (UTC): 0 job(s)" in status


async def test_consent_click_does_not_count_the_job_against_its_own_limits(
    tmp_path: Path,
) -> None:
    async with world(
        tmp_path,
        REQUIRE_CONSENT="true",
        USER_MAX_IN_FLIGHT="1",
        USER_DAILY_CHARS="5",
        GUILD_DAILY_JOBS="1",
    ) as w:
        prompt = await message_of(w, await w.speak("hello"))  # all of today's budget
        click = await w.discord.click(prompt.id, f"vc:consent:yes:{prompt.interaction_id}")
        assert (await w.answered(click)).attachments


async def test_consent_click_rechecks_the_clip_authors_opt_out(tmp_path: Path) -> None:
    async with world(tmp_path, REQUIRE_CONSENT="true") as w:
        author = w.discord.add_user("author")
        post = await w.discord.user_message(user_id=author, attachments=[w.clip()])
        opened = await w.discord.context_menu(MESSAGE_COMMAND, post.id)
        await w.discord.wait_for(lambda: opened.modal is not None)
        submitted = await w.discord.submit_modal(opened, {"text": "Hola"})
        prompt = await message_of(w, submitted)
        assert "your own" in prompt.content
        await refusal(w, await w.discord.slash("optout", user_id=author))
        await w.discord.click(prompt.id, f"vc:consent:yes:{submitted.id}")
        await w.discord.wait_for(lambda: prompt.content.startswith("🚫"))
        assert "asked not to have their voice cloned" in prompt.content
        assert w.segmind.count("submit") == 0


async def test_consent_declined_sends_nothing_and_frees_the_budget(tmp_path: Path) -> None:
    async with world(tmp_path, REQUIRE_CONSENT="true", USER_MAX_IN_FLIGHT="1") as w:
        prompt = await w.speak("hello")
        msg = await message_of(w, prompt)
        await w.discord.click(msg.id, f"vc:consent:no:{prompt.id}")
        await w.discord.wait_for(lambda: msg.content.startswith("Cancelled"))
        assert custom_ids(msg) == []
        assert w.segmind.count("submit") == 0
        assert await w.bot.store.members() == []
        # Declining cost nothing and freed the in-flight place; the prompt comes again.
        second = await message_of(w, await w.speak("hello"))
        assert "your own" in second.content


async def test_consent_can_be_turned_off_by_a_guild_admin(tmp_path: Path) -> None:
    async with world(tmp_path, REQUIRE_CONSENT="true") as w:
        answer = await voiceclone(w, "consent", {"required": "off"}, user=add_admin(w))
        assert "Consent prompt: **off**" in answer
        interaction = await w.speak("hi")
        first = await message_of(w, interaction)
        assert not first.ephemeral  # the job's own message, not a private prompt
        assert "your own" not in first.content
        assert (await w.answered(interaction)).attachments


async def test_opted_out_member_cannot_be_cloned_until_opting_in(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.discord.slash("optout")
        await w.discord.wait_for(
            lambda: bool(w.bot.policy.member(w.discord.guild_id, w.discord.user_id).opted_out_at)
        )
        text = await refusal(w, await w.speak("hello"))
        assert "opted out" in text
        assert "/optin" in text
        optin = await w.discord.slash("optin")
        assert "opt-out is removed" in await refusal(w, optin)
        assert (await w.answered(await w.speak("hello"))).attachments
        assert w.segmind.count("submit") == 1


async def test_out_of_credits_pauses_submits_and_tells_the_owner_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with world(tmp_path, SEGMIND_MAX_CONCURRENT="1", NOTIFY_OWNER_DM="true") as w:
        first, statuses = await held_job(w, "first")
        users = [w.discord.add_user(f"user{n}") for n in range(3)]
        queued = [await w.speak(f"queued {n}", user_id=u) for n, u in enumerate(users)]
        await w.discord.wait_for(lambda: w.bot.jobs.waiting == 3)
        w.segmind.inject("submit", Injection(status=406, times=3))
        with caplog.at_level(logging.ERROR, logger="bot"):
            statuses.append("COMPLETED")
            assert (await w.answered(first)).attachments
            for interaction in queued:
                msg = await w.answered(interaction)
                assert "out of credits" in msg.content
        # One 406 paused everything: the other queued jobs were never sent.
        assert w.segmind.count("submit") == 2
        assert "costs nothing" in (await w.answered(queued[-1])).content
        text = await refusal(w, await w.speak("new", user_id=users[0]))
        assert "out of credits" in text
        assert "<t:" in text
        await w.discord.wait_for(lambda: len(w.discord.dm_messages(w.discord.owner_id)) == 1)
        [dm] = w.discord.dm_messages(w.discord.owner_id)
        assert "out of credits" in dm.content
        errors = [r for r in caplog.records if "out of credits" in r.getMessage()]
        assert len(errors) == 1


async def test_results_carry_the_ai_label_in_every_path(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        msg = await w.answered(await w.speak("label me"))
        assert is_final(msg)
        assert "AI-generated voice" in msg.content


async def test_speak_in_the_voice_of_a_message(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        author = w.discord.add_user("author")
        clip = w.clip(data=fake_mp3(b"the author's voice"))
        post = await w.discord.user_message(user_id=author, attachments=[clip])
        opened = await w.discord.context_menu(MESSAGE_COMMAND, post.id)
        await w.discord.wait_for(lambda: opened.modal is not None)
        submitted = await w.discord.submit_modal(opened, {"text": "Bonjour", "language": "fr"})
        msg = await w.answered(submitted)
        assert msg.attachments
        assert not msg.ephemeral
        [job] = w.segmind.jobs.values()
        assert (job.text, job.language) == ("Bonjour", "fr")
        assert job.sample_bytes == fake_mp3(b"the author's voice")

        # Once the author opts out, their messages can't be used, before or after the modal.
        again = await w.discord.context_menu(MESSAGE_COMMAND, post.id)
        await w.discord.wait_for(lambda: again.modal is not None)
        optout = await w.discord.slash("optout", user_id=author)
        await w.discord.wait_for(lambda: optout.original is not None)
        late = await w.discord.submit_modal(again, {"text": "Hola"})
        assert "asked not to have their voice cloned" in await refusal(w, late)
        early = await w.discord.context_menu(MESSAGE_COMMAND, post.id)
        assert "asked not to have their voice cloned" in await refusal(w, early)
        assert early.modal is None

        text_only = await w.discord.user_message("no clip here", user_id=author)
        nothing = await w.discord.context_menu(MESSAGE_COMMAND, text_only.id)
        assert "no audio clip" in await refusal(w, nothing)
        assert w.segmind.count("submit") == 1


async def speak_from(w: World, message_id: int, user: int, text: str) -> FakeInteraction:
    """ "Speak in this voice" on a message, through the modal; the submit's interaction."""
    opened = await w.discord.context_menu(MESSAGE_COMMAND, message_id, user_id=user)
    await w.discord.wait_for(lambda: opened.modal is not None or opened.original is not None)
    assert opened.modal is not None, opened.original.content if opened.original else ""
    return await w.discord.submit_modal(opened, {"text": text})


async def refused_at_once(w: World, message_id: int, user: int) -> str:
    """ "Speak in this voice" on a message, refused before the modal."""
    opened = await w.discord.context_menu(MESSAGE_COMMAND, message_id, user_id=user)
    text = await refusal(w, opened)
    assert opened.modal is None
    return text


async def test_a_result_reused_as_a_clip_belongs_to_the_voice_it_was_made_from(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        author, requester = w.discord.add_user("author"), w.discord.user_id
        reuser = w.discord.add_user("reuser")
        post = await w.discord.user_message(
            user_id=author, attachments=[w.clip(data=fake_mp3(b"the author's voice"))]
        )
        first = await speak_from(w, post.id, requester, "In your voice")
        result = await w.answered(first)
        await w.job_ended(first)
        assert result.author_id == w.discord.bot_user_id
        # Re-used while the author allows it: the new job's clip is the bot's result...
        second = await speak_from(w, result.id, reuser, "Again")
        again = await w.answered(second)
        await w.job_ended(second)
        [job] = [j for j in w.segmind.jobs.values() if j.text == "Again"]
        assert job.sample_bytes == result.attachments[0].data
        # ...and once the author opts out, neither result can be used, by anyone.
        await refusal(w, await w.discord.slash("optout", user_id=author))
        for message in (result, again):
            for user in (reuser, requester):
                text = await refused_at_once(w, message.id, user)
                assert "asked not to have their voice cloned" in text
        assert w.segmind.count("submit") == 2


async def test_a_speak_result_reused_as_a_clip_belongs_to_whoever_attached_the_clip(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        interaction = await w.speak("my own voice")
        result = await w.answered(interaction)
        await w.job_ended(interaction)
        await refusal(w, await w.discord.slash("optout"))
        text = await refused_at_once(w, result.id, w.discord.add_user("reuser"))
        assert "asked not to have their voice cloned" in text
        assert w.segmind.count("submit") == 1


async def test_a_result_posted_in_the_channel_is_found_by_its_delivery(tmp_path: Path) -> None:
    async with world(tmp_path, {"token_lifetime": 2.0}) as w:
        w.segmind.script_jobs(JobScript(statuses=("PROCESSING",) * 150 + ("COMPLETED",)))
        interaction = await w.speak("outlives the token")

        def posted_files() -> list[FakeMessage]:
            return [m for m in w.discord.channel_messages(w.discord.channel_id) if m.attachments]

        await w.discord.wait_for(lambda: bool(posted_files()), 15)
        await w.job_ended(interaction)  # its delivery is recorded
        [posted] = posted_files()
        assert posted.webhook_id is None  # a channel message of the bot, not the interaction's
        await refusal(w, await w.discord.slash("optout"))
        text = await refused_at_once(w, posted.id, w.discord.add_user("reuser"))
        assert "asked not to have their voice cloned" in text


def forget_whose_voice(data_dir: Path) -> dict[str, str]:
    """As a version before schema 5 left its jobs: no voice owner recorded."""
    with contextlib.closing(sqlite3.connect(data_dir / "jobs.sqlite3")) as db, db:
        db.execute("UPDATE jobs SET voice_owner_id = NULL")
    return {}


def purge_at_start(data_dir: Path) -> dict[str, str]:
    """A retention so short that the job's record is purged when the bot starts."""
    return {"JOB_RETENTION_DAYS": "0.00000001"}  # about 1 ms


@pytest.mark.parametrize("forget", [purge_at_start, forget_whose_voice])
async def test_a_result_whose_voice_owner_is_unknown_is_refused(
    tmp_path: Path, forget: Callable[[Path], dict[str, str]]
) -> None:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        with discord.patch_discord_py():
            config = bot_settings(tmp_path, segmind, discord)
            async with running_bot(discord, config) as bot:
                w = World(discord, segmind, bot, config)
                interaction = await w.speak("soon forgotten")
                result = await w.answered(interaction)
                await w.job_ended(interaction)
            config = bot_settings(tmp_path, segmind, discord, **forget(tmp_path))
            async with running_bot(discord, config) as bot:
                w = World(discord, segmind, bot, config)
                recovery = [t for t in bot.owned_tasks if t.get_name() == "recover-jobs"]
                if recovery:  # (or it has already purged and ended)
                    await asyncio.wait(recovery, timeout=10)
                text = await refused_at_once(w, result.id, discord.user_id)
                assert "I can't tell whose voice that clip is" in text
                assert segmind.count("submit") == 1


async def test_a_webhook_message_is_refused_as_nobodys_voice(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        proxied = await w.discord.webhook_message(name="Proxy of someone", attachments=[w.clip()])
        text = await refused_at_once(w, proxied.id, w.discord.user_id)
        assert "posted through a webhook" in text
        assert w.segmind.count("submit") == 0


async def test_consent_prompt_times_out_and_gives_the_place_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world(tmp_path, REQUIRE_CONSENT="true", USER_MAX_IN_FLIGHT="1") as w:
        # The consent flow's own module (loaded with the speak extension).
        monkeypatch.setattr(sys.modules["cogs.speak._consent"], "CONSENT_TIMEOUT", 0.2)
        prompt = await message_of(w, await w.speak("hello"))
        await w.discord.wait_for(lambda: prompt.content.startswith("⌛ No answer"))
        assert custom_ids(prompt) == []
        # Its place was given back: the member can ask again.
        second = await message_of(w, await w.speak("hello"))
        assert "your own" in second.content
        assert w.segmind.count("submit") == 0


async def test_consent_yes_after_a_restart_records_consent_and_starts_nothing(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        with discord.patch_discord_py():
            config = bot_settings(
                tmp_path, segmind, discord, REQUIRE_CONSENT="true", USER_MAX_IN_FLIGHT="1"
            )
            async with running_bot(discord, config) as bot:
                w = World(discord, segmind, bot, config)
                asked = await w.speak("hello")
                prompt = await message_of(w, asked)
                assert "your own" in prompt.content
            # The bot restarted while the prompt was shown; the member answers now.
            async with running_bot(discord, config) as bot:
                w = World(discord, segmind, bot, config)
                await discord.click(prompt.id, f"vc:consent:yes:{asked.id}")
                await discord.wait_for(lambda: "has expired" in prompt.content)
                assert custom_ids(prompt) == []
                assert segmind.count("submit") == 0
                # The answer counts, and the expired request holds no place (in flight: 1).
                again = await w.speak("hello again")
                assert not (await message_of(w, again)).ephemeral  # no second prompt
                assert (await w.answered(again)).attachments
                await w.job_ended(again)
            # The consent was stored, not only remembered.
            async with running_bot(discord, config) as bot:
                w = World(discord, segmind, bot, config)
                later = await w.speak("and later")
                assert not (await message_of(w, later)).ephemeral
                assert (await w.answered(later)).attachments
                assert segmind.count("submit") == 2
