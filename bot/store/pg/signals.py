"""Messages to the process driving a job: a click that Discord sent to another process
(a voice owner's answer in a DM goes to shard 0's; a Cancel on a job resumed elsewhere
goes to the server's shard) is kept here, and the process holding the job's lease takes
it at its next look (about every second), as if the click had come to it. A message for a
job nobody holds now waits for whoever claims it."""

from __future__ import annotations

from .base import PgBase

_TAKE = (
    "DELETE FROM job_signals s USING jobs j WHERE s.job_id = j.id AND j.lease_owner = $1 "
    "RETURNING s.seq, s.job_id, s.kind, s.value"
)


class PgSignals(PgBase):
    """Mixed into `PostgresJobStore`."""

    async def signal_job(self, job_id: str, kind: str, value: str) -> None:
        await self._fetch(
            "INSERT INTO job_signals (job_id, kind, value, at) VALUES ($1, $2, $3, $4)",
            job_id,
            kind,
            value,
            self._clock(),
        )

    async def take_signals(self) -> list[tuple[str, str, str]]:
        """The messages for the jobs this process holds, oldest first, each taken once."""
        rows = await self._fetch(_TAKE, self.owner)
        return [(str(r[1]), str(r[2]), str(r[3])) for r in sorted(rows, key=lambda r: r[0])]
