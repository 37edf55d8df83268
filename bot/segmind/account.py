"""The Segmind account: its credit balance, for the bot owner's `/voiceclone credits`.

`GET {origin of the workflow URL}/v1/get-user-credits` with the `x-api-key` header answers
`{"credits": <float>, "free-credits": <float>}` (PLATFORM.md, "Credits"). The request goes
through `SegmindClient.credits`: the bot's shared session, request budget, retries of
transient failures and HTTP-status-to-typed-error mapping, so the key never reaches a log
line or an error text. Here it gets an overall deadline, since someone is waiting for it.
"""

from __future__ import annotations

import asyncio

from .client import Credits, SegmindClient
from .errors import SegmindConnectionError

__all__ = ["CREDITS_TIMEOUT", "Credits", "fetch_credits"]

# Retries included: an admin is looking at "thinking…"; better a clear error than a wait.
CREDITS_TIMEOUT = 15.0


async def fetch_credits(
    client: SegmindClient,
    *,
    timeout: float | None = None,  # noqa: ASYNC109 (one deadline over the retries)
) -> Credits:
    """The account's balance. Raises a `SegmindError` subclass (HTTP errors by status,
    `MalformedResponseError` for an unusable answer, `SegmindConnectionError` when
    Segmind cannot be reached or the whole exchange takes longer than `timeout`, by
    default `CREDITS_TIMEOUT`)."""
    if timeout is None:
        timeout = CREDITS_TIMEOUT
    try:
        async with asyncio.timeout(timeout):
            return await client.credits()
    except TimeoutError:
        raise SegmindConnectionError(f"no answer within {timeout:g} s") from None
