"""A psycopg pool on QA_DATABASE_URL for the roles not yet on qa.db (conversations, feedback, jobs, ingest progress,
the shared key): a step of the move to one SQL layer, gone once they are. The schema is qa.db's (Alembic)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from qa.errors import StoreUnavailable
from qa.store.locks import UNAVAILABLE


class PostgresDatabase:
    """A connection pool on QA_DATABASE_URL."""

    def __init__(self, url: str, max_size: int = 16, timeout: float = 3.0) -> None:
        self.url = url
        self.pool = ConnectionPool(url, min_size=1, max_size=max_size, timeout=timeout, open=False,
                                   check=ConnectionPool.check_connection, kwargs={"connect_timeout": 3},
                                   name="qa-store")
        self.pool.open(wait=False)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; its block is one transaction (committed on leaving, rolled back on error)."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(UNAVAILABLE) from exc

    def shared_key(self, name: str) -> bytes:
        """A 32-byte random key every process on this database gets the same of (the first one makes it)."""
        with self.connection() as conn:
            conn.execute("INSERT INTO shared_keys VALUES (%s, %s) ON CONFLICT DO NOTHING",
                         (name, secrets.token_bytes(32)))
            row = conn.execute("SELECT value FROM shared_keys WHERE name=%s", (name,)).fetchone()
        return bytes(row[0])

    def close(self) -> None:
        self.pool.close()
