"""The PostgreSQL job store (`DATABASE_URL=postgresql://…`): the same `Store` interface
and guarantees as the SQLite one, for one process or several sharing the database."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..changes import JobChanges
from ..transitions import Transitions
from .budget import PgBudget
from .jobs import PgJobs
from .leases import PgLeases
from .policy import PgPolicy
from .provenance import PgProvenance
from .replays import PgReplays
from .result_cache import PgResultCache
from .signals import PgSignals
from .status import PgStatus
from .voices import PgVoices


class PostgresJobStore(
    JobChanges,
    PgJobs,
    PgLeases,
    PgPolicy,
    PgReplays,
    PgResultCache,
    PgProvenance,
    PgStatus,
    PgVoices,
    PgBudget,
    PgSignals,
):
    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        keep_text: bool = False,
        lease_seconds: float = 30.0,
        shards: tuple[int, tuple[int, ...]] = (1, ()),
    ) -> None:
        super().__init__(url, clock=clock, lease_seconds=lease_seconds, shards=shards)
        self._machine = Transitions(keep_text=keep_text)
        self._updates = {}
