"""Hostile input end to end (real discord.py against the fake Discord): whatever a member
types, or Segmind answers, the bot's messages stay within Discord's limits, forge no line
under the bot's own text, ping nobody, and nothing is logged as an error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cogs.echo import BIDI_CONTROLS, LINE_BREAKS
from cogs.speak import MESSAGE_COMMAND
from tests.fakes.discord import FakeInteraction, FakeMessage
from tests.fakes.segmind import JobScript
from tests.harness import World, world

MAX_CONTENT = 2000
FOOTER = "-# 🌐 "


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


def sent_contents(w: World) -> Iterator[str]:
    """Every message content the bot sent Discord: posts, edits, interaction callbacks."""
    for request in w.discord.requests:
        body = request.json
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            body = body["data"]  # an interaction callback
        if isinstance(body, dict) and isinstance(body.get("content"), str):
            yield body["content"]


def rendered_lines(content: str) -> list[str]:
    """The lines as Discord lays them out, with block-quote markers taken off (a "-#"
    line inside a quote still renders as a footer-like subtext line)."""
    lines = []
    for line in content.split("\n"):
        while line.startswith(("> ", ">>> ")):
            line = line.removeprefix(">>> ").removeprefix("> ")
        lines.append(line.lstrip())
    return lines


def assert_safe(w: World, victim: int, content: str, *, footers: int) -> None:
    """Within Discord's limit, exactly `footers` footer lines (the bot's own, last), no
    other line that Discord would render as a subtext, heading or list, no bidi control,
    and no mention syntax left."""
    assert len(content) <= MAX_CONTENT
    lines = rendered_lines(content)
    marked = [line for line in lines if line.startswith(("-#", "#", "- ", "* "))]
    assert marked == [lines[-1]] * footers, content
    if footers:
        assert lines[-1].startswith(FOOTER)
    assert not any(ch in content for ch in BIDI_CONTROLS + LINE_BREAKS.replace("\n", ""))
    assert "@everyone" not in content
    assert "@here" not in content
    for user in (w.discord.user_id, victim):
        for mention in (f"<@{user}>", f"<@!{user}>"):
            if user == w.discord.user_id and footers:
                continue  # the bot names the requester in its footer (without a ping)
            assert mention not in content


def assert_nothing_pinged(w: World) -> None:
    for request in w.discord.requests:
        assert request.status < 400, (request.method, request.route, request.response)
        if isinstance(request.json, dict) and "allowed_mentions" in request.json:
            assert request.json["allowed_mentions"] == {"parse": []}


def all_versions(message: FakeMessage) -> list[str]:
    return [h["content"] for h in message.history] + [message.content]


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path) as running:
        yield running


@pytest.fixture
def victim(w: World) -> int:
    """A member whose mention must never ping."""
    return w.discord.add_user("victim")


def raw_speak_options(w: World, text: str, language: str | None) -> dict[str, Any]:
    """/speak's options past the schema's length limits, as a modified client could send
    them (the fake's client checks choices and types, not lengths)."""
    options: dict[str, Any] = {"voice": w.clip(), "text": text}
    if language is not None:
        options["language"] = language
    return options


async def refusal(w: World, interaction: FakeInteraction) -> FakeMessage:
    await w.discord.wait_for(lambda: interaction.original is not None)
    message = interaction.original
    assert message is not None
    assert message.ephemeral
    return message


HOSTILE_LANGUAGES = [
    "x" * 5000,
    "@everyone " * 500,
    ("zz\u2028-# forged\x85<@{victim}>\u202e") * 300,
    "zz\u2028-# forged",
    "zz\x1c-# forged @here",
    "\u202ezz\u2066",
]


@pytest.mark.parametrize("language", HOSTILE_LANGUAGES)
async def test_hostile_language_is_refused_in_one_short_line(
    w: World, victim: int, logs: pytest.LogCaptureFixture, language: str
) -> None:
    language = language.replace("{victim}", str(victim))
    interaction = await w.discord.slash("speak", raw_speak_options(w, "Hello", language))
    message = await refusal(w, interaction)
    assert message.content.startswith("I don't know the language")
    assert len(message.content) < 200
    assert_safe(w, victim, message.content, footers=0)
    assert message.mentions == []
    assert not message.mention_everyone
    assert w.segmind.count("submit") == 0
    assert_nothing_pinged(w)
    no_errors_logged(logs)


async def test_language_option_is_capped_in_the_schema(w: World) -> None:
    speak = next(c for c in w.discord.commands(w.discord.guild_id) if c["name"] == "speak")
    language = next(o for o in speak["options"] if o["name"] == "language")
    assert language["max_length"] == 40
    assert language["autocomplete"] is True


INVISIBLE_TEXTS = [
    "\u200b\u200c\u200d\u2060\ufeff",
    "\u200b \u2028 \x1c \x85 \u2029",
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c",
    "\u3164\u3164",
]


@pytest.mark.parametrize("text", INVISIBLE_TEXTS)
async def test_invisible_text_is_refused_before_anything_is_billed(
    w: World, logs: pytest.LogCaptureFixture, text: str
) -> None:
    interaction = await w.discord.slash("speak", raw_speak_options(w, text, None))
    message = await refusal(w, interaction)
    assert "The text is empty" in message.content
    assert w.segmind.count("submit") == 0
    assert w.bot.policy.today(w.discord.guild_id) == (0, 0)  # no job, no characters counted
    assert await w.bot.store.get(str(interaction.id)) is None
    no_errors_logged(logs)


def hostile_texts(victim: int) -> list[str]:
    texts = [f"Hello{brk}-# forged footer" for brk in LINE_BREAKS]
    texts += [
        "Hello\r\n-# forged\n# heading\n> quote\n- item\n1. item",
        "\u202eHello\u202c \u2066evil\u2069 \u200fx\u061c",
        f"@everyone @here <@{victim}> <@!{victim}> <@&1> <#2> hello",
        "\u200b-# starts hidden",
        "x" * 1000,
        "@" * 1000,
    ]
    return texts


async def test_hostile_text_is_quoted_on_one_line_and_pings_nobody(
    w: World, victim: int, logs: pytest.LogCaptureFixture
) -> None:
    texts = hostile_texts(victim)
    interactions = await asyncio.gather(
        *(w.discord.slash("speak", raw_speak_options(w, text, None)) for text in texts)
    )
    messages = await asyncio.gather(*(w.answered(i, within=20) for i in interactions))
    for message in messages:
        assert message.attachments, message.content
        assert not message.ephemeral
        assert message.mentions == []
        assert not message.mention_everyone
        *progress, final = all_versions(message)
        for version in progress:
            assert_safe(w, victim, version, footers=0)
        assert_safe(w, victim, final, footers=1)
    for message in messages:
        assert len(message.content.split("\n")) == 2  # the quote, then the bot's footer
    for content in sent_contents(w):
        assert len(content) <= MAX_CONTENT
    assert_nothing_pinged(w)
    no_errors_logged(logs)


async def open_modal(w: World, message_id: int) -> FakeInteraction:
    opened = await w.discord.context_menu(MESSAGE_COMMAND, message_id)
    await w.discord.wait_for(lambda: opened.modal is not None)
    return opened


async def test_hostile_modal_input_is_refused_before_billing(
    w: World, victim: int, logs: pytest.LogCaptureFixture
) -> None:
    """The message command's form: Discord caps its fields, a modified client need not."""
    post = await w.discord.user_message(user_id=victim, attachments=[w.clip()])
    answers: list[FakeMessage] = []
    for values in (
        {"text": "Hello", "language": "@everyone\u2028-# forged " * 400},
        {"text": "\u200b\u2060\ufeff"},
    ):
        opened = await open_modal(w, post.id)
        answers.append(await refusal(w, await w.discord.submit_modal(opened, values)))
    language, empty = answers
    assert language.content.startswith("I don't know the language")
    assert_safe(w, victim, language.content, footers=0)
    assert "The text is empty" in empty.content
    assert w.segmind.count("submit") == 0
    assert_nothing_pinged(w)
    no_errors_logged(logs)


async def test_segmind_failure_reason_is_shown_neutralised(
    w: World, victim: int, logs: pytest.LogCaptureFixture
) -> None:
    reason = (
        f"@everyone <@{victim}> **bold** ||spoiler||\n-# forged\u2028-# forged too\x1c# head "
        + "x" * 3000
    )
    w.segmind.script_jobs(JobScript(statuses=("FAILED",), failure_reason=reason))
    message = await w.answered(await w.speak("Hello"))
    assert message.content.startswith("❌ The voice service could not use this clip or text")
    assert "forged" in message.content  # Segmind's words are shown, defused
    assert "**bold**" not in message.content
    assert "||spoiler||" not in message.content
    assert len(message.content) < 1000
    assert_safe(w, victim, message.content, footers=0)
    assert message.mentions == []
    assert not message.mention_everyone
    assert_nothing_pinged(w)
    no_errors_logged(logs)


async def test_hostile_block_reason_is_echoed_on_one_short_line(
    w: World, victim: int, logs: pytest.LogCaptureFixture
) -> None:
    """/voiceclone block echoes the admin's reason (Discord caps it at 200 characters, a
    modified client need not): one line, shortened, no ping."""
    reason = "spam\u2028-# forged @everyone <@&1>\u202e\x85# head " * 200
    interaction = await w.discord.slash(
        "voiceclone",
        {"member": victim, "reason": reason},
        subcommand="block",
        user_id=w.discord.owner_id,
    )
    message = await refusal(w, interaction)  # the admin's private answer
    assert message.content.startswith(f"⛔ <@{victim}> can no longer use voice cloning")
    assert "(reason: spam -# forged" in message.content
    assert len(message.content) < 1000
    assert len(message.content.split("\n")) == 1
    assert not any(ch in message.content for ch in BIDI_CONTROLS + LINE_BREAKS)
    assert "@everyone" not in message.content
    assert "<@&1>" not in message.content
    assert message.mentions == []
    assert not message.mention_everyone
    assert_nothing_pinged(w)
    no_errors_logged(logs)
