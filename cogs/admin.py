"""/voiceclone: the server admins' controls (hidden from members by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord import app_commands
from discord.ext import commands

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot


class Admin(commands.GroupCog, group_name="voiceclone"):
    """Placeholder: subcommands come next."""

    def __init__(self, bot: VoiceCloneBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="status", description="Show this server's voice-clone settings")
    async def status(self, interaction: object) -> None:  # pragma: no cover - placeholder
        raise NotImplementedError


async def setup(bot: VoiceCloneBot) -> None:
    await bot.add_cog(Admin(bot))
