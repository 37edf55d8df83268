"""The README's invite is what the bot needs, and what the fake Discord grants by default:
a test that passes only because the fake grants more than a real server would is a lie."""

from __future__ import annotations

import re
from pathlib import Path

from tests.fakes.discord import (
    ATTACH_FILES,
    CONNECT,
    DEFAULT_BOT_PERMISSIONS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    SEND_VOICE_MESSAGES,
    SPEAK,
    VIEW_CHANNEL,
    FakeMessage,
)
from tests.fakes.segmind import JobScript
from tests.harness import world

ROOT = Path(__file__).resolve().parents[1]
NAMES = {
    "View Channels": VIEW_CHANNEL,
    "Send Messages": SEND_MESSAGES,
    "Send Messages in Threads": SEND_MESSAGES_IN_THREADS,
    "Attach Files": ATTACH_FILES,
    "Read Message History": READ_MESSAGE_HISTORY,
    "Send Voice Messages": SEND_VOICE_MESSAGES,
    "Connect": CONNECT,
    "Speak": SPEAK,
}


def test_readme_invite_is_the_fake_discords_default() -> None:
    readme = (ROOT / "README.md").read_text()
    integers = {int(n) for n in re.findall(r"permission integer `(\d+)`", readme)}
    integers |= {int(n) for n in re.findall(r"[?&]permissions=(\d+)", readme)}
    assert integers == {DEFAULT_BOT_PERMISSIONS}
    [step] = [line for line in readme.split("\n\n") if "permission integer" in line]
    named = {name for name in NAMES if f"**{name}**" in step}
    assert sum(NAMES[name] for name in named) == DEFAULT_BOT_PERMISSIONS
    assert DEFAULT_BOT_PERMISSIONS & READ_MESSAGE_HISTORY  # channel replies need it


async def test_channel_reply_needs_read_message_history(tmp_path: Path) -> None:
    """Without Read Message History the bot cannot reply in the channel (nor find its
    reply again after a crash): it says so in time, and sends the result by DM."""
    async with world(tmp_path, {"token_lifetime": 2.0}) as w:
        w.segmind.script_jobs(JobScript(duration=3.0))
        blind = w.discord.add_channel(
            "no-history", bot_permissions=DEFAULT_BOT_PERMISSIONS & ~READ_MESSAGE_HISTORY
        )
        interaction = await w.speak("no history here", channel_id=blind)
        user = w.discord.user_id

        def in_dm() -> list[FakeMessage]:
            return [m for m in w.discord.dm_messages(user) if m.attachments]

        await w.discord.wait_for(lambda: bool(in_dm()), 15)
        original = interaction.original
        assert original is not None
        notices = [h["content"] for h in original.history] + [original.content]
        [notice] = [text for text in notices if "taking long" in text]
        assert "sent to you by DM" in notice
        assert "Read Message History" in notice
        # Checked before posting: no reply was tried (Discord would refuse it, 160002).
        assert not w.discord.requests_to("POST", rf"^/channels/{blind}/messages$")
        assert [m for m in w.discord.channel_messages(blind) if m.attachments] == []
