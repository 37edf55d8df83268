"""Discord over REST only (no gateway connection): the token, the application, and the
bot's standing in each listed server. Every call has a timeout; no answer body is ever
printed (Discord's error text can echo what was sent)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord.http

from .permissions import CORE, INVITE_PERMISSIONS, VOICE, guild_permissions, missing
from .report import Check, fail, ok, warn

TOKEN = "Discord token"
APP = "Discord application"
COMMANDS = "Slash commands"
SHARDS = "Shards"
TIMEOUT = aiohttp.ClientTimeout(total=10, connect=5)
# Application flags: the privileged intents, enabled or limited (the bot needs none).
PRIVILEGED_INTENT_FLAGS = (1 << 12) | (1 << 13) | (1 << 14) | (1 << 15) | (1 << 18) | (1 << 19)
PORTAL = "https://discord.com/developers/applications"
NETWORK_FIX = "check the network, DNS, a proxy or firewall: discord.com must answer over HTTPS"


class Unreachable(Exception):
    """No usable answer; the text names no secret (only a status or an exception type)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any


class Rest:
    def __init__(self, session: aiohttp.ClientSession, token: str) -> None:
        self._session = session
        # discord.py's base, read now rather than at import: tests point it at a fake.
        self._base = discord.http.Route.BASE
        self._headers = {
            "Authorization": f"Bot {token}",
            "User-Agent": "DiscordBot (voiceclone check)",
        }

    async def get(self, path: str) -> Answer:
        try:
            async with self._session.get(
                self._base + path, headers=self._headers, timeout=TIMEOUT
            ) as r:
                body = await r.json(content_type=None) if r.status < 300 else None
                return Answer(r.status, body)
        except TimeoutError:
            raise Unreachable(f"no answer within {TIMEOUT.total:g} s") from None
        except aiohttp.ClientError as exc:
            raise Unreachable(type(exc).__name__) from None
        except ValueError:
            raise Unreachable("its answer is not JSON") from None


def _snowflake(value: object) -> int | None:
    return int(value) if isinstance(value, str | int) and str(value).isdigit() else None


def invite_url(application_id: int) -> str:
    return (
        f"https://discord.com/oauth2/authorize?client_id={application_id}"
        f"&scope=bot+applications.commands&permissions={INVITE_PERMISSIONS}"
    )


async def check_token(rest: Rest) -> tuple[Check, dict[str, Any] | None]:
    try:
        me = await rest.get("/users/@me")
    except Unreachable as exc:
        return fail(TOKEN, f"Discord could not be reached ({exc})", NETWORK_FIX), None
    if me.status == 401:
        return fail(
            TOKEN,
            "DISCORD_TOKEN was rejected (HTTP 401)",
            f"{PORTAL} → your app → Bot → Reset Token, and put it in .env as DISCORD_TOKEN",
        ), None
    if me.status != 200 or not isinstance(me.body, dict) or _snowflake(me.body.get("id")) is None:
        return fail(
            TOKEN, f"Discord answered HTTP {me.status} to GET /users/@me", "try again later"
        ), None
    name = "".join(ch for ch in str(me.body.get("username")) if ch.isprintable())
    return ok(TOKEN, f"accepted: the bot is {name} (id {me.body['id']})"), me.body


async def check_application(
    rest: Rest, allowed_guild_ids: Sequence[int]
) -> tuple[Check, int | None]:
    try:
        app = await rest.get("/oauth2/applications/@me")
    except Unreachable as exc:
        return fail(APP, f"Discord could not be reached ({exc})", NETWORK_FIX), None
    app_id = _snowflake(app.body.get("id")) if isinstance(app.body, dict) else None
    if app.status != 200 or not isinstance(app.body, dict) or app_id is None:
        http = f"HTTP {app.status}"
        return fail(APP, f"Discord answered {http} to GET /oauth2/applications/@me"), None
    notes = f"id {app_id}"
    if int(app.body.get("flags") or 0) & PRIVILEGED_INTENT_FLAGS:
        notes += "; privileged intents are on but not needed (you may turn them off)"
    if app.body.get("bot_public") and not allowed_guild_ids:
        return warn(
            APP,
            f"{notes}; the bot is public and ALLOWED_GUILD_IDS is empty: anyone can add it to "
            "a server and spend your Segmind credits",
            f"turn off Public Bot ({PORTAL} → your app → Bot), or set ALLOWED_GUILD_IDS",
        ), app_id
    return ok(APP, f"{notes}; {'public' if app.body.get('bot_public') else 'private'} bot"), app_id


