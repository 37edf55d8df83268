"""Results played in the requester's voice channel: `VoicePlayback` (one per bot: per-server
queues, joining, idle and empty-channel leaving), `VoiceCog` (feeds it voice state updates,
closes it with the bot), `ClipSource` (PCM frames as discord.py audio) and `ensure_opus`
(PyAV's bundled libopus for discord.py)."""

from __future__ import annotations

from cogs.voice._cog import VoiceCog
from cogs.voice._opus import ensure_opus
from cogs.voice._player import (
    Connect,
    VocalChannel,
    VoiceConnection,
    VoicePlayback,
    voice_client_connect,
)
from cogs.voice._source import FRAME_BYTES, ClipSource

__all__ = [
    "FRAME_BYTES",
    "ClipSource",
    "Connect",
    "VocalChannel",
    "VoiceCog",
    "VoiceConnection",
    "VoicePlayback",
    "ensure_opus",
    "voice_client_connect",
]
