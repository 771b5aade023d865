"""Long-running ingests as jobs: started by one request, run on a thread, polled with GET /jobs/{id}.

Jobs live in a database of the SQL layer (qa.db): a small SQLite file in the data folder (any worker process on
that folder answers for any job), or PostgreSQL when QA_DATABASE_URL is set (any replica answers for any job). A
job whose process stopped (its heartbeat is older than STALE_SECONDS) is reported as failed instead of running
forever.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, func, select, update

from qa.db import Database
from qa.db.schema import jobs

STALE_SECONDS = 60.0
HEARTBEAT_SECONDS = 5.0


@dataclass(frozen=True)
class JobProgress:
    """How far a job is: items done, of `total` when known."""

    done: int
    total: int | None


@dataclass(frozen=True)
class Job:
    """A job as GET /jobs/{id} shows it; a running job whose process stopped reads as failed."""

    job_id: str
    kind: str
    status: str  # "running", "done" or "failed"
    created: str  # UTC, ISO 8601
    progress: JobProgress
    report: dict[str, Any] | None
    error: str | None


class Jobs(Protocol):
    """What the service asks of a job store (JobStore)."""

    def create(self, kind: str, total: int | None = None) -> str: ...
    def get(self, job_id: str) -> Job | None: ...
    def run(self, job_id: str, work: Callable[[Callable[[int, int | None], None]], dict[str, Any]],
            describe_error: Callable[[BaseException], str]) -> threading.Thread: ...


class JobStore:
    """Create, update and read jobs; run() executes one on a daemon thread. The `keep` most recent finished
    jobs are kept."""

    def __init__(self, database: Database, keep: int = 200) -> None:
        self.db = database
        self.keep = keep

    def _update(self, job_id: str, **values: Any) -> None:
        with self.db.write() as conn:
            conn.execute(update(jobs).where(jobs.c.job_id == job_id).values(**values))

    def create(self, kind: str, total: int | None = None) -> str:
        job_id = uuid.uuid4().hex
        now = time.time()
        old = select(jobs.c.job_id).where(jobs.c.status != "running").order_by(jobs.c.created.desc()) \
            .offset(self.keep).scalar_subquery()
        with self.db.write() as conn:
            conn.execute(jobs.insert().values(job_id=job_id, kind=kind, status="running", created=now, heartbeat=now,
                                              done=0, total=total))
            conn.execute(delete(jobs).where(jobs.c.job_id.in_(old)))
        return job_id

    def progress(self, job_id: str, done: int, total: int | None = None) -> None:
        self._update(job_id, done=done, total=func.coalesce(total, jobs.c.total), heartbeat=time.time())

    def finish(self, job_id: str, report: dict[str, Any] | None = None, error: str | None = None) -> None:
        self._update(job_id, status="failed" if error else "done",
                     report=json.dumps(report) if report is not None else None, error=error, heartbeat=time.time())

    def get(self, job_id: str) -> Job | None:
        with self.db.read() as conn:
            row = conn.execute(select(jobs).where(jobs.c.job_id == job_id)).first()
        if row is None:
            return None
        status, error = row.status, row.error
        if status == "running" and time.time() - row.heartbeat > STALE_SECONDS:
            status, error = "failed", "the server stopped while the job was running; run it again"
        return Job(row.job_id, row.kind, status, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row.created)),
                   JobProgress(row.done, row.total), json.loads(row.report) if row.report else None, error)

    def run(self, job_id: str, work: Callable[[Callable[[int, int | None], None]], dict[str, Any]],
            describe_error: Callable[[BaseException], str]) -> threading.Thread:
        """Run work(progress) on a thread; its return value is the job's report, an exception its error."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_SECONDS):
                try:
                    self._update(job_id, heartbeat=time.time())
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
