"""Job leases: which of the bot processes sharing the database drives each open job.

A job belongs to the process that accepted it (`add` writes its lease) or that claimed it
(`claim_unfinished`, at start-up and every third of a lease from then on). The owner renews
its leases while it runs and hands them back when it stops; a process killed or cut off
stops renewing, and once its leases run out another process claims its jobs and resumes
them (polling and delivering through Discord's REST API work from any process). Claims
skip rows another claimer has locked (`FOR UPDATE SKIP LOCKED`), so no job is claimed
twice. A process takes the jobs of its own shards' servers as soon as their lease ends,
and other servers' jobs only a lease later: a restarted process gets its own jobs back,
and the clicks on them (which Discord sends to the server's shard) reach the process
driving them. Every transition requires the lease (`_transition`), so a process that lost
a job to another cannot submit it again or deliver it a second time.

Lease times are the database's clock, which every process shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..models import JobRecord, StoreError
from ..records import SELECT, from_row
from .base import PgBase
from .order import INSERTED

log = logging.getLogger(__name__)

NOW = "extract(epoch from clock_timestamp())"
_OPEN = "ARRAY['accepted', 'submitted', 'completed', 'delivering', 'failed']"
# $1 owner, $2 lease seconds, $3 this process's shards ('{}': all of them), $4 shard count.
_OWN_SHARD = "(cardinality($3::int[]) = 0 OR (COALESCE(guild_id, 0) >> 22) % $4 = ANY($3::int[]))"
# The rows are picked and locked first (SKIP LOCKED: another claimer's are passed over;
# one committed meanwhile is re-checked and no longer matches), then updated: inside an
# `UPDATE … WHERE id IN (…)` the pick could be re-run against rows another claimer took.
_CLAIM = (
    f"WITH picked AS (SELECT id FROM jobs WHERE state = ANY({_OPEN}) "
    "AND lease_owner IS DISTINCT FROM $1 AND (lease_until IS NULL OR lease_until < "
    f"{NOW} - CASE WHEN {_OWN_SHARD} THEN 0 ELSE $2::float8 END) FOR UPDATE SKIP LOCKED), "
    f"claimed AS (UPDATE jobs SET lease_owner = $1, lease_until = {NOW} + $2::float8 "
    "FROM picked WHERE jobs.id = picked.id RETURNING jobs.id) "
    f"SELECT {SELECT} FROM jobs WHERE id IN (SELECT id FROM claimed) "
    f"ORDER BY created_at, {INSERTED}"
)
_RENEW = (
    f"UPDATE jobs SET lease_until = {NOW} + $2::float8 "
    f"WHERE lease_owner = $1 AND state = ANY({_OPEN})"
)
# Handed back as just ended (not cleared): the grace for other shards' processes holds.
_RELEASE = f"UPDATE jobs SET lease_owner = NULL, lease_until = {NOW} WHERE lease_owner = $1"


class PgLeases(PgBase):
    """Mixed into `PostgresJobStore`: claims, renews and hands back its process's leases."""

    _renewer: asyncio.Task[None] | None = None

    async def claim_unfinished(self) -> list[JobRecord]:
        shard_count, shard_ids = self.shards
        rows = await self._fetch(
            _CLAIM, self.owner, self.lease_seconds, list(shard_ids), shard_count
        )
        if rows:
            log.info("Claimed %d unfinished job(s) no running process drives", len(rows))
        return [from_row(row) for row in rows]

    async def _opened(self) -> None:
        self._renewer = asyncio.create_task(self._renew_forever(), name="job-leases")

    async def _closing(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        with contextlib.suppress(StoreError):  # unreturned, they run out by themselves
            await self._fetch(_RELEASE, self.owner)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self._fetch(_RENEW, self.owner, self.lease_seconds)
            except StoreError as exc:  # `problem()` tells the watchdog if it lasts
                log.warning("Could not renew this process's job leases: %s", exc)
