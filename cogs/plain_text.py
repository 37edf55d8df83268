"""A Discord message's text as words to speak: mentions as plain names, custom emoji as
their names, markdown gone (for "Say this in my voice")."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import discord

_USER = re.compile(r"<@!?(\d+)>")
_ROLE = re.compile(r"<@&(\d+)>")
_CHANNEL = re.compile(r"<#(\d+)>")
_EMOJI = re.compile(r"<a?:(\w+):\d+>")
_TIMESTAMP = re.compile(r"<t:(-?\d+)(?::\w)?>")
_COMMAND = re.compile(r"</([\w -]+):\d+>")
_EVERYONE = re.compile(r"@(everyone|here)\b")


def plain_words(
    content: str,
    users: Mapping[int, str],
    roles: Mapping[int, str],
    channels: Mapping[int, str],
    limit: int,
) -> str:
    """`content` with each mention replaced by the name (or "someone", "a role", "a
    channel" when unknown), markdown stripped, cut to `limit` characters at a word."""

    def name(table: Mapping[int, str], unknown: str) -> Callable[[re.Match[str]], str]:
        return lambda m: table.get(int(m.group(1)), unknown)

    text = _EMOJI.sub(lambda m: m.group(1).replace("_", " "), content)
    text = _USER.sub(name(users, "someone"), text)
    text = _ROLE.sub(name(roles, "a role"), text)
    text = _CHANNEL.sub(name(channels, "a channel"), text)
    text = _TIMESTAMP.sub("a time", text)
    text = _COMMAND.sub(lambda m: m.group(1), text)
    text = _EVERYONE.sub(lambda m: m.group(1), text)
    text = discord.utils.remove_markdown(text)
    text = re.sub(r"(?m)^\s*(?:>+|#{1,3}|-#)\s*", "", text)  # quotes, headings, subtext
    text = " ".join(text.split())
    if len(text) > limit:
        cut = text[:limit]
        text = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return text


def message_words(message: discord.Message, limit: int) -> str:
    """What "Say this in my voice" speaks for `message`."""
    users = {u.id: getattr(u, "display_name", u.name) for u in message.mentions}
    guild = message.guild
    roles = {r.id: r.name for r in message.role_mentions}
    channels: dict[int, str] = {}
    if guild is not None:
        roles.update({r.id: r.name for r in guild.roles})
        channels = {c.id: c.name for c in guild.channels}
        channels.update({t.id: t.name for t in guild.threads})
    return plain_words(message.content, users, roles, channels, limit)
