"""Loopback fake of the slice of Discord API v10 (REST, gateway, CDN) that discord.py 2.7.1 uses.

Why: the bot's behaviour under Discord's real rules (3 s acknowledgement deadline, 15 min
interaction tokens, upload limits, permissions, blocked DMs, daily command-create limit) can
only be tested end to end against something that enforces them. This fake is an aiohttp server
on 127.0.0.1 that the *real* discord.py client logs into, connects to, and answers
interactions against; tests drive users' actions (`slash`, `autocomplete`, `context_menu`,
`user_context_menu`, `click`, `submit_modal`, `user_message`) and inspect what the bot did
(`requests`, `channel_messages`, `FakeInteraction`), waiting on state changes with `wait_for`
rather than sleeping. Members get permissions through roles (`add_user(permissions=...)`,
`add_role`, `grant_role`); interactions carry `member.roles`, `member.permissions` and
`app_permissions` computed from them.

Voice: `add_channel(kind=GUILD_VOICE)` (or GUILD_STAGE_VOICE) makes a voice channel; members
`join_voice`, `move_voice` and `leave_voice`, dispatched as VOICE_STATE_UPDATE to clients with
the GUILD_VOICE_STATES intent, and GUILD_CREATE carries `voice_states`. The bot's Update Voice
State (gateway op 4) is recorded in `voice_state_requests` and answered with a
VOICE_STATE_UPDATE for the bot user, unless it lacks View Channel or Connect there (Discord
then stays silent). On a stage everyone joins suppressed; the bot unsuppresses itself with
`PATCH /guilds/{id}/voice-states/@me` (needs Mute Members). There is no voice server:
VOICE_SERVER_UPDATE is never sent, so discord.py's own `connect()` times out; tests inject
a connection and play audio through it.

Typical use::

    async with FakeDiscord() as fake:
        with fake.patch_discord_py():
            ...  # start a discord.py client with fake.token

Rules enforced (status/code): initial callback after `callback_deadline` 404/10062; a second
initial callback 400/40060; interaction-token webhook calls after `token_lifetime` 401/50027;
files over the interaction's `attachment_size_limit` or the channel's `upload_limit` 413/40005;
channel posts without View Channel 403/50001, without Send Messages (in Threads) or Attach
Files 403/50013; DMs to users with `blocks_dms` 403/50007; replies without Read Message
History 400/160002; empty messages 400/50006; over-long content 400/50035; voice-message
shape 400/50159-50161, edits 400/50162; more than `command_create_limit` new command names
per scope per UTC day 429/30034 (sent without `Via`, so discord.py raises at once instead of
sleeping until midnight as it would against real Discord); CDN URLs are signed and expire;
sharding (`FakeDiscord(shards=n)`: `GET /gateway/bot` recommends n, IDENTIFY with fewer
shards closes 4011 and a bad `shard` 4010, a guild's events go only to shard
(guild_id >> 22) % n, DMs to shard 0).
Like the Discord client, user actions refuse (PermissionError) what a user could not do:
commands hidden from them by `default_member_permissions` (null: everyone; "0": admins;
else every bit, which administrators and the owner always have), by `contexts` /
`dm_permission` (global commands) or for lack of Use Application Commands; clicking
someone else's ephemeral message.

Times: `FakeInteraction.dispatched_at`, `deadline`, `expires_at` and callback/edit times are
`time.monotonic()` values; message `created_at`/`edited_at` are wall-clock `time.time()`.

Layout: `_fake` puts `FakeDiscord` together (constructor, lifecycle, route table) from parts
that all build on `_state.FakeState` (the rules, the world's tables, lookups and waits):
`_payloads` (permissions, JSON shapes), on it `_messages` (the message store and its rules),
on that `_world` (world building), `_interactions` and `_actions` (what users do), and
`_rest` (HTTP plumbing, identity and guild routes) with `_rest_commands`,
`_rest_interactions`, `_rest_channels`, `_cdn` and `_voice` (voice states, op 4);
`_gateway` (the websocket) needs only `_payloads`. `_constants`, `_models` and `_records`
hold Discord's numbers, the world's dataclasses and the records of traffic.
"""

from tests.fakes.discord._constants import (
    ADMINISTRATOR,
    ATTACH_FILES,
    BOT_DM,
    CHAT_INPUT,
    CONNECT,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_MEMBER_PERMISSIONS,
    EMBED_LINKS,
    EPHEMERAL,
    FAKE_TOKEN,
    GUILD,
    GUILD_STAGE_VOICE,
    GUILD_VOICE,
    INTENT_GUILD_VOICE_STATES,
    IS_VOICE_MESSAGE,
    MANAGE_GUILD,
    MESSAGE_COMMAND,
    MUTE_MEMBERS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    SEND_VOICE_MESSAGES,
    SPEAK,
    USE_APPLICATION_COMMANDS,
    USER_COMMAND,
    VIEW_CHANNEL,
)
from tests.fakes.discord._fake import FakeDiscord
from tests.fakes.discord._models import (
    DiscordAPIError,
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMessage,
    FakeUser,
    FakeVoiceState,
)
from tests.fakes.discord._records import GatewayConnection, Hold, RecordedRequest, UploadedFile

__all__ = [
    "ADMINISTRATOR",
    "ATTACH_FILES",
    "BOT_DM",
    "CHAT_INPUT",
    "CONNECT",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_MEMBER_PERMISSIONS",
    "EMBED_LINKS",
    "EPHEMERAL",
    "FAKE_TOKEN",
    "GUILD",
    "GUILD_STAGE_VOICE",
    "GUILD_VOICE",
    "INTENT_GUILD_VOICE_STATES",
    "IS_VOICE_MESSAGE",
    "MANAGE_GUILD",
    "MESSAGE_COMMAND",
    "MUTE_MEMBERS",
    "READ_MESSAGE_HISTORY",
    "SEND_MESSAGES",
    "SEND_MESSAGES_IN_THREADS",
    "SEND_VOICE_MESSAGES",
    "SPEAK",
    "USER_COMMAND",
    "USE_APPLICATION_COMMANDS",
    "VIEW_CHANNEL",
    "DiscordAPIError",
    "FakeAttachment",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMessage",
    "FakeUser",
    "FakeVoiceState",
    "GatewayConnection",
    "Hold",
    "RecordedRequest",
    "UploadedFile",
]
