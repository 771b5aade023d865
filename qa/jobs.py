"""Long-running ingests as jobs: started by one request, run on a thread, polled with GET /jobs/{id}.

Jobs live in a small SQLite file in the data folder (any worker process on that folder answers for any job),
or in PostgreSQL when QA_DATABASE_URL is set (any replica answers for any job). A job whose process stopped
(its heartbeat is older than STALE_SECONDS) is reported as failed instead of running forever.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from qa.sqlite_local import ThreadLocalSQLite

STALE_SECONDS = 60.0
HEARTBEAT_SECONDS = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL,
  heartbeat REAL NOT NULL, done INTEGER NOT NULL DEFAULT 0, total INTEGER, report TEXT, error TEXT
)
"""  # PostgreSQL's is migration 2 in qa.store.postgres (DOUBLE PRECISION for REAL)


class Jobs(Protocol):
    """What the service asks of a job store (JobStore, PostgresJobStore)."""

    def create(self, kind: str, total: int | None = None) -> str: ...
    def get(self, job_id: str) -> dict[str, Any] | None: ...
    def run(self, job_id: str, work: Callable[[Callable[[int, int | None], None]], dict[str, Any]],
            describe_error: Callable[[BaseException], str]) -> threading.Thread: ...


class JobStore:
    """Create, update and read jobs in SQLite; run() executes one on a daemon thread. The SQL is written with
    `?` placeholders; PostgresJobStore runs the same statements through psycopg."""

    _prune = ("DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM jobs WHERE status != 'running' "
              "ORDER BY created DESC LIMIT -1 OFFSET ?)")

    def __init__(self, path: Path, keep: int = 200) -> None:
        self.path = path
        self.keep = keep
        self._db = ThreadLocalSQLite(path)
        self._db().execute(_SCHEMA)

    def _execute(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        return self._db().execute(sql, params).fetchall()

    def create(self, kind: str, total: int | None = None) -> str:
        job_id = uuid.uuid4().hex
        now = time.time()
        self._execute("INSERT INTO jobs (job_id, kind, status, created, heartbeat, total) "
                      "VALUES (?, ?, 'running', ?, ?, ?)", (job_id, kind, now, now, total))
        self._execute(self._prune, (self.keep,))
        return job_id

    def progress(self, job_id: str, done: int, total: int | None = None) -> None:
        self._execute("UPDATE jobs SET done = ?, total = COALESCE(?, total), heartbeat = ? WHERE job_id = ?",
                      (done, total, time.time(), job_id))

    def finish(self, job_id: str, report: dict[str, Any] | None = None, error: str | None = None) -> None:
        self._execute(
            "UPDATE jobs SET status = ?, report = ?, error = ?, heartbeat = ? WHERE job_id = ?",
            ("failed" if error else "done", json.dumps(report) if report is not None else None, error, time.time(),
             job_id),
        )

    def get(self, job_id: str) -> dict[str, Any] | None:
        rows = self._execute(
            "SELECT job_id, kind, status, created, heartbeat, done, total, report, error FROM jobs WHERE job_id = ?",
            (job_id,),
        )
        if not rows:
            return None
        row = rows[0]
        status, error = row[2], row[8]
        if status == "running" and time.time() - row[4] > STALE_SECONDS:
            status, error = "failed", "the server stopped while the job was running; run it again"
        return {
            "job_id": row[0], "kind": row[1], "status": status,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row[3])),
            "progress": {"done": row[5], "total": row[6]},
            "report": json.loads(row[7]) if row[7] else None, "error": error,
        }

    def run(self, job_id: str, work: Callable[[Callable[[int, int | None], None]], dict[str, Any]],
            describe_error: Callable[[BaseException], str]) -> threading.Thread:
        """Run work(progress) on a thread; its return value is the job's report, an exception its error."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_SECONDS):
                try:
                    self._execute("UPDATE jobs SET heartbeat = ? WHERE job_id = ?", (time.time(), job_id))
                except Exception:
                    continue

        def target() -> None:
            pulse = threading.Thread(target=beat, daemon=True, name=f"job-{job_id[:8]}-heartbeat")
            pulse.start()
            try:
                report = work(lambda done, total=None: self.progress(job_id, done, total))
                self.finish(job_id, report)
            except BaseException as exc:  # every failure ends the job with a message, never a silent thread
                self.finish(job_id, error=describe_error(exc))
            finally:
                stop.set()

        thread = threading.Thread(target=target, daemon=True, name=f"job-{job_id[:8]}")
        thread.start()
        return thread


class Connections(Protocol):
    """A connection whose block is one transaction (qa.store.postgres.PostgresDatabase)."""

    def connection(self) -> AbstractContextManager[Any]: ...


class PostgresJobStore(JobStore):
    """The jobs table in PostgreSQL (QA_DATABASE_URL): a job started through one replica is polled through any.
    The table is created by the database's migrations."""

    _prune = ("DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM jobs WHERE status != 'running' "
              "ORDER BY created DESC OFFSET ?)")

    def __init__(self, database: Connections, keep: int = 200) -> None:
        self.database = database
        self.keep = keep

    def _execute(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        with self.database.connection() as conn:
            cursor = conn.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []
