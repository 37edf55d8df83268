"""Results played in the requester's voice channel: `VoicePlayback` (one per bot: per-server
queues, joining, idle and empty-channel leaving), `ClipSource` (PCM frames as discord.py
audio) and `ensure_opus` (PyAV's bundled libopus for discord.py). Not an extension: the bot
owns one `VoicePlayback` and the cogs that deliver results use it."""

from __future__ import annotations

from cogs.voice._opus import ensure_opus
from cogs.voice._player import Connect, VocalChannel, VoiceConnection, VoicePlayback
from cogs.voice._source import FRAME_BYTES, ClipSource

__all__ = [
    "FRAME_BYTES",
    "ClipSource",
    "Connect",
    "VocalChannel",
    "VoiceConnection",
    "VoicePlayback",
    "ensure_opus",
]
