"""Stage 1, sources: where articles come from (files and folders, uploads, the web). Each source yields
Articles, or the BadDocument that says why one input could not be used, so one bad input never stops a batch
(the web source also yields Unchanged for a page its server answered 304 Not Modified for).

May import: qa.errors, qa.lexicon, qa.config, qa.db. Nothing from store, indexing, retrieval or answering.
Adding a source = a module here with a class that follows `Source`, and a line in SOURCE_TYPES.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from qa.config import Settings
from qa.errors import BadDocument
from qa.sources.article import Article, Unchanged
from qa.sources.files import FileSource
from qa.sources.uploads import UploadSource
from qa.sources.urls import UrlSource, is_url, open_urls

__all__ = ["SOURCE_TYPES", "Article", "FileSource", "Source", "SourceType", "UploadSource", "UrlSource",
           "open_targets"]


class Source(Protocol):
    """A batch of inputs to ingest."""

    name: str

    def count(self) -> int:
        """How many inputs articles() will yield (a progress bar's total)."""
        ...

    def articles(self) -> Iterator[Article | BadDocument | Unchanged]:
        """Each input as an Article, or the BadDocument saying why it cannot be used."""
        ...


@dataclass(frozen=True)
class SourceType:
    """A kind of command-line target: which targets it takes, and how to open them as one Source."""

    name: str
    claims: Callable[[str], bool]
    open: Callable[[Sequence[str], Settings], Source]


def _open_files(targets: Sequence[str], settings: Settings) -> Source:
    return FileSource([Path(t) for t in targets], settings.max_upload_bytes)


# The first type that claims a target opens it; files take whatever no other type claims.
SOURCE_TYPES: list[SourceType] = [
    SourceType("web", is_url, open_urls),  # feeds, sitemaps and article pages (qa.sources.urls)
    SourceType("files", lambda _target: True, _open_files),
]


def open_targets(targets: Sequence[str], settings: Settings) -> list[Source]:
    """Group command-line targets by the source type that claims them, in SOURCE_TYPES order."""
    grouped: dict[str, list[str]] = {}
    types = {t.name: t for t in SOURCE_TYPES}
    for target in targets:
        kind = next(t for t in SOURCE_TYPES if t.claims(target))
        grouped.setdefault(kind.name, []).append(target)
    return [types[name].open(group, settings) for name, group in grouped.items()]
