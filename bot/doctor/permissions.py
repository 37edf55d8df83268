"""The permissions the README's invite asks for, and a member's guild-level permissions
computed from roles as Discord does (channel overwrites aside)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ADMINISTRATOR = 1 << 3
# The bot cannot answer in a channel without these.
CORE = {
    "View Channels": 1 << 10,
    "Send Messages": 1 << 11,
    "Send Messages in Threads": 1 << 38,
    "Attach Files": 1 << 15,
    "Read Message History": 1 << 16,
}
# Results as voice messages, and played in voice channels.
VOICE = {
    "Send Voice Messages": 1 << 46,
    "Connect": 1 << 20,
    "Speak": 1 << 21,
}
INVITE_PERMISSIONS = sum(CORE.values()) + sum(VOICE.values())  # 70643625331712
ALL = (1 << 53) - 1


def guild_permissions(
    guild_id: int,
    owner_id: int,
    member_id: int,
    member_roles: Sequence[int],
    roles: Sequence[Mapping[str, Any]],
) -> int:
    """@everyone (the role whose id is the guild's) plus the member's roles; all for the
    owner or an administrator."""
    if member_id == owner_id:
        return ALL
    by_id = {int(r["id"]): int(r.get("permissions", 0)) for r in roles}
    granted = by_id.get(guild_id, 0)
    for role_id in member_roles:
        granted |= by_id.get(role_id, 0)
    return ALL if granted & ADMINISTRATOR else granted


def missing(granted: int, wanted: Mapping[str, int]) -> list[str]:
    return [name for name, bit in wanted.items() if not granted & bit]
