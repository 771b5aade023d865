"""The writer lock, the one part of the SQL layer that stays dialect-specific: an fcntl lock on a file in the data
folder for the embedded stores, a session advisory lock for PostgreSQL."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from qa.errors import StoreUnavailable

INGEST_LOCK = 7_161_760_002  # the advisory lock key: arbitrary, fixed, used by nothing else
UNAVAILABLE = "document store unavailable: the PostgreSQL server (QA_DATABASE_URL) does not answer"


class FileLock:
    """One writer at a time across threads and worker processes that share one data folder."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def hold(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class AdvisoryLock:
    """The writer lock in the database: a session advisory lock on a connection of its own, so every API
    process on every host takes turns; a holder that dies releases it with its session."""

    def __init__(self, url: str, key: int = INGEST_LOCK) -> None:
        self.url = url
        self.key = key

    @contextmanager
    def hold(self) -> Iterator[None]:
        import psycopg

        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(UNAVAILABLE) from exc
        with conn:
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (self.key,))
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(UNAVAILABLE) from exc
            try:
                yield
            finally:
                with suppress(psycopg.Error):  # the session is gone, and the lock with it
                    conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
