"""ClipSource: a finished result as discord.py audio, 20 ms of PCM at a time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import discord

# discord.py's voice wants 20 ms frames of 48 kHz, 2-channel, 16-bit little-endian PCM.
FRAME_BYTES = discord.opus.Encoder.FRAME_SIZE  # 3840: 960 samples x 2 channels x 2 bytes


class ClipSource(discord.AudioSource):
    """PCM from `chunks` (48 kHz stereo s16le, in pieces of any size) as 3840-byte frames.

    `read()` runs on discord.py's player thread, so so does the iterator it pulls from (a
    PyAV decoder, for example); nothing here touches the event loop. Chunks are regrouped
    into whole frames and the last one is padded with silence, so a clip of d seconds gives
    ceil(d * 50) frames. `cleanup()` closes the iterator (a generator frees its decoder).
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = bytearray()
        self._ended = False
        self.frames_read = 0

    def read(self) -> bytes:
        """The next 3840-byte frame, or b"" at the end (after which it stays b"")."""
        while not self._ended and len(self._buffer) < FRAME_BYTES:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._ended = True
            else:
                self._buffer += chunk
        if not self._buffer:
            return b""
        frame = bytes(self._buffer[:FRAME_BYTES]).ljust(FRAME_BYTES, b"\0")
        del self._buffer[:FRAME_BYTES]
        self.frames_read += 1
        return frame

    def is_opus(self) -> bool:
        return False

    def cleanup(self) -> None:
        """Close the iterator; safe to call more than once (discord.py also calls it on
        garbage collection)."""
        self._ended = True
        self._buffer.clear()
        close = getattr(self._chunks, "close", None)
        if callable(close):
            close()
