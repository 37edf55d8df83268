"""The buttons on the bot's messages. Their custom ids carry the job id, so a click is
understood after a restart too (discord.py dynamic items, registered in `Speak.cog_load`).

Views are built stopped: discord.py then keeps no per-message state for them, which
hundreds of jobs in flight would otherwise pile up.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord


class ButtonHandler(Protocol):
    async def consent_answered(
        self, interaction: discord.Interaction[Any], job_id: str, agreed: bool
    ) -> None: ...

    async def cancel_clicked(self, interaction: discord.Interaction[Any], job_id: str) -> None: ...

    async def owner_clicked(
        self, interaction: discord.Interaction[Any], job_id: str, answer: str
    ) -> None: ...

    async def result_clicked(
        self, interaction: discord.Interaction[Any], job_id: str, action: str
    ) -> None: ...


def _handler(interaction: discord.Interaction[Any]) -> ButtonHandler:
    cog = interaction.client.get_cog("Speak")
    assert cog is not None, "the Speak cog registers these buttons"
    return cog  # type: ignore[no-any-return]


class ConsentButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"vc:consent:(?P<answer>yes|no):(?P<job>\d+)",
):
    def __init__(self, job_id: str, agreed: bool) -> None:
        answer = "yes" if agreed else "no"
        super().__init__(
            discord.ui.Button(
                label="Yes, go ahead" if agreed else "No, cancel",
                style=discord.ButtonStyle.success if agreed else discord.ButtonStyle.secondary,
                custom_id=f"vc:consent:{answer}:{job_id}",
            )
        )
        self.job_id = job_id
        self.agreed = agreed

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> ConsentButton:
        return cls(match["job"], match["answer"] == "yes")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _handler(interaction).consent_answered(interaction, self.job_id, self.agreed)


class CancelButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"vc:cancel:(?P<job>\d+)"
):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel", style=discord.ButtonStyle.secondary, custom_id=f"vc:cancel:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> CancelButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _handler(interaction).cancel_clicked(interaction, self.job_id)


def _view(*items: discord.ui.Item[Any]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    view.stop()
    return view


def consent_view(job_id: str) -> discord.ui.View:
    return _view(ConsentButton(job_id, True), ConsentButton(job_id, False))


def cancel_view(job_id: str) -> discord.ui.View:
    return _view(CancelButton(job_id))


RESULT_ACTIONS = {"again": "🔁 Again", "edit": "✏️ Edit text", "delete": "🗑️ Delete"}


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"vc:(?P<action>again|edit|delete):(?P<job>\d+)",
):
    """Again, Edit text and Delete on a result (handled by `cogs/speak/_results.py`)."""

    def __init__(self, job_id: str, action: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=RESULT_ACTIONS[action],
                style=discord.ButtonStyle.secondary,
                custom_id=f"vc:{action}:{job_id}",
            )
        )
        self.job_id = job_id
        self.action = action

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> ResultButton:
        return cls(match["job"], match["action"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _handler(interaction).result_clicked(interaction, self.job_id, self.action)


OWNER_ANSWERS = {
    "once": ("Allow once", discord.ButtonStyle.success),
    "always": ("Always allow", discord.ButtonStyle.primary),
    "deny": ("Deny", discord.ButtonStyle.danger),
}


class OwnerButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"vc:owner:(?P<answer>once|always|deny):(?P<job>\d+)",
):
    """The voice owner's answer to a request to use their voice (`cogs/speak/_owner.py`)."""

    def __init__(self, job_id: str, answer: str) -> None:
        label, style = OWNER_ANSWERS[answer]
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=f"vc:owner:{answer}:{job_id}")
        )
        self.job_id = job_id
        self.answer = answer

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> OwnerButton:
        return cls(match["job"], match["answer"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await _handler(interaction).owner_clicked(interaction, self.job_id, self.answer)


def owner_view(job_id: str) -> discord.ui.View:
    return _view(*(OwnerButton(job_id, answer) for answer in OWNER_ANSWERS))


def result_custom_id(job_id: str) -> str:
    """The mark of results posted before they had buttons (a disabled button)."""
    return f"vc:result:{job_id}"


def result_view(job_id: str) -> discord.ui.View:
    """The buttons on every message that carries a job's result. Their custom ids hold
    the job id, and only the bot can put components on its messages, so they are also the
    mark by which it finds an earlier post of the result after a crash, long after Discord
    forgot the post's nonce (see `Answer.posted_before`)."""
    return _view(*(ResultButton(job_id, action) for action in RESULT_ACTIONS))


def carries_result(message: discord.Message, job_id: str) -> bool:
    """The message holds `job_id`'s result mark (the caller checks who wrote it)."""
    wanted = {result_custom_id(job_id), *(f"vc:{action}:{job_id}" for action in RESULT_ACTIONS)}
    for row in message.components:
        children = row.children if isinstance(row, discord.ActionRow) else [row]
        if any(getattr(child, "custom_id", None) in wanted for child in children):
            return True
    return False


DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    ConsentButton,
    CancelButton,
    ResultButton,
    OwnerButton,
)