async def check_guild(rest: Rest, guild_id: int, bot_id: int, app_id: int, listed_in: str) -> Check:
    name = f"Server {guild_id}"
    try:
        guild = await rest.get(f"/guilds/{guild_id}")
        if guild.status in (403, 404):
            return fail(
                name,
                f"the bot is not in this server (listed in {listed_in})",
                f"invite it: {invite_url(app_id)} — or remove the id from {listed_in}",
            )
        roles = await rest.get(f"/guilds/{guild_id}/roles")
        member = await rest.get(f"/guilds/{guild_id}/members/{bot_id}")
    except Unreachable as exc:
        return fail(name, f"Discord could not be reached ({exc})", NETWORK_FIX)
    bad = next((a.status for a in (guild, roles, member) if a.status != 200), None)
    shapes = (
        isinstance(guild.body, dict)
        and isinstance(roles.body, list)
        and isinstance(member.body, dict)
    )
    if bad is not None or not shapes:
        return fail(name, f"cannot read the bot's roles (HTTP {bad or 200})", "try again later")
    name = f"Server {guild.body.get('name')!r} ({guild_id})"
    granted = guild_permissions(
        guild_id,
        int(guild.body.get("owner_id") or 0),
        bot_id,
        [int(r) for r in member.body.get("roles", [])],
        roles.body,
    )
    lacks_core, lacks_voice = missing(granted, CORE), missing(granted, VOICE)
    fix = (
        "grant them to the bot's role in Server Settings → Roles, or invite it again with "
        f"permissions {INVITE_PERMISSIONS}: {invite_url(app_id)}"
    )
    if lacks_core:
        also = f" (and for the voice features: {', '.join(lacks_voice)})" if lacks_voice else ""
        return fail(name, f"the bot lacks {', '.join(lacks_core)}{also}", fix)
    if lacks_voice:
        return warn(
            name,
            f"the bot lacks {', '.join(lacks_voice)}: voice messages or playback won't work",
            fix,
        )
    return ok(name, "the bot is in it with every permission it needs (channel overrides aside)")


async def check_commands(rest: Rest, app_id: int, guild_ids: Sequence[int]) -> list[Check]:
    """A hint only: the bot registers its commands itself when it starts."""
    scopes = [(f"/applications/{app_id}/guilds/{g}/commands", f"in server {g}") for g in guild_ids]
    scopes = scopes or [(f"/applications/{app_id}/commands", "globally")]
    checks = []
    for path, where in scopes:
        try:
            answer = await rest.get(path)
        except Unreachable as exc:
            checks.append(warn(COMMANDS, f"cannot list them {where} ({exc})"))
            continue
        count = len(answer.body) if answer.status == 200 and isinstance(answer.body, list) else 0
        if answer.status != 200:
            checks.append(warn(COMMANDS, f"cannot list them {where} (HTTP {answer.status})"))
        elif count == 0:
            checks.append(
                warn(
                    COMMANDS,
                    f"none registered {where} yet",
                    "the bot registers them when it starts (`make run`)",
                )
            )
        else:
            checks.append(ok(COMMANDS, f"{count} registered {where}"))
    return checks


async def check_shards(rest: Rest, shard_count: int) -> Check:
    """SHARD_COUNT against the number Discord recommends (GET /gateway/bot): fewer cannot
    connect once the bot is in more than 2,500 servers per shard."""
    try:
        gateway = await rest.get("/gateway/bot")
    except Unreachable as exc:
        return fail(SHARDS, f"Discord could not be reached ({exc})", NETWORK_FIX)
    shards = gateway.body.get("shards") if isinstance(gateway.body, dict) else None
    if gateway.status != 200 or not isinstance(shards, int):
        return warn(SHARDS, f"Discord answered HTTP {gateway.status} to GET /gateway/bot")
    if shards > shard_count:
        return fail(
            SHARDS,
            f"Discord recommends {shards} shards for this bot; SHARD_COUNT is {shard_count}",
            f"set SHARD_COUNT={shards}",
        )
    return ok(SHARDS, f"SHARD_COUNT={shard_count}; Discord recommends {shards}")


def listed_guilds(guild_ids: Sequence[int], allowed: Sequence[int]) -> dict[int, str]:
    """Each server once, with the setting(s) naming it."""
    listed: dict[int, list[str]] = {}
    for setting, ids in (("DISCORD_GUILD_IDS", guild_ids), ("ALLOWED_GUILD_IDS", allowed)):
        for guild_id in ids:
            listed.setdefault(guild_id, []).append(setting)
    return {g: " and ".join(names) for g, names in listed.items()}


async def discord_checks(
    token: str, guild_ids: Sequence[int], allowed: Sequence[int], shard_count: int = 1
) -> list[Check]:
    async with aiohttp.ClientSession() as session:
        rest = Rest(session, token)
        token_check, me = await check_token(rest)
        if me is None:
            return [token_check]  # nothing else answers without a good token
        app_check, app_id = await check_application(rest, allowed)
        checks = [token_check, app_check]
        if app_id is None:
            return checks
        bot_id = int(me["id"])
        for guild_id, listed_in in listed_guilds(guild_ids, allowed).items():
            checks.append(await check_guild(rest, guild_id, bot_id, app_id, listed_in))
        checks += await check_commands(rest, app_id, guild_ids)
        checks.append(await check_shards(rest, shard_count))
        return checks
