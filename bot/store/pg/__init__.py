"""The job store on PostgreSQL (asyncpg), selected by `DATABASE_URL`; see store.py."""

from __future__ import annotations

from .store import PostgresJobStore

__all__ = ["PostgresJobStore"]
