"""The Article record every source produces and every later stage reads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class Article:
    """A cleaned article: `text` is what citations quote, character for character."""

    doc_id: str
    title: str
    text: str
    source: str | None = None
    published: date | None = None
    url: str | None = None
    path: str | None = None
    removed: tuple[str, ...] = field(default=(), compare=False)

    @property
    def content_hash(self) -> str:
        """Hash of everything that ends up in the index, so a change in any of it re-indexes."""
        meta = json.dumps([self.title, self.source, self.published and self.published.isoformat(), self.url])
        return hashlib.sha256(f"{meta}\n{self.text}".encode()).hexdigest()
