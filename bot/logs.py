"""Logging set-up with a last line of defence: secrets are scrubbed from every record."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

import discord

from .observe.json_logs import JsonFormatter

REDACTED = "[redacted]"
# Interaction tokens are live credentials for 15 minutes (they edit the job's message and
# post as the bot in its channel), and discord.py's DEBUG lines log request URLs that
# carry them: `/webhooks/<application id>/<token>/…` and
# `/interactions/<interaction id>/<token>/callback`. The same path shape is a webhook
# URL's secret. A payload logged whole carries the token by its shape: Discord's
# interaction tokens are base64 of "interaction:…".
_TOKEN_IN_PATH = re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/\s?#'\"<>]+")
_INTERACTION_TOKEN = re.compile(r"aW50ZXJhY3Rpb246[A-Za-z0-9_\-.=]*")


class RedactSecrets(logging.Filter):
    """Replace secrets wherever they appear in a formatted record (message, arguments,
    a traceback's or stack's text) at every level, so no log line can carry one: the
    given values (bot token, API key), and every interaction or webhook token."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if len(s) >= 6)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _TOKEN_IN_PATH.sub(rf"\g<1>{REDACTED}", text)
        return _INTERACTION_TOKEN.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it, unformatted
            return True
        scrubbed = self._scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self._scrub(record.stack_info)
        return True


class _DropVoiceWarnings(logging.Filter):
    """The bot never joins voice channels; discord.py's "voice will NOT be supported"
    warnings at every start would only worry operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


def setup_logging(level: str, secrets: Iterable[str], *, json_lines: bool = False) -> None:
    # Colours only on a terminal: log collectors (docker logs, journald) get plain text.
    if json_lines:
        discord.utils.setup_logging(
            level=getattr(logging, level), formatter=JsonFormatter(), root=True
        )
    elif sys.stderr.isatty():
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
