"""The Article record every source produces and every later stage reads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class Article:
    """A cleaned article: `text` is what citations quote, character for character.

    `dedupe` marks an article (from the web) that is recorded as a copy of an indexed article instead of being
    indexed when its body is a near-duplicate of it (a syndicated story)."""

    doc_id: str
    title: str
    text: str
    source: str | None = None
    published: date | None = None
    url: str | None = None
    path: str | None = None
    removed: tuple[str, ...] = field(default=(), compare=False)
    author: str | None = None
    dedupe: bool = field(default=False, compare=False)

    @property
    def content_hash(self) -> str:
        """Hash of everything that ends up in the index, so a change in any of it re-indexes (the author only
        when there is one, so articles without one keep the hash they had before authors were stored)."""
        fields = [self.title, self.source, self.published and self.published.isoformat(), self.url]
        if self.author:
            fields.append(self.author)
        return hashlib.sha256(f"{json.dumps(fields)}\n{self.text}".encode()).hexdigest()


@dataclass(frozen=True)
class Unchanged:
    """An input a source knows is unchanged without reading it again (a web page answered 304 Not Modified)."""

    doc_id: str
    name: str
