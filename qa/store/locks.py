"""The locks, the one part of the SQL layer that stays dialect-specific: an fcntl lock on a file in the data folder
for the embedded stores, a session advisory lock for PostgreSQL. The writer lock (one ingest or delete at a
time) and the fill turn (one process at a time embeds the spans stored without vectors)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

from qa.errors import StoreUnavailable

if TYPE_CHECKING:
    from qa.db import Database

INGEST_LOCK = 7_161_760_002  # advisory lock keys: arbitrary, fixed, used by nothing else
FILL_LOCK = 7_161_760_003
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

    def held(self, _conn: Connection | None = None) -> bool:
        """Whether a writer (in any process, this one included) holds the lock now."""
        try:
            with open(self.path) as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(handle, fcntl.LOCK_UN)
        except FileNotFoundError:
            pass
        return False


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

    def held(self, conn: Connection) -> bool:
        """Whether a session (of any replica) holds the lock now, asked on a connection to the same database."""
        return bool(conn.execute(text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = CAST(:high AS bigint)::oid AND objid = CAST(:low AS bigint)::oid AND objsubid = 1"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"),
            {"high": self.key >> 32, "low": self.key & 0xFFFFFFFF}).scalar())


@contextmanager
def fill_turn(database: Database) -> Iterator[bool]:
    """Whether this process may fill span vectors now (True while the block runs), never waiting: a file lock
    beside the SQLite file, or a session advisory lock on PostgreSQL (released with the session if it dies)."""
    if not database.is_postgres:
        with open(f"{database.engine.url.database}.fill-lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with database.engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": FILL_LOCK}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                with suppress(Exception):  # the session is gone, and the lock with it
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": FILL_LOCK})
                    conn.commit()
