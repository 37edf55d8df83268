"""/speak and "Speak in this voice": a clip and some text in, the text spoken in that voice
out. The cog (`_cog.py`) checks a request (`_intake.py`), reserves its place, asks for
consent where needed (`_consent.py`) and hands the job to the core's job service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._cog import MESSAGE_COMMAND, Speak

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

__all__ = ["MESSAGE_COMMAND", "Speak", "setup"]


async def setup(bot: VoiceCloneBot) -> None:
    await bot.add_cog(Speak(bot))
