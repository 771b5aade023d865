"""One SQLite connection per thread for the data folder's SQLite files (docstore, conversations, jobs, fetch
validators), so each file's settings are stated once and every thread can close its own.

The standard library's sqlite3 connections may not be shared between threads mid-transaction, and no
maintained library offers just this (SQLAlchemy's pool would bring a whole engine), hence these few lines."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class ThreadLocalSQLite:
    """Callable returning the calling thread's connection to `path`: WAL (readers never wait for the writer),
    autocommit (callers own their transactions), synchronous=NORMAL (durable across crashes, no fsync per
    commit), rows as sqlite3.Row when `rows` is set."""

    def __init__(self, path: Path, *, rows: bool = False) -> None:
        self.path = path
        self.rows = rows
        self._local = threading.local()

    def __call__(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if self.rows:
                conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def close_thread(self) -> None:
        """Close the calling thread's connection (a worker thread about to end: its own would linger until GC)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()
