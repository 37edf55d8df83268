"""libopus for discord.py's voice: PyAV's bundled copy, else the system's.

discord.py encodes PCM with libopus through ctypes and only finds it on its own on Windows
(where its wheels bundle it) or where the system has it. PyAV's wheels carry a libopus of
their own (`av.libs/libopus-*.so*`), so the bot needs nothing installed on the host.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import logging
import threading
from pathlib import Path

import discord

log = logging.getLogger(__name__)

_lock = threading.Lock()
_warned = False


def ensure_opus() -> bool:
    """Load libopus into discord.py unless it is loaded already; whether it is now.

    Blocking (it may look through the file system and run `ldconfig`): call it off the
    event loop, e.g. `await asyncio.to_thread(ensure_opus)`. Logs once when nothing loads.
    """
    global _warned
    with _lock:
        if discord.opus.is_loaded():
            return True
        tried: list[str] = []
        for candidate in _candidates():
            tried.append(candidate)
            try:
                discord.opus.load_opus(candidate)
            except OSError:
                continue
            log.info("voice: libopus loaded from %s", candidate)
            return True
        if not _warned:
            _warned = True
            log.warning(
                "voice: no libopus could be loaded (tried %s); voice playback is off", tried
            )
        return False


def _candidates() -> list[str]:
    """PyAV's bundled libopus first (its version is known to work), then the system's."""
    found: list[str] = []
    spec = importlib.util.find_spec("av")
    if spec is not None and spec.origin is not None:
        libs = Path(spec.origin).parent.parent / "av.libs"
        found.extend(str(path) for path in sorted(libs.glob("libopus-*.so*")))
    system = ctypes.util.find_library("opus")
    if system is not None:
        found.append(system)
    return found
