"""Logging set-up with a last line of defence: secrets are scrubbed from every record."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

import discord


class RedactSecrets(logging.Filter):
    """Replace secret values wherever they appear in a formatted record (message,
    arguments, or a traceback's text), so no log line can carry a token or key."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if len(s) >= 6)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self._scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        return True


class _DropVoiceWarnings(logging.Filter):
    """The bot never joins voice channels; discord.py's "voice will NOT be supported"
    warnings at every start would only worry operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


def setup_logging(level: str, secrets: Iterable[str]) -> None:
    # Colours only on a terminal: log collectors (docker logs, journald) get plain text.
    if sys.stderr.isatty():
        discord.utils.setup_logging(level=getattr(logging, level), root=True)
    else:
        plain = logging.Formatter(
            "%(asctime)s %(levelname)-8s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"
        )
        discord.utils.setup_logging(level=getattr(logging, level), formatter=plain, root=True)
    logging.getLogger("discord.client").addFilter(_DropVoiceWarnings())
    redact = RedactSecrets(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
    # aiohttp's access logs and discord.py's gateway chatter are noise at INFO.
    logging.getLogger("discord.gateway").setLevel(max(logging.INFO, getattr(logging, level)))
