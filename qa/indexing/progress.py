"""How far the running ingest is, so every worker's /health can show it (an upload answers only when it is
done; a 2 MB article takes minutes): one row in the SQL layer (qa.db: the data folder's documents file, or
PostgreSQL when QA_DATABASE_URL is set, so every replica's /health shows an ingest running on any of them).

The row counts only while the writer lock is held: an ingest killed mid-way (`kill -9`) releases the lock with
its process (a file lock) or its session (an advisory lock), and its row stops showing."""

from __future__ import annotations

import time
from typing import Any, Protocol

from sqlalchemy import delete, select

from qa.db import Database
from qa.db.schema import ingest_progress
from qa.store import WriterLock

FIELDS = ("document", "done", "total", "started", "updated")


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


class IngestProgress:
    """Written by the ingest holding the writer lock, read by anyone; cleared when it ends."""

    def __init__(self, database: Database, lock: WriterLock, min_interval: float = 0.2) -> None:
        self.db = database
        self.lock = lock
        self._throttle = _Throttle(min_interval)
        self._started = 0.0

    def start(self) -> None:
        self._started = time.time()
        self._throttle = _Throttle(self._throttle.min_interval)

    def update(self, document: str, done: int, total: int, force: bool = False) -> None:
        """Texts embedded so far for the group holding `document`; written at most every `min_interval` s."""
        if not self._throttle.due(force):
            return
        values = {"document": document, "done": done, "total": total, "started": round(self._started, 3),
                  "updated": round(time.time(), 3)}
        upsert = self.db.insert(ingest_progress).values(id=1, **values)
        with self.db.write() as conn:
            conn.execute(upsert.on_conflict_do_update(index_elements=["id"], set_=values))

    def clear(self) -> None:
        with self.db.write() as conn:
            conn.execute(delete(ingest_progress))

    def read(self) -> dict[str, Any] | None:
        """The running ingest's progress (in any process on these stores), or None (no ingest, or its holder
        is gone)."""
        with self.db.read() as conn:
            row = conn.execute(select(*(ingest_progress.c[name] for name in FIELDS))).first()
            if row is None or not self.lock.held(conn):
                return None
        return dict(zip(FIELDS, row, strict=True))


class Progress(Protocol):
    """What the indexer asks of the progress record (IngestProgress)."""

    def start(self) -> None: ...
    def update(self, document: str, done: int, total: int, force: bool = False) -> None: ...
    def clear(self) -> None: ...
    def read(self) -> dict[str, Any] | None: ...
