"""Shared fixtures: the loopback fake Segmind and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import aiohttp
import pytest

from bot.segmind.budget import RequestBudget
from bot.segmind.client import SegmindClient
from bot.segmind.retry import RetryPolicy
from tests.fakes.segmind import FAKE_API_KEY, FakeSegmind
from tests.proc import reap
from tests.store_backends import (  # noqa: F401 - the store tests' backends
    make_store,
    pg_database,
    pg_server,
    store_backend,
)

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, max_total=5.0)

MakeClient = Callable[..., SegmindClient]


@pytest.fixture(autouse=True)
def _reap_bot_processes() -> Iterator[None]:
    yield
    reap()


@pytest.fixture
async def fake_segmind() -> AsyncIterator[FakeSegmind]:
    async with FakeSegmind() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def make_client(fake_segmind: FakeSegmind, http: aiohttp.ClientSession) -> MakeClient:
    def make(**overrides: object) -> SegmindClient:
        options: dict[str, object] = {
            "api_key": FAKE_API_KEY,
            "workflow_url": fake_segmind.workflow_url,
            "budget": RequestBudget(0),
            "retry": FAST_RETRY,
        }
        options.update(overrides)
        return SegmindClient(http, **options)  # type: ignore[arg-type]

    return make
