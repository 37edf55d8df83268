"""The voice an Again or Edit text replays: `replay_clip` turns a kept replay into a Clip,
or says why that voice can no longer be used. A one-off clip's Discord CDN URL is signed
and expires (`ex`); an expired one is refreshed through Discord's refresh endpoint, then
the clip is checked to still be there (slash-command uploads are deleted after a while)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import aiohttp
import discord

from bot.store import Replay

from ._intake import SNIFF_BYTES, Clip

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)

CLIP_GONE = "That clip is no longer available; attach it again with /speak."
SAVED_VOICE_GONE = "That saved voice is gone; pick another one, or attach a clip with /speak."
# Both checks run inside Discord's 3 s to answer the click (then the store's 1 s).
REFRESH_TIMEOUT = 0.8
CHECK_TIMEOUT = aiohttp.ClientTimeout(total=0.8)


async def replay_clip(bot: VoiceCloneBot, replay: Replay) -> Clip | str:
    """The Clip that replays `replay`'s voice, or what to tell the member when it is gone."""
    if replay.voice_id is not None:
        # Still there, still the requester's or shared here, its owner not opted out.
        usable = await bot.store.usable_voices(replay.guild_id, replay.user_id)
        voice = next((v for v in usable if v.id == replay.voice_id), None)
        clip = None if voice is None else Clip.saved(voice)
        return SAVED_VOICE_GONE if clip is None else clip
    url = replay.sample_url
    refreshed = False
    if _expired(url):
        url, refreshed = await _refresh(bot, url), True
    found = await _check(bot.session, url)
    if found is None and not refreshed:  # expired early, or revoked: one refresh
        url, refreshed = await _refresh(bot, url), True
        found = await _check(bot.session, url)
    if found is None:
        log.info("Job %s: its clip is no longer on the CDN", replay.job_id)
        return CLIP_GONE
    if url != replay.sample_url:
        await bot.store.update_replay_url(replay.job_id, url)
    content_type, size = found
    return Clip(
        url=url,
        filename=urlsplit(url).path.rsplit("/", 1)[-1] or "clip",
        content_type=content_type,
        size=size,
        owner_id=replay.voice_owner_id,
        sha256=replay.sample_sha256,
        checked=True,  # checked when it was first used, and just now found again
    )


def _expired(url: str) -> bool:
    """The signed URL's `ex` (hex Unix seconds) has passed; False when it has none."""
    try:
        return int(parse_qs(urlsplit(url).query)["ex"][0], 16) <= time.time()
    except (KeyError, ValueError, IndexError):
        return False


async def _refresh(bot: VoiceCloneBot, url: str) -> str:
    """A freshly signed URL for `url`, or `url` itself when Discord gives none."""
    route = discord.http.Route("POST", "/attachments/refresh-urls")
    try:
        answer = await asyncio.wait_for(
            bot.http.request(route, json={"attachment_urls": [url]}), REFRESH_TIMEOUT
        )
    except (discord.HTTPException, TimeoutError) as exc:
        log.warning("Could not refresh a clip's CDN URL: %s", type(exc).__name__)
        return url
    for item in answer.get("refreshed_urls") or []:
        if isinstance(item, dict) and isinstance(item.get("refreshed"), str):
            return str(item["refreshed"])
    return url


async def _check(session: aiohttp.ClientSession, url: str) -> tuple[str | None, int] | None:
    """The clip's content type and size if the CDN still serves it, else None. A slow CDN
    counts as there: Segmind judges then."""
    try:
        async with session.get(
            url, headers={"Range": f"bytes=0-{SNIFF_BYTES - 1}"}, timeout=CHECK_TIMEOUT
        ) as resp:
            if resp.status not in (200, 206):
                return None
            total = resp.headers.get("Content-Range", "").rpartition("/")[2]
            size = int(total) if total.isdigit() else resp.content_length or 0
            return resp.content_type, size
    except (aiohttp.ClientError, TimeoutError):
        return None, 0
