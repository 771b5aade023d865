"""Articles uploaded over HTTP: each file's name gives its document id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from qa.errors import BadDocument
from qa.sources.article import Article
from qa.sources.cleaning import parse_article, refuse_unsupported, safe_doc_id
from qa.sources.lifecycle import LocalSource, in_process


def parse_upload(filename: str, data: bytes, meta: dict | None) -> Article | tuple[str, str]:
    """One upload parsed, or the (name, reason) it cannot be used for: plain values, so it can run in a worker
    process and come back pickled (BadDocument's own constructor does not survive pickling)."""
    try:
        return parse_article(filename, data, meta)
    except BadDocument as exc:
        return exc.name, exc.reason


@dataclass
class UploadSource(LocalSource):
    """Uploaded (file name, bytes) pairs, with optional metadata keyed by file name or document id."""

    files: list[tuple[str, bytes]]
    max_bytes: int
    meta: dict[str, dict] = field(default_factory=dict)
    name: str = "uploads"
    run: Callable[..., Any] = in_process  # where parsing runs (bind() gives the server's CPU worker process)

    def count(self) -> int:
        return len(self.files)

    def articles(self) -> Iterator[Article | BadDocument]:
        for filename, data in self.files:
            try:
                if len(data) > self.max_bytes:
                    raise BadDocument(filename, f"larger than the {self.max_bytes}-byte limit")
                doc_id = safe_doc_id(filename)
                refuse_unsupported(filename, data)
                parsed = self.run(parse_upload, filename, data, self.meta.get(filename) or self.meta.get(doc_id))
                yield BadDocument(*parsed) if isinstance(parsed, tuple) else parsed
            except BadDocument as exc:
                yield exc
