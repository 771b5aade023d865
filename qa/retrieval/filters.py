"""Metadata filters as a request states them, compiled into the stores' ChunkFilter (qa.store.filters), which
each backend translates for itself: Chroma's `where`, the keyword index's query, the SQL store's WHERE."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from qa.errors import BadRequest
from qa.store.documents import day_number
from qa.store.filters import ChunkFilter


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

    def compiled(self) -> ChunkFilter | None:
        """The filter as the stores take it (each compiles it for its backend); None when it restricts nothing."""
        if not (self.source or self.published_from or self.published_to):
            return None
        return ChunkFilter(self.source.casefold() if self.source else None, self.day_from, self.day_to)
