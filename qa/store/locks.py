"""The writer lock of the embedded store: an fcntl lock on a file in the data folder (the PostgreSQL store's
is an advisory lock in the database, qa.store.postgres.AdvisoryLock)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
