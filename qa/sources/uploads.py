"""Articles uploaded over HTTP: each file's name gives its document id."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from qa.errors import BadDocument
from qa.sources.article import Article
from qa.sources.cleaning import parse_article, safe_doc_id


@dataclass
class UploadSource:
    """Uploaded (file name, bytes) pairs, with optional metadata keyed by file name or document id."""

    files: list[tuple[str, bytes]]
    max_bytes: int
    meta: dict[str, dict] = field(default_factory=dict)
    name: str = "uploads"

    def count(self) -> int:
        return len(self.files)

    def articles(self) -> Iterator[Article | BadDocument]:
        for filename, data in self.files:
            try:
                if len(data) > self.max_bytes:
                    raise BadDocument(filename, f"larger than the {self.max_bytes}-byte limit")
                doc_id = safe_doc_id(filename)
                yield parse_article(filename, data, self.meta.get(filename) or self.meta.get(doc_id))
            except BadDocument as exc:
                yield exc
