"""`/healthz`: is this bot doing its job? Four checks, each cheap and bounded in time."""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING

from ..store import Store, StoreError
from .metrics import Metrics

if TYPE_CHECKING:
    from ..bot import VoiceCloneBot

STORE_READ_TIMEOUT = 2.0  # seconds; the Docker check itself gives up after 3
# Segmind counts as down only when requests have failed for this long with none working
# in between, and still fail: a fresh or idle bot, which sends nothing, stays healthy.
SEGMIND_FAILING_FOR = 300.0
PROBE_ID = "healthz-probe"  # no job has this id: the read finds nothing, cheaply

Check = dict[str, object]


def gateway(bot: VoiceCloneBot) -> Check:
    shards = bot.shards
    down = sorted(shard_id for shard_id, shard in shards.items() if shard.is_closed())
    connected = not bot.is_closed() and bot.is_ready() and bool(shards) and not down
    latency = bot.latency
    check: Check = {
        "ok": connected,
        "ready": bot.is_ready(),
        "latency_s": round(latency, 3) if math.isfinite(latency) else None,
    }
    if len(shards) > 1 or down:
        check["shards"] = len(shards)
        check["shards_down"] = down
    return check


async def store_answers(store: Store) -> Check:
    try:
        await asyncio.wait_for(store.get(PROBE_ID), STORE_READ_TIMEOUT)
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {STORE_READ_TIMEOUT:g} s"}
    except StoreError as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def writer(store: Store) -> Check:
    problem = store.problem()
    return {"ok": True} if problem is None else {"ok": False, "error": problem}


def segmind(metrics: Metrics, now: float | None = None) -> Check:
    now = time.time() if now is None else now
    since, last = metrics.failing_since, metrics.last_failure
    failing = (
        since is not None
        and last is not None
        and now - since >= SEGMIND_FAILING_FOR
        and now - last < SEGMIND_FAILING_FOR
    )
    success = metrics.last_success
    return {
        "ok": not failing,
        "last_success_s_ago": None if success is None else round(now - success, 1),
        "failing_for_s": None if since is None else round(now - since, 1),
    }


async def health(bot: VoiceCloneBot) -> tuple[bool, dict[str, Check]]:
    """(healthy, each check's findings); never raises for an unhealthy part."""
    checks = {
        "gateway": gateway(bot),
        "store": await store_answers(bot.store),
        "writer": writer(bot.store),
        "segmind": segmind(bot.metrics),
    }
    return all(c["ok"] for c in checks.values()), checks
