"""The fake Discord's sharding, proved against the real discord.py 2.7.1 client: IDENTIFY
with `shard: [i, n]`, a guild's events (GUILD_CREATE, interactions) only on shard
(guild_id >> 22) % n, DMs on shard 0, `GET /gateway/bot` recommending `shards`, and the
close codes for a bad shard (4010) or too few shards (4011)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest

from tests.fakes.discord import FakeDiscord


def shard_of(guild_id: int, shards: int) -> int:
    return (guild_id >> 22) % shards


def guilds_on_both_shards(fake: FakeDiscord) -> tuple[dict[int, int], set[int]]:
    """Add guilds until each of 2 shards has one: (shard -> a guild on it, every guild)."""
    found = {shard_of(fake.guild_id, 2): fake.guild_id}
    every = {fake.guild_id}
    while len(found) < 2:
        guild_id = fake.add_guild(f"guild {len(every)}")
        every.add(guild_id)
        found.setdefault(shard_of(guild_id, 2), guild_id)
    return found, every


async def ping(fake: FakeDiscord, client: Recorder, guild_id: int) -> None:
    """/ping (registered by `running`) in the guild's first channel."""
    channel_id = fake.guild(guild_id).channel_ids[0]
    await fake.slash("ping", {}, guild_id=guild_id, channel_id=channel_id, user_id=fake.owner_id)


class Recorder(discord.AutoShardedClient):
    def __init__(self, **options: Any) -> None:
        super().__init__(intents=discord.Intents.none() | discord.Intents(guilds=True), **options)
        self.interactions: list[tuple[int | None, int | None]] = []  # (shard, guild)
        self.ready_event = asyncio.Event()
        self.interacted = asyncio.Event()

    async def on_ready(self) -> None:
        self.ready_event.set()

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        shard = interaction.guild.shard_id if interaction.guild is not None else None
        self.interactions.append((shard, interaction.guild_id))
        self.interacted.set()

    async def interactions_reach(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.interactions) < count:
                self.interacted.clear()
                await self.interacted.wait()


@contextlib.asynccontextmanager
async def running(client: Recorder, fake: FakeDiscord) -> AsyncIterator[Recorder]:
    # discord.py waits 2 s after the last GUILD_CREATE before on_ready; tests need not.
    client._connection.guild_ready_timeout = 0.05
    task = asyncio.create_task(client.start(fake.token))
    try:
        async with asyncio.timeout(10):
            await client.ready_event.wait()
        assert client.application_id is not None
        command = {"name": "ping", "description": "ping", "type": 1}
        await client.http.bulk_upsert_global_commands(client.application_id, [command])
        yield client
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def test_auto_sharding_follows_gateway_bot_and_routes_guilds() -> None:
    async with FakeDiscord(shards=2) as fake:
        on, _ = guilds_on_both_shards(fake)
        with fake.patch_discord_py():
            async with running(Recorder(), fake) as client:
                assert client.shard_count == 2
                identified = [
                    c.received[i]["d"]["shard"]
                    for c in fake.gateway_connections
                    for i, frame in enumerate(c.received)
                    if frame.get("op") == 2
                ]
                assert sorted(identified) == [[0, 2], [1, 2]]
                for shard, guild_id in on.items():
                    guild = client.get_guild(guild_id)
                    assert guild is not None
                    assert guild.shard_id == shard
                for guild_id in on.values():
                    await ping(fake, client, guild_id)
                await client.interactions_reach(2)
                assert sorted(client.interactions) == sorted(
                    (shard, guild_id) for shard, guild_id in on.items()
                )


async def test_a_process_with_one_shard_sees_only_its_guilds() -> None:
    async with FakeDiscord(shards=2) as fake:
        on, every = guilds_on_both_shards(fake)
        with fake.patch_discord_py():
            async with running(Recorder(shard_ids=[1], shard_count=2), fake) as client:
                assert {g.id for g in client.guilds} == {g for g in every if shard_of(g, 2) == 1}
                await ping(fake, client, on[0])
                await ping(fake, client, on[1])
                await client.interactions_reach(1)
                assert client.interactions == [(1, on[1])]  # shard 0's went nowhere here


async def identify_closes(fake: FakeDiscord, shard: Any) -> int | None:
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.gateway_url) as ws:
        hello = json.loads((await ws.receive(timeout=5)).data)
        assert hello["op"] == 10
        await ws.send_str(
            json.dumps({"op": 2, "d": {"token": fake.token, "intents": 1, "shard": shard}})
        )
        message = await ws.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        return ws.close_code


@pytest.mark.parametrize(("shard", "code"), [([2, 2], 4010), ([0, 0], 4010), ([0, 1], 4011)])
async def test_bad_or_too_few_shards_are_refused(shard: list[int], code: int) -> None:
    async with FakeDiscord(shards=2) as fake:
        assert await identify_closes(fake, shard) == code
