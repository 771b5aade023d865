"""Which chunks may answer, by their article's metadata, compiled once per backend: Chroma's `where` (to_chroma),
a test of a chunk's Chroma metadata in Python (matches: a filtered query answered from the unfiltered nearest
chunks), a WHERE over the SQL store's chunks table (to_sql) and the keyword index's own query (qa.store.keyword).
One rule for all of them: an undated article never matches a date bound."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, and_


@dataclass(frozen=True)
class ChunkFilter:
    """Lower-cased source, published day bounds (yyyymmdd, 0 = no bound), as the indexer writes them in each
    chunk's row (`source_key`, `day`) and Chroma metadata (`source`, `published_day`)."""

    source_key: str | None = None
    day_from: int = 0
    day_to: int = 0

    def to_chroma(self) -> dict | None:
        """Chroma's `where` over the chunk metadata the indexer writes."""
        clauses: list[dict] = []
        if self.source_key is not None:
            clauses.append({"source": self.source_key})
        if self.day_from:
            clauses.append({"published_day": {"$gte": self.day_from}})
        if self.day_to:
            clauses.append({"published_day": {"$lte": self.day_to}})
            clauses.append({"published_day": {"$gt": 0}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def matches(self, meta: Mapping[str, Any] | None) -> bool:
        """Whether a chunk with this Chroma metadata passes (as Chroma would decide: a missing field or a value
        of another type never matches)."""
        if not meta:
            return False
        if self.source_key is not None and meta.get("source") != self.source_key:
            return False
        if self.day_from or self.day_to:
            day = meta.get("published_day")
            if not isinstance(day, int) or isinstance(day, bool):
                return False
            if day < self.day_from or (self.day_to and not 0 < day <= self.day_to):
                return False
        return True

    def to_sql(self, chunks: Table) -> ColumnElement[bool] | None:
        """A WHERE clause over the SQL store's chunks table."""
        clauses: list[ColumnElement[bool]] = []
        if self.source_key is not None:
            clauses.append(chunks.c.source_key == self.source_key)
        if self.day_from:
            clauses.append(chunks.c.day >= self.day_from)
        if self.day_to:
            clauses.extend([chunks.c.day <= self.day_to, chunks.c.day > 0])
        return and_(*clauses) if clauses else None
