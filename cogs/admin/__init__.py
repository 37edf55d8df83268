"""/voiceclone: the server admins' controls and the bot owner's (an extension package).

`_cog.py` holds the cog (the server admins' subcommands, with `_access.py`: channels and
roles, and `_sound.py`: delivery and stop), `_owner.py` the bot owner's, `_format.py` how
their answers are worded; who may run what is checked by the decorators
in `cogs/checks.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._cog import Admin

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot


async def setup(bot: VoiceCloneBot) -> None:
    await bot.add_cog(Admin(bot))
