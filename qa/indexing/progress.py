"""How far the running ingest is, so every worker's /health can show it (an upload answers only when it is
done; a 2 MB article takes minutes): a small file in the data folder, or a row in PostgreSQL when
QA_DATABASE_URL is set, so every replica's /health shows an ingest running on any of them."""

from __future__ import annotations

import json
import os
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

FIELDS = ("document", "done", "total", "started", "updated")


class IngestProgress(Protocol):
    """Written by the ingest holding the writer lock, read by anyone (FileProgress, PostgresProgress)."""

    def start(self) -> None: ...
    def update(self, document: str, done: int, total: int, force: bool = False) -> None: ...
    def clear(self) -> None: ...
    def read(self) -> dict[str, Any] | None: ...


class _Throttle:
    """At most one write every `min_interval` seconds, unless forced."""

    def __init__(self, min_interval: float) -> None:
        self.min_interval = min_interval
        self._last = 0.0

    def due(self, force: bool) -> bool:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return False
        self._last = now
        return True


class _ThrottledProgress:
    """start() and the throttled update() both progress stores share; subclasses say how to `_write`."""

    def __init__(self, min_interval: float) -> None:
        self._throttle = _Throttle(min_interval)
        self._started = 0.0

    def start(self) -> None:
        self._started = time.time()
        self._throttle = _Throttle(self._throttle.min_interval)

    def update(self, document: str, done: int, total: int, force: bool = False) -> None:
        """Texts embedded so far for the group holding `document`; written at most every `min_interval` s."""
        if self._throttle.due(force):
            self._write(document, done, total)

    def _write(self, document: str, done: int, total: int) -> None:
        raise NotImplementedError


class FileProgress(_ThrottledProgress):
    """Written by the ingest holding the writer lock (atomic replace), read by anyone; cleared when it ends."""

    def __init__(self, path: Path, min_interval: float = 0.2) -> None:
        super().__init__(min_interval)
        self.path = path

    def _write(self, document: str, done: int, total: int) -> None:
        state = {"document": document, "done": done, "total": total, "pid": os.getpid(),
                 "started": round(self._started, 3), "updated": round(time.time(), 3)}
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temp.write_text(json.dumps(state))
        os.replace(temp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def read(self) -> dict[str, Any] | None:
        """The running ingest's progress, or None (no ingest, or its process is gone)."""
        try:
            state = json.loads(self.path.read_text())
            os.kill(int(state["pid"]), 0)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return {k: state[k] for k in FIELDS if k in state}


class Connections(Protocol):
    """A connection whose block is one transaction (qa.store.postgres.PostgresDatabase)."""

    def connection(self) -> AbstractContextManager[Any]: ...


class PostgresProgress(_ThrottledProgress):
    """One row in PostgreSQL (table ingest_progress, made by the migrations), written by the ingest holding the
    writer lock on any replica. It counts only while that advisory lock is held: a replica killed mid-ingest
    loses the lock with its session, and its row stops showing (as a dead pid does for FileProgress)."""

    def __init__(self, database: Connections, lock_key: int, min_interval: float = 0.2) -> None:
        super().__init__(min_interval)
        self.database = database
        self.lock_key = lock_key

    def _write(self, document: str, done: int, total: int) -> None:
        with self.database.connection() as conn:
            conn.execute(
                "INSERT INTO ingest_progress (id, document, done, total, started, updated)"
                " VALUES (1, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET document=EXCLUDED.document,"
                " done=EXCLUDED.done, total=EXCLUDED.total, started=EXCLUDED.started, updated=EXCLUDED.updated",
                (document, done, total, round(self._started, 3), round(time.time(), 3)),
            )

    def clear(self) -> None:
        with self.database.connection() as conn:
            conn.execute("DELETE FROM ingest_progress")

    def read(self) -> dict[str, Any] | None:
        """The running ingest's progress (on any replica), or None (no ingest, or its holder is gone)."""
        with self.database.connection() as conn:
            row = conn.execute(
                "SELECT document, done, total, started, updated FROM ingest_progress WHERE EXISTS (SELECT 1"
                " FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s::bigint::oid"
                " AND objid = %s::bigint::oid AND objsubid = 1 AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database()))",
                (self.lock_key >> 32, self.lock_key & 0xFFFFFFFF),
            ).fetchone()
        return dict(zip(FIELDS, row, strict=True)) if row else None
