"""The README's invite is what the bot needs, and what the fake Discord grants by default:
a test that passes only because the fake grants more than a real server would is a lie."""

from __future__ import annotations

import re
from pathlib import Path

from tests.fakes.discord import (
    ATTACH_FILES,
    DEFAULT_BOT_PERMISSIONS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    VIEW_CHANNEL,
)

ROOT = Path(__file__).resolve().parents[1]
NAMES = {
    "View Channels": VIEW_CHANNEL,
    "Send Messages": SEND_MESSAGES,
    "Send Messages in Threads": SEND_MESSAGES_IN_THREADS,
    "Attach Files": ATTACH_FILES,
    "Read Message History": READ_MESSAGE_HISTORY,
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
