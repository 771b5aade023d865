"""Where each store keeps its files inside QA_DATA_DIR: the one place that knows the data-folder layout."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataLayout:
    """Paths of the embedded stores; server-mode stores (a Chroma server) keep nothing here."""

    root: Path

    @property
    def chroma(self) -> Path:
        return self.root / "chroma"

    @property
    def documents(self) -> Path:
        return self.root / "docstore.sqlite"

    @property
    def keyword_index(self) -> Path:
        """The tantivy keyword index, derived from the SQL store (rebuilt from it when missing)."""
        return self.root / "keyword-index"

    def replica_keyword_index(self, database_url: str) -> Path:
        """This replica's keyword index of a PostgreSQL database (one folder per database, named by a hash of
        its URL): a cache rebuilt from the database whenever it is missing."""
        return self.root / "keyword-index-pg" / hashlib.sha256(database_url.encode()).hexdigest()[:16]

    @property
    def conversations(self) -> Path:
        return self.root / "conversations.sqlite"

    @property
    def web_cache(self) -> Path:
        """ETag / Last-Modified of every fetched URL, and the entries of every feed read."""
        return self.root / "web.sqlite"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs.sqlite"

    @property
    def ingest_lock(self) -> Path:
        return self.root / "ingest.lock"

    def free_bytes(self) -> int:
        """Space left on the data folder's volume (what /health reports as full when it runs out)."""
        try:
            return shutil.disk_usage(self.root).free
        except OSError:
            return 0

    def create(self) -> DataLayout:
        self.root.mkdir(parents=True, exist_ok=True)
        return self
