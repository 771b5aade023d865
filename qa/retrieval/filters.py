"""Metadata filters, and their one translation per backend: Chroma `where`, the keyword index's filter and the
SQL store's WHERE."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from qa.errors import BadRequest
from qa.store import SqlFilter
from qa.store.documents import day_number
from qa.store.keyword import KeywordFilter


@dataclass(frozen=True)
class Filters:
    """Metadata restrictions on which articles may answer."""

    source: str | None = None
    published_from: date | None = None
    published_to: date | None = None

    def __post_init__(self) -> None:
        if self.published_from and self.published_to and self.published_from > self.published_to:
            raise BadRequest("filters.published_from is after filters.published_to")

    @property
    def day_from(self) -> int:
        return day_number(self.published_from.isoformat()) if self.published_from else 0

    @property
    def day_to(self) -> int:
        return day_number(self.published_to.isoformat()) if self.published_to else 0


def chroma_where(filters: Filters) -> dict | None:
    """The filter as a Chroma `where` clause over the chunk metadata the indexer writes."""
    clauses: list[dict] = []
    if filters.source:
        clauses.append({"source": filters.source.casefold()})
    if filters.published_from:
        clauses.append({"published_day": {"$gte": filters.day_from}})
    if filters.published_to:
        clauses.append({"published_day": {"$lte": filters.day_to}})
        clauses.append({"published_day": {"$gt": 0}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def keyword_filter(filters: Filters) -> KeywordFilter | None:
    """The filter as the keyword index applies it inside the engine (same rules as Chroma's)."""
    if not (filters.source or filters.published_from or filters.published_to):
        return None
    return KeywordFilter(filters.source.casefold() if filters.source else None, filters.day_from, filters.day_to)


def sql_where(filters: Filters) -> SqlFilter | None:
    """The filter as a WHERE fragment over the SQL store's chunks table `c` (an undated article never
    matches a date bound, as in Chroma)."""
    clauses: list[str] = []
    params: list[object] = []
    if filters.source:
        clauses.append("c.source_key = ?")
        params.append(filters.source.casefold())
    if filters.published_from:
        clauses.append("c.day >= ?")
        params.append(filters.day_from)
    if filters.published_to:
        clauses.append("c.day <= ? AND c.day > 0")
        params.append(filters.day_to)
    return (" AND ".join(clauses), params) if clauses else None
