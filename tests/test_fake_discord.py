"""Proves the Discord fake (tests/fakes/discord/) against the real discord.py 2.7.1 client.

The bot here is a small stand-in defined in this file, not the product: each command takes one
interaction path (defer + edit with a file, late answer, double answer, expired token,
oversized upload, autocomplete, buttons, modals, permission-gated and guild-only commands,
message and user context menus, ephemeral buttons answered in public) so that product tests
can rely on the fake.
Synchronisation is by events and `FakeDiscord.wait_for`; the only waits on the clock are the
two tests whose subject is a deadline lapsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from discord.http import Route

from tests.fakes.discord import (
    ADMINISTRATOR,
    CHAT_INPUT,
    CONNECT,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_MEMBER_PERMISSIONS,
    EPHEMERAL,
    FAKE_TOKEN,
    GUILD_STAGE_VOICE,
    GUILD_VOICE,
    INTENT_GUILD_VOICE_STATES,
    IS_VOICE_MESSAGE,
    MANAGE_GUILD,
    MESSAGE_COMMAND,
    MUTE_MEMBERS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    SEND_VOICE_MESSAGES,
    USE_APPLICATION_COMMANDS,
    USER_COMMAND,
    VIEW_CHANNEL,
    FakeDiscord,
)

SOUNDS = ["alpha", "bravo", "charlie"]
Interaction = discord.Interaction[commands.Bot]


class RecordingTree(app_commands.CommandTree[commands.Bot]):
    """Hands command errors to the test instead of only logging them."""

    async def on_error(self, interaction: Interaction, error: app_commands.AppCommandError) -> None:
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        _bot(interaction).errors.put_nowait(original)


class EchoBot(commands.Bot):
    """A tiny bot with one slash command per interaction path the fake must support."""

    def __init__(self) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=0.05,  # the fake sends every GUILD_CREATE right after READY
            tree_cls=RecordingTree,
        )
        self.ready = asyncio.Event()
        self.release = asyncio.Event()  # commands that must wait block on this
        self.errors: asyncio.Queue[BaseException] = asyncio.Queue()
        self.saw_expired: list[bool] = []
        self.finished: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.seen: dict[str, Any] = {}  # what callbacks observed, for the test to check

    async def setup_hook(self) -> None:
        own: list[app_commands.Command[Any, ..., None]] = [
            echo,
            think,
            wait,
            later,
            big,
            pick,
            panel,
            ask,
            ping,
            purge,
            local,
            wizard,
        ]
        for command in own:
            self.tree.add_command(command)
        self.tree.add_command(config)
        for menu in (clone_voice, label_clip, high_five):
            self.tree.add_command(menu)

    async def on_ready(self) -> None:
        self.ready.set()

    async def on_app_command_completion(
        self, interaction: Interaction, command: app_commands.Command[Any, ..., Any]
    ) -> None:
        self.finished[command.name].set()

    async def next_error(self) -> BaseException:
        return await asyncio.wait_for(self.errors.get(), timeout=5)

    async def wait_finished(self, command: str) -> None:
        """Until the command returned: only then has discord.py registered its view or modal."""
        await asyncio.wait_for(self.finished[command].wait(), timeout=5)


def _bot(interaction: Interaction) -> EchoBot:
    return cast(EchoBot, interaction.client)


@app_commands.command(description="Echo text and a clip back")
async def echo(interaction: Interaction, text: str, clip: discord.Attachment) -> None:
    await interaction.response.defer(thinking=True)
    data = await clip.read()
    await interaction.edit_original_response(
        content=f"{text} <@{interaction.user.id}>",
        attachments=[discord.File(io.BytesIO(data), filename=clip.filename)],
    )
    await interaction.followup.send("done", ephemeral=True)


@app_commands.command(description="Thinks privately, then answers with a follow-up")
async def think(interaction: Interaction) -> None:
    await interaction.response.defer(thinking=True, ephemeral=True)
    await interaction.followup.send("thought")


@app_commands.command(description="Answers only once released")
async def wait(interaction: Interaction) -> None:
    await _bot(interaction).release.wait()
    await interaction.response.send_message("late")


@app_commands.command(description="Defers, then edits once released")
async def later(interaction: Interaction) -> None:
    await interaction.response.defer()
    await _bot(interaction).release.wait()
    _bot(interaction).saw_expired.append(interaction.is_expired())
    await interaction.edit_original_response(content="too late")


@app_commands.command(description="Uploads one byte more than allowed")
async def big(interaction: Interaction) -> None:
    await interaction.response.defer()
    payload = io.BytesIO(b"x" * (interaction.filesize_limit + 1))
    await interaction.edit_original_response(attachments=[discord.File(payload, "big.bin")])


@app_commands.command(description="Pick a sound")
async def pick(interaction: Interaction, sound: str) -> None:
    await interaction.response.send_message(f"picked {sound}")


@pick.autocomplete("sound")
async def pick_sound(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=s.title(), value=s) for s in SOUNDS if current in s]


class Panel(discord.ui.View):
    @discord.ui.button(label="OK", custom_id="panel:ok")
    async def ok(self, interaction: Interaction, button: discord.ui.Button[Panel]) -> None:
        await interaction.response.edit_message(
            content=f"clicked by {interaction.user.id}", view=None
        )


@app_commands.command(description="Shows a button")
async def panel(interaction: Interaction) -> None:
    await interaction.response.send_message("Press OK", view=Panel())


class NameModal(discord.ui.Modal, title="Who are you?"):
    def __init__(self) -> None:
        super().__init__()
        self.name_input: discord.ui.TextInput[NameModal] = discord.ui.TextInput(custom_id="name")
        self.add_item(discord.ui.Label(text="Name", component=self.name_input))

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.send_message(f"hello {self.name_input.value}", ephemeral=True)


@app_commands.command(description="Asks for a name")
async def ask(interaction: Interaction) -> None:
    await interaction.response.send_modal(NameModal())


@app_commands.command(description="Pong")
async def ping(interaction: Interaction) -> None:
    await interaction.response.send_message("pong")


@app_commands.command(description="Administrators only")
@app_commands.default_permissions()  # "0"
async def purge(interaction: Interaction) -> None:
    await interaction.response.send_message("purged")


config = app_commands.Group(
    name="config",
    description="Server settings",
    default_permissions=discord.Permissions(manage_guild=True),
)


@config.command(description="Show what Discord says about the caller")
async def show(interaction: Interaction, key: str | None = None) -> None:
    member = interaction.user
    assert isinstance(member, discord.Member)
    roles = ",".join(sorted(r.name for r in member.roles if not r.is_default()))
    await interaction.response.send_message(
        f"{roles} manage_guild={interaction.permissions.manage_guild}"
    )


@show.autocomplete("key")
async def show_key(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name="language", value="language")]


@app_commands.command(description="Only in servers")
@app_commands.guild_only()
async def local(interaction: Interaction) -> None:
    await interaction.response.send_message("here")


@app_commands.context_menu(name="Clone voice")
async def clone_voice(interaction: Interaction, message: discord.Message) -> None:
    [clip] = message.attachments
    data = await clip.read()
    await interaction.response.send_message(
        f"{message.author.id} {clip.filename} {len(data)} voice={message.flags.voice}",
        ephemeral=True,
    )


class LabelModal(discord.ui.Modal, title="Label this clip"):
    def __init__(self, target: discord.Message) -> None:
        super().__init__()
        self.target = target
        self.label_input: discord.ui.TextInput[LabelModal] = discord.ui.TextInput(custom_id="label")
        self.add_item(discord.ui.Label(text="Label", component=self.label_input))

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send(f"{self.target.id} is {self.label_input.value}")


@app_commands.context_menu(name="Label clip")
async def label_clip(interaction: Interaction, message: discord.Message) -> None:
    await interaction.response.send_modal(LabelModal(message))


@app_commands.context_menu(name="High five")
async def high_five(interaction: Interaction, member: discord.Member) -> None:
    await interaction.response.send_message(f"high five <@{member.id}>")


class Wizard(discord.ui.View):
    """An ephemeral panel whose button answers in public and tidies the panel up."""

    def __init__(self, opener: Interaction) -> None:
        super().__init__(timeout=60)
        self.opener = opener

    @discord.ui.button(label="Go", custom_id="wizard:go")
    async def go(self, interaction: Interaction, button: discord.ui.Button[Wizard]) -> None:
        bot = _bot(interaction)
        assert interaction.message is not None
        bot.seen["clicked message"] = (interaction.message.id, interaction.message.flags.ephemeral)
        await interaction.response.defer(thinking=True)  # type 5, public "thinking…"
        await self.opener.edit_original_response(content="Working…", view=None)
        await interaction.edit_original_response(content="Done")
        thinking = await interaction.original_response()
        await interaction.followup.edit_message(thinking.id, content="Done!")
        bot.finished["wizard:go"].set()


@app_commands.command(description="Shows a private panel")
async def wizard(interaction: Interaction) -> None:
    await interaction.response.send_message("Ready?", view=Wizard(interaction), ephemeral=True)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        with fake.patch_discord_py():
            yield fake


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[EchoBot]:
    bot = EchoBot()
    runner = asyncio.create_task(bot.start(fake.token))
    ready = asyncio.create_task(bot.ready.wait())
    await asyncio.wait({runner, ready}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    try:
        if not ready.done():
            ready.cancel()
            raise RuntimeError("bot did not become ready") from (
                runner.exception() if runner.done() else None
            )
        yield bot
    finally:
        bot.release.set()
        await bot.close()
        await runner


@pytest.fixture
async def synced(bot: EchoBot) -> EchoBot:
    await bot.tree.sync()
    return bot


async def test_login_identify_and_ready(bot: EchoBot, fake: FakeDiscord) -> None:
    assert bot.user is not None
    assert bot.user.id == fake.bot_user_id
    assert bot.application_id == fake.application_id
    guild = bot.get_guild(fake.guild_id)
    assert guild is not None
    assert guild.get_channel(fake.channel_id) is not None
    assert guild.me.id == fake.bot_user_id
    [me] = fake.requests_to("GET", r"^/users/@me$")
    assert me.authorization == f"Bot {FAKE_TOKEN}"
    assert fake.requests_to("GET", r"^/oauth2/applications/@me$")
    identify = fake.identify_payload
    assert identify is not None
    assert identify["token"] == FAKE_TOKEN
    assert identify["intents"] == discord.Intents.default().value
    assert fake.gateway_connections[0].query["compress"] == "zlib-stream"


async def test_wrong_token_is_a_login_failure(fake: FakeDiscord) -> None:
    bot = EchoBot()
    with pytest.raises(discord.LoginFailure):
        await bot.login("not-the-token")
    await bot.close()


async def test_sync_globally_and_to_a_guild(bot: EchoBot, fake: FakeDiscord) -> None:
    synced = await bot.tree.sync()
    names = {"echo", "think", "wait", "later", "big", "pick", "panel", "ask", "ping"}
    names |= {"purge", "config", "local", "wizard", "Clone voice", "Label clip", "High five"}
    assert {c.name for c in synced} == names == {c["name"] for c in fake.commands()}
    echo_schema = next(c for c in fake.commands() if c["name"] == "echo")
    assert [(o["name"], o["type"]) for o in echo_schema["options"]] == [("text", 3), ("clip", 11)]

    guild = discord.Object(fake.guild_id)
    bot.tree.copy_global_to(guild=guild)
    await bot.tree.sync(guild=guild)
    assert {c["name"] for c in fake.commands(fake.guild_id)} == names
    assert fake.command_puts == 2

    ids = {c["id"] for c in fake.commands()}
    await bot.tree.sync()
    assert {c["id"] for c in fake.commands()} == ids
    assert fake.command_creates_today() == len(names)  # re-syncing the same names is free


async def test_daily_command_create_limit(bot: EchoBot, fake: FakeDiscord) -> None:
    fake.command_create_limit = 3
    with pytest.raises(discord.HTTPException) as info:
        await bot.tree.sync()
    assert (info.value.status, info.value.code) == (429, 30034)
    assert fake.commands() == []


async def test_slash_with_attachment_round_trip(synced: EchoBot, fake: FakeDiscord) -> None:
    sample = b"OggS" + bytes(range(256))
    clip = fake.add_attachment("voice sample.ogg", sample, "audio/ogg")
    interaction = await fake.slash("echo", {"text": "hello", "clip": clip})
    await fake.wait_for(lambda: bool(interaction.followups))

    assert [c["type"] for c in interaction.callbacks] == [5]
    assert fake.requests_to("GET", r"^/attachments/")  # the bot fetched the clip from the CDN
    original = interaction.original
    assert original is not None
    assert not original.loading
    assert original.content == f"hello <@{fake.user_id}>"
    [uploaded] = original.attachments
    assert (uploaded.filename, uploaded.data) == ("voice_sample.ogg", sample)
    assert original.allowed_mentions == {"parse": []}  # AllowedMentions.none()
    assert original.mentions == []
    [followup] = interaction.followups
    assert followup.content == "done"
    assert followup.ephemeral

    async with aiohttp.ClientSession() as session, session.get(uploaded.url) as response:
        assert response.status == 200
        assert await response.read() == sample


async def test_followup_after_bare_defer_fills_the_thinking_message(
    synced: EchoBot, fake: FakeDiscord
) -> None:
    interaction = await fake.slash("think")
    await fake.wait_for(lambda: bool(interaction.followups))
    assert interaction.followups == [interaction.original]  # Discord's deprecated behaviour
    assert interaction.original is not None
    assert interaction.original.content == "thought"
    assert interaction.original.ephemeral  # fixed at defer time
    assert fake.channel_messages(fake.channel_id) == []


async def test_cdn_urls_are_signed_and_expire(fake: FakeDiscord) -> None:
    clip = fake.add_attachment("clip.mp3", b"ID3fake", "audio/mpeg")
    async with aiohttp.ClientSession() as session:
        async with session.get(clip["url"]) as response:
            assert response.status == 200
            assert response.content_type == "audio/mpeg"
            assert await response.read() == b"ID3fake"
        async with session.get(clip["url"].replace("hm=", "hm=00")) as forged:
            assert forged.status == 404
        fake.expire_attachment(int(clip["id"]))
        async with session.get(clip["url"]) as expired:
            assert expired.status == 404


async def test_voice_message_rules(bot: EchoBot, fake: FakeDiscord) -> None:
    """discord.py has no voice-message API; the product posts them through this raw route."""
    voice = fake.add_channel("voice-notes")  # the invite asks for Send Voice Messages
    muted = fake.add_channel(
        "no-voice-notes", bot_permissions=DEFAULT_BOT_PERMISSIONS & ~SEND_VOICE_MESSAGES
    )
    route = Route("POST", "/channels/{channel_id}/messages", channel_id=voice)
    meta = {"id": 0, "filename": "voice-message.ogg", "duration_secs": 1.5, "waveform": "AAAA"}

    def form(payload: dict[str, Any]) -> list[dict[str, Any]]:
        upload = {"name": "files[0]", "value": b"OggS", "filename": "voice-message.ogg"}
        return [{"name": "payload_json", "value": json.dumps(payload)}, upload]

    sent = await bot.http.request(route, form=form({"flags": 8192, "attachments": [meta]}))
    stored = fake.message(int(sent["id"]))
    [clip] = stored.attachments
    assert (clip.content_type, clip.duration_secs, clip.waveform) == ("audio/ogg", 1.5, "AAAA")

    rejected: list[tuple[dict[str, Any], int]] = [
        ({"flags": 8192, "content": "hi", "attachments": [meta]}, 50159),
        ({"flags": 8192}, 50161),
    ]
    for payload, code in rejected:
        with pytest.raises(discord.HTTPException) as info:
            await bot.http.request(route, form=form(payload))
        assert info.value.code == code
    elsewhere = Route("POST", "/channels/{channel_id}/messages", channel_id=muted)
    with pytest.raises(discord.HTTPException) as info:
        await bot.http.request(elsewhere, form=form({"flags": 8192, "attachments": [meta]}))
    assert info.value.code == 50173  # without Send Voice Messages there
    edit = Route(
        "PATCH",
        "/channels/{channel_id}/messages/{message_id}",
        channel_id=voice,
        message_id=stored.id,
    )
    with pytest.raises(discord.HTTPException) as info:
        await bot.http.request(edit, json={"content": "changed"})
    assert info.value.code == 50162


async def test_answer_after_deadline_is_unknown_interaction(
    synced: EchoBot, fake: FakeDiscord
) -> None:
    fake.callback_deadline = 0.2
    interaction = await fake.slash("wait")
    await fake.wait_until(interaction.deadline)  # the subject here is the deadline lapsing
    synced.release.set()
    error = await synced.next_error()
    assert isinstance(error, discord.NotFound)
    assert error.code == 10062
    assert interaction.acknowledged_at is None


async def test_second_initial_answer_is_rejected(synced: EchoBot, fake: FakeDiscord) -> None:
    interaction = await fake.slash("ping")
    await fake.wait_for(lambda: interaction.acknowledged_at is not None)
    await fake.redeliver(interaction)  # like a second bot instance answering the same event
    error = await synced.next_error()
    assert isinstance(error, discord.HTTPException)
    assert (error.status, error.code) == (400, 40060)
    assert len(interaction.callbacks) == 1
    assert [m.content for m in fake.channel_messages(fake.channel_id)] == ["pong"]


async def test_expired_token_is_invalid_webhook_token(synced: EchoBot, fake: FakeDiscord) -> None:
    fake.token_lifetime = 0.3
    interaction = await fake.slash("later")
    await fake.wait_for(lambda: interaction.acknowledged_at is not None)
    await fake.wait_until(interaction.expires_at)  # the subject here is the token lapsing
    synced.release.set()
    error = await synced.next_error()
    assert isinstance(error, discord.HTTPException)
    assert (error.status, error.code) == (401, 50027)
    assert synced.saw_expired == [True]  # discord.py's own clock agrees with the fake


async def test_upload_over_interaction_limit(synced: EchoBot, fake: FakeDiscord) -> None:
    fake.attachment_size_limit = 1024
    interaction = await fake.slash("big")
    error = await synced.next_error()
    assert isinstance(error, discord.HTTPException)
    assert (error.status, error.code) == (413, 40005)
    assert interaction.original is not None
    assert interaction.original.loading
    assert interaction.edits == []


async def test_channel_messages_permissions_replies_and_limits(
    bot: EchoBot, fake: FakeDiscord
) -> None:
    read_only = await bot.fetch_channel(
        fake.add_channel("read-only", bot_permissions=VIEW_CHANNEL | READ_MESSAGE_HISTORY)
    )
    assert isinstance(read_only, discord.TextChannel)
    with pytest.raises(discord.Forbidden) as forbidden:
        await read_only.send("hi")
    assert forbidden.value.code == 50013

    general = bot.get_channel(fake.channel_id)
    assert isinstance(general, discord.TextChannel)
    said = await fake.user_message(f"<@{fake.bot_user_id}> speak")
    reply = await (await general.fetch_message(said.id)).reply("on it")
    stored = fake.message(reply.id)
    assert stored.message_reference is not None
    assert stored.message_reference["message_id"] == str(said.id)
    assert stored.mentions == []  # AllowedMentions.none() does not ping the replied-to user

    fake.channel(fake.channel_id).upload_limit = 8
    with pytest.raises(discord.HTTPException) as too_large:
        await general.send(file=discord.File(io.BytesIO(b"123456789"), "nine.bin"))
    assert (too_large.value.status, too_large.value.code) == (413, 40005)


async def test_direct_messages_and_blocked_users(bot: EchoBot, fake: FakeDiscord) -> None:
    hermit = await bot.fetch_user(fake.add_user("hermit", blocks_dms=True))
    with pytest.raises(discord.Forbidden) as blocked:
        await hermit.send("hi")
    assert blocked.value.code == 50007

    tester = await bot.fetch_user(fake.user_id)
    await tester.send("hello")
    assert [m.content for m in fake.dm_messages(fake.user_id)] == ["hello"]


async def test_autocomplete_returns_choices(synced: EchoBot, fake: FakeDiscord) -> None:
    interaction = await fake.autocomplete("pick", "sound", "ar")
    await fake.wait_for(lambda: interaction.autocomplete_choices is not None)
    assert interaction.autocomplete_choices == [{"name": "Charlie", "value": "charlie"}]


async def test_button_click_updates_the_message(synced: EchoBot, fake: FakeDiscord) -> None:
    shown = await fake.slash("panel")
    await synced.wait_finished("panel")
    assert shown.original is not None
    message = shown.original
    click = await fake.click(message.id, "panel:ok")
    await fake.wait_for(lambda: bool(click.callbacks))
    assert click.callbacks[0]["type"] == 7
    assert message.content == f"clicked by {fake.user_id}"
    assert message.components == []
    assert message.history[0]["content"] == "Press OK"


async def test_modal_submit(synced: EchoBot, fake: FakeDiscord) -> None:
    opened = await fake.slash("ask")
    await synced.wait_finished("ask")
    submitted = await fake.submit_modal(opened, {"name": "Ada"})
    await fake.wait_for(lambda: submitted.original is not None)
    assert submitted.original is not None
    assert submitted.original.content == "hello Ada"
    assert submitted.original.ephemeral


async def test_gateway_reconnect_resumes_session(synced: EchoBot, fake: FakeDiscord) -> None:
    await fake.reconnect_gateway()
    await fake.wait_for(lambda: len(fake.gateway_connections) == 2 and fake.connected)
    resumed = fake.gateway_connections[1]
    assert resumed.path == "/gateway/resume"
    assert any(frame["op"] == 6 for frame in resumed.received)

    interaction = await fake.slash("ping")
    await fake.wait_for(lambda: interaction.original is not None)


SLASH_NAMES = {"echo", "think", "wait", "later", "big", "pick", "panel", "ask", "ping", "wizard"}


async def test_default_member_permissions_decide_who_sees_a_command(
    synced: EchoBot, fake: FakeDiscord
) -> None:
    schema = {c["name"]: c for c in fake.commands()}
    assert schema["purge"]["default_member_permissions"] == "0"
    assert schema["config"]["default_member_permissions"] == str(MANAGE_GUILD)
    assert schema["ping"]["default_member_permissions"] is None

    mod = fake.add_user("mod", permissions=DEFAULT_MEMBER_PERMISSIONS | MANAGE_GUILD)
    admin = fake.add_user("admin", permissions=ADMINISTRATOR)
    muted = fake.add_user("muted", permissions=DEFAULT_MEMBER_PERMISSIONS & ~(1 << 31))
    everyone = SLASH_NAMES | {"local"}
    assert fake.visible_commands(fake.user_id, kind=CHAT_INPUT) == sorted(everyone)
    assert fake.visible_commands(mod, kind=CHAT_INPUT) == sorted(everyone | {"config"})
    for boss in (admin, fake.owner_id):
        assert fake.visible_commands(boss, kind=CHAT_INPUT) == sorted(
            everyone | {"config", "purge"}
        )
    assert fake.visible_commands(muted) == []  # no Use Application Commands: nothing at all
    assert set(fake.visible_commands(fake.user_id)) == everyone | {
        "Clone voice",
        "Label clip",
        "High five",
    }

    with pytest.raises(PermissionError, match=r"cannot see /purge"):
        await fake.slash("purge")
    with pytest.raises(PermissionError, match=r"cannot see /config"):  # subcommands inherit
        await fake.slash("config", subcommand="show")
    with pytest.raises(PermissionError, match=r"cannot see /config"):
        await fake.autocomplete("config", "key", "la", subcommand="show")
    with pytest.raises(PermissionError, match=r"Use Application Commands"):
        await fake.slash("ping", user_id=muted)
    assert fake.requests_to("POST", r"/callback$") == []  # nothing reached the bot

    choices = await fake.autocomplete("config", "key", "la", subcommand="show", user_id=mod)
    purged = await fake.slash("purge", user_id=admin)
    await fake.wait_for(
        lambda: purged.original is not None and choices.autocomplete_choices is not None
    )
    assert choices.autocomplete_choices == [{"name": "language", "value": "language"}]
    assert purged.original is not None
    assert purged.original.content == "purged"


async def test_guild_only_commands_are_not_offered_in_dms(
    synced: EchoBot, fake: FakeDiscord
) -> None:
    schema = next(c for c in fake.commands() if c["name"] == "local")
    assert (schema["contexts"], schema["dm_permission"]) == ([0], False)
    dm = fake.dm_channel(fake.user_id)
    # No guild permissions in a DM: default_member_permissions gates nothing there.
    assert fake.visible_commands(fake.user_id, channel_id=dm, kind=CHAT_INPUT) == sorted(
        SLASH_NAMES | {"config", "purge"}
    )
    with pytest.raises(PermissionError, match=r"exclude DMs"):
        await fake.slash("local", channel_id=dm)

    pong = await fake.slash("ping", channel_id=dm)
    await fake.wait_for(lambda: pong.original is not None)
    assert pong.payload["context"] == 1
    assert "member" not in pong.payload
    assert [m.content for m in fake.dm_messages(fake.user_id)] == ["pong"]


async def test_roles_reach_interactions_and_discord_py(synced: EchoBot, fake: FakeDiscord) -> None:
    helper = fake.add_user("helper")
    role = fake.add_role("Moderators", permissions=MANAGE_GUILD)
    with pytest.raises(PermissionError):
        await fake.slash("config", subcommand="show", user_id=helper)
    fake.grant_role(helper, role)
    assert fake.permissions(helper) == DEFAULT_MEMBER_PERMISSIONS | MANAGE_GUILD

    shown = await fake.slash("config", subcommand="show", user_id=helper)
    member = shown.payload["member"]
    assert str(role) in member["roles"]
    assert int(member["permissions"]) == DEFAULT_MEMBER_PERMISSIONS | MANAGE_GUILD
    assert int(shown.payload["app_permissions"]) == DEFAULT_BOT_PERMISSIONS
    assert int(shown.payload["channel"]["permissions"]) == int(member["permissions"])
    await fake.wait_for(lambda: shown.original is not None)
    assert shown.original is not None
    # GUILD_ROLE_CREATE reached discord.py before the interaction, so the role resolves.
    assert shown.original.content == "Members,Moderators manage_guild=True"
    guild = synced.get_guild(fake.guild_id)
    assert guild is not None
    assert guild.get_role(role) is not None

    fake.revoke_role(helper, role)
    assert "config" not in fake.visible_commands(helper)
    # A role made by add_role is never handed out by add_user's permission roles.
    same_bits = fake.add_user("lookalike", permissions=MANAGE_GUILD)
    assert role not in fake.guild(fake.guild_id).members[same_bits]


async def test_message_command_on_a_users_voice_message(synced: EchoBot, fake: FakeDiscord) -> None:
    sample = b"OggS" + bytes(100)
    clip = fake.add_attachment(
        "voice-message.ogg", sample, "audio/ogg", duration_secs=2.5, waveform="AAAA"
    )
    posted = await fake.user_message(attachments=[clip], flags=IS_VOICE_MESSAGE)
    assert fake.channel_messages(fake.channel_id) == [posted]
    [stored] = posted.attachments
    assert not stored.ephemeral

    interaction = await fake.context_menu("Clone voice", posted.id)
    data = interaction.data
    assert (data["type"], data["target_id"], data["name"]) == (3, str(posted.id), "Clone voice")
    target = data["resolved"]["messages"][str(posted.id)]
    assert target["author"]["id"] == str(fake.user_id)
    assert target["flags"] == IS_VOICE_MESSAGE
    [attachment] = target["attachments"]
    assert (attachment["duration_secs"], attachment["waveform"]) == (2.5, "AAAA")
    await fake.wait_for(lambda: interaction.original is not None)
    answer = interaction.original
    assert answer is not None
    assert answer.content == f"{fake.user_id} voice-message.ogg {len(sample)} voice=True"
    assert answer.type == 23  # CONTEXT_MENU_COMMAND
    assert answer.interaction_metadata is not None
    assert answer.interaction_metadata["target_message_id"] == str(posted.id)

    # Lookup is by (name, type): a message command is no slash command and vice versa.
    with pytest.raises(LookupError):
        await fake.slash("Clone voice")
    with pytest.raises(LookupError):
        await fake.context_menu("ping", posted.id)
    assert "Clone voice" in fake.visible_commands(fake.user_id, kind=MESSAGE_COMMAND)
    with pytest.raises(ValueError, match="additional content"):
        await fake.user_message("and words", attachments=[clip], flags=IS_VOICE_MESSAGE)


async def test_user_command(synced: EchoBot, fake: FakeDiscord) -> None:
    friend = fake.add_user("friend")
    interaction = await fake.user_context_menu("High five", friend)
    data = interaction.data
    assert (data["type"], data["target_id"]) == (2, str(friend))
    assert data["resolved"]["users"][str(friend)]["username"] == "friend"
    assert int(data["resolved"]["members"][str(friend)]["permissions"]) == (
        DEFAULT_MEMBER_PERMISSIONS
    )
    await fake.wait_for(lambda: interaction.original is not None)
    assert interaction.original is not None
    assert interaction.original.content == f"high five <@{friend}>"
    assert fake.visible_commands(fake.user_id, kind=USER_COMMAND) == ["High five"]

    lurker = fake.add_user("lurker", permissions=VIEW_CHANNEL | USE_APPLICATION_COMMANDS)
    assert not fake.permissions(lurker) & SEND_MESSAGES
    with pytest.raises(PermissionError, match="Permission Denied"):
        await fake.user_context_menu("High five", friend, user_id=lurker)


async def test_modal_opened_from_a_message_command(synced: EchoBot, fake: FakeDiscord) -> None:
    clip = fake.add_attachment("hello.mp3", b"ID3", "audio/mpeg")
    posted = await fake.user_message("my clip", attachments=[clip])
    opened = await fake.context_menu("Label clip", posted.id)
    await synced.wait_finished("Label clip")
    assert opened.modal is not None
    assert opened.modal["title"] == "Label this clip"

    submitted = await fake.submit_modal(opened, {"label": "greeting"})
    await fake.wait_for(lambda: bool(submitted.followups))
    assert "message" not in submitted.payload  # a modal from a command comes from no message
    assert [c["type"] for c in submitted.callbacks] == [5]
    assert submitted.original is not None
    assert submitted.original.content == f"{posted.id} is greeting"
    assert [m.content for m in fake.channel_messages(fake.channel_id)] == [
        "my clip",
        f"{posted.id} is greeting",
    ]


async def test_ephemeral_buttons_answered_in_public(synced: EchoBot, fake: FakeDiscord) -> None:
    opened = await fake.slash("wizard")
    await synced.wait_finished("wizard")
    panel = opened.original
    assert panel is not None
    assert panel.ephemeral
    assert fake.channel_messages(fake.channel_id) == []

    intruder = fake.add_user("intruder")
    with pytest.raises(PermissionError, match="ephemeral"):
        await fake.click(panel.id, "wizard:go", user_id=intruder)

    click = await fake.click(panel.id, "wizard:go")
    assert click.payload["message"]["flags"] & EPHEMERAL
    await synced.wait_finished("wizard:go")
    assert synced.seen["clicked message"] == (panel.id, True)  # discord.py's interaction.message

    assert [c["type"] for c in click.callbacks] == [5]
    thinking = click.original
    assert thinking is not None
    assert thinking is not panel
    assert not thinking.ephemeral
    assert not thinking.loading
    assert thinking.content == "Done!"
    assert [h["content"] for h in thinking.history] == ["", "Done"]
    assert thinking.interaction_metadata is not None
    assert thinking.interaction_metadata["interacted_message_id"] == str(panel.id)
    assert fake.channel_messages(fake.channel_id) == [thinking]
    assert [e["message_id"] for e in click.edits] == [thinking.id, thinking.id]
    assert fake.requests_to("PATCH", rf"/{click.token}/messages/@original$")
    assert fake.requests_to("PATCH", rf"/{click.token}/messages/{thinking.id}$")

    # The panel itself was edited through the slash command's token.
    assert (panel.content, panel.components) == ("Working…", [])
    assert [e["message_id"] for e in opened.edits] == [panel.id]


async def test_expired_cdn_urls_refresh_but_deleted_attachments_stay_gone(
    bot: EchoBot, fake: FakeDiscord
) -> None:
    clip = fake.add_attachment("clip.mp3", b"ID3fake", "audio/mpeg")
    gone = fake.add_attachment("gone.mp3", b"ID3gone", "audio/mpeg")
    fake.expire_attachment(int(clip["id"]))
    fake.delete_attachment(int(gone["id"]))
    route = Route("POST", "/attachments/refresh-urls")
    answer = await bot.http.request(route, json={"attachment_urls": [clip["url"], gone["url"]]})
    [fresh, dead] = answer["refreshed_urls"]
    assert (fresh["original"], dead["original"]) == (clip["url"], gone["url"])
    assert fresh["refreshed"] != clip["url"]
    async with aiohttp.ClientSession() as session:
        async with session.get(clip["url"]) as expired:
            assert expired.status == 404  # the old URL stays expired
        async with session.get(fresh["refreshed"]) as response:
            assert response.status == 200
            assert await response.read() == b"ID3fake"
        async with session.get(dead["refreshed"]) as response:
            assert response.status == 404
    with pytest.raises(discord.HTTPException) as refused:
        await bot.http.request(route, json={})
    assert refused.value.status == 400


VoiceEvent = tuple[discord.Member, discord.VoiceState, discord.VoiceState]


@contextlib.asynccontextmanager
async def _voice_bot(fake: FakeDiscord) -> AsyncIterator[tuple[EchoBot, asyncio.Queue[VoiceEvent]]]:
    """EchoBot started on the world as built so far, with every `on_voice_state_update`."""
    bot = EchoBot()
    events: asyncio.Queue[VoiceEvent] = asyncio.Queue()

    async def record(
        member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        events.put_nowait((member, before, after))

    bot.add_listener(record, "on_voice_state_update")
    runner = asyncio.create_task(bot.start(fake.token))
    try:
        await asyncio.wait_for(bot.ready.wait(), timeout=5)
        yield bot, events
    finally:
        await bot.close()
        await runner


async def _next_voice_event(events: asyncio.Queue[VoiceEvent]) -> VoiceEvent:
    return await asyncio.wait_for(events.get(), timeout=5)


def _channel_id(state: discord.VoiceState) -> int | None:
    return None if state.channel is None else state.channel.id


async def test_voice_states_at_start_and_as_members_join_move_and_leave(
    fake: FakeDiscord,
) -> None:
    lounge = fake.add_channel("Lounge", kind=GUILD_VOICE)
    stage = fake.add_channel("Stage", kind=GUILD_STAGE_VOICE, user_limit=5)
    await fake.join_voice(fake.user_id, lounge)  # before the client connects: GUILD_CREATE
    other = fake.add_user("other")
    async with _voice_bot(fake) as (bot, events):
        assert fake.identify_payload is not None
        assert fake.identify_payload["intents"] & INTENT_GUILD_VOICE_STATES
        guild = bot.get_guild(fake.guild_id)
        assert guild is not None
        voice = guild.get_channel(lounge)
        assert isinstance(voice, discord.VoiceChannel)
        stage_channel = guild.get_channel(stage)
        assert isinstance(stage_channel, discord.StageChannel)
        assert stage_channel.user_limit == 5
        member = guild.get_member(fake.user_id)
        assert member is not None
        assert member.voice is not None
        assert member.voice.channel == voice
        assert set(voice.voice_states) == {fake.user_id}

        await fake.join_voice(other, lounge)
        joined, before, after = await _next_voice_event(events)
        assert (joined.id, _channel_id(before), _channel_id(after)) == (other, None, lounge)
        assert set(voice.voice_states) == {fake.user_id, other}

        await fake.move_voice(other, stage, self_mute=True)
        moved, before, after = await _next_voice_event(events)
        assert (moved.id, _channel_id(before), _channel_id(after)) == (other, lounge, stage)
        assert (after.self_mute, after.self_deaf) == (True, False)
        assert before.session_id == after.session_id  # one voice session, moved

        await fake.leave_voice(other)
        left, before, after = await _next_voice_event(events)
        assert (left.id, _channel_id(before), _channel_id(after)) == (other, stage, None)
        assert set(voice.voice_states) == {fake.user_id}
        assert fake.voice_channel_of(other) is None
        assert fake.voice_channel_of(fake.user_id) == lounge
        with pytest.raises(ValueError, match="not in a voice channel"):
            await fake.leave_voice(other)
        with pytest.raises(ValueError, match="not a voice or stage channel"):
            await fake.join_voice(other, fake.channel_id)  # a text channel


async def test_update_voice_state_is_recorded_and_echoed(fake: FakeDiscord) -> None:
    allowed = fake.add_channel("Lounge", kind=GUILD_VOICE, bot_permissions=VIEW_CHANNEL | CONNECT)
    refused = fake.add_channel("Closed", kind=GUILD_VOICE, bot_permissions=VIEW_CHANNEL)
    async with _voice_bot(fake) as (bot, events):
        guild = bot.get_guild(fake.guild_id)
        assert guild is not None
        await guild.change_voice_state(channel=guild.get_channel(refused), self_deaf=True)
        await guild.change_voice_state(channel=guild.get_channel(allowed), self_deaf=True)
        # Events keep their order: had the refused request been answered, it would come first.
        me, before, after = await _next_voice_event(events)
        assert me.id == fake.bot_user_id
        assert (_channel_id(before), _channel_id(after), after.self_deaf) == (None, allowed, True)
        assert guild.me.voice is not None
        assert guild.me.voice.channel == guild.get_channel(allowed)
        assert fake.voice_channel_of(fake.bot_user_id) == allowed
        assert fake.voice_state_requests == [
            {
                "guild_id": fake.guild_id,  # discord.py sends snowflakes as numbers
                "channel_id": channel,
                "self_mute": False,
                "self_deaf": True,
            }
            for channel in (refused, allowed)
        ]

        await guild.change_voice_state(channel=None)
        me, before, after = await _next_voice_event(events)
        assert (me.id, _channel_id(before), after.channel) == (fake.bot_user_id, allowed, None)
        assert fake.voice_state_requests[-1]["channel_id"] is None
        assert fake.voice_channel_of(fake.bot_user_id) is None


async def test_stage_audience_and_the_bot_unsuppressing_itself(fake: FakeDiscord) -> None:
    stage = fake.add_channel(
        "Stage", kind=GUILD_STAGE_VOICE, bot_permissions=VIEW_CHANNEL | CONNECT
    )
    async with _voice_bot(fake) as (bot, events):
        guild = bot.get_guild(fake.guild_id)
        assert guild is not None
        await fake.join_voice(fake.user_id, stage)
        _, _, after = await _next_voice_event(events)
        assert after.suppress  # joins the audience
        await guild.change_voice_state(channel=guild.get_channel(stage))
        me, _, after = await _next_voice_event(events)
        assert (me.id, after.suppress) == (fake.bot_user_id, True)

        with pytest.raises(discord.Forbidden):  # unsuppressing needs Mute Members
            await guild.me.edit(suppress=False)
        fake.channel(stage).bot_permissions = VIEW_CHANNEL | CONNECT | MUTE_MEMBERS
        await guild.me.edit(suppress=False)
        me, before, after = await _next_voice_event(events)
        assert (me.id, before.suppress, after.suppress) == (fake.bot_user_id, True, False)
        assert fake.guild(fake.guild_id).voice_states[fake.bot_user_id].suppress is False

        await guild.change_voice_state(channel=None)
        await _next_voice_event(events)
        with pytest.raises(discord.NotFound):  # not on the stage any more
            await bot.http.edit_my_voice_state(
                fake.guild_id, {"channel_id": stage, "suppress": False}
            )
