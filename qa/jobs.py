"""Long-running ingests as jobs: started by one request, run on a thread, polled with GET /jobs/{id}.

Jobs live in a small SQLite file in the data folder, so any worker process answers for any job. A job whose
process stopped (its heartbeat is older than STALE_SECONDS) is reported as failed instead of running forever.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qa.sqlite_local import ThreadLocalSQLite

STALE_SECONDS = 60.0
HEARTBEAT_SECONDS = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL,
  heartbeat REAL NOT NULL, done INTEGER NOT NULL DEFAULT 0, total INTEGER, report TEXT, error TEXT
)
"""


class JobStore:
    """Create, update and read jobs; run() executes one on a daemon thread."""

    def __init__(self, path: Path, keep: int = 200) -> None:
        self.path = path
        self.keep = keep
        self._db = ThreadLocalSQLite(path)
        with self._db() as db:
            db.execute(_SCHEMA)

    def create(self, kind: str, total: int | None = None) -> str:
        job_id = uuid.uuid4().hex
        now = time.time()
        db = self._db()
        db.execute("INSERT INTO jobs (job_id, kind, status, created, heartbeat, total) "
                   "VALUES (?, ?, 'running', ?, ?, ?)", (job_id, kind, now, now, total))
        db.execute("DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM jobs WHERE status != 'running' "
                   "ORDER BY created DESC LIMIT -1 OFFSET ?)", (self.keep,))
        return job_id

    def progress(self, job_id: str, done: int, total: int | None = None) -> None:
        self._db().execute("UPDATE jobs SET done = ?, total = COALESCE(?, total), heartbeat = ? WHERE job_id = ?",
                                (done, total, time.time(), job_id))

    def finish(self, job_id: str, report: dict[str, Any] | None = None, error: str | None = None) -> None:
        self._db().execute(
            "UPDATE jobs SET status = ?, report = ?, error = ?, heartbeat = ? WHERE job_id = ?",
            ("failed" if error else "done", json.dumps(report) if report is not None else None, error, time.time(),
             job_id),
        )

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self._db().execute(
            "SELECT job_id, kind, status, created, heartbeat, done, total, report, error FROM jobs WHERE job_id = ?",
            (job_id,),
        ).fetchone()
        if row is None:
            return None
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
                self._db().execute("UPDATE jobs SET heartbeat = ? WHERE job_id = ?", (time.time(), job_id))

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
