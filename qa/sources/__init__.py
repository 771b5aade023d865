"""Stage 1, sources: where articles come from (files and folders, uploads, the web: article pages, RSS/Atom
feeds, sitemaps). Each source yields Articles, or the BadDocument that says why one input could not be used,
so one bad input never stops a batch (the web source also yields Unchanged for a page its server answered 304
Not Modified for). Every source type follows one lifecycle (`Source`, qa/sources/lifecycle.py: check, bind,
count, articles, remember, report, close), so the service and the CLI never ask which type a source is.

May import: qa.errors, qa.lexicon, qa.config, qa.db. Nothing from store, indexing, retrieval or answering.
Adding a source = a module here with a class that follows `Source` (LocalSource gives the defaults for inputs
that are here), and a line in SOURCE_TYPES for the command-line targets it claims.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qa.config import Settings
from qa.sources.article import Article, Unchanged
from qa.sources.files import FileSource, open_files
from qa.sources.lifecycle import InputLine, Landed, LocalSource, Source, SourceContext
from qa.sources.uploads import UploadSource
from qa.sources.urls import UrlSource, is_url, open_urls

__all__ = ["SOURCE_TYPES", "Article", "FileSource", "InputLine", "Landed", "LocalSource", "Source",
           "SourceContext", "SourceType", "Unchanged", "UploadSource", "UrlSource", "open_targets"]


@dataclass(frozen=True)
class SourceType:
    """A kind of command-line target: which targets it takes, and how to open them as one Source."""

    name: str
    claims: Callable[[str], bool]
    open: Callable[[Sequence[str], Settings], Source]


# The first type that claims a target opens it; files take whatever no other type claims.
SOURCE_TYPES: list[SourceType] = [
    SourceType("web", is_url, open_urls),  # article pages, feeds and sitemaps (qa.sources.urls)
    SourceType("files", lambda _target: True, open_files),
]


def open_targets(targets: Sequence[str], settings: Settings) -> list[Source]:
    """Group command-line targets by the source type that claims them, in SOURCE_TYPES order."""
    grouped: dict[str, list[str]] = {}
    types = {t.name: t for t in SOURCE_TYPES}
    for target in targets:
        kind = next(t for t in SOURCE_TYPES if t.claims(target))
        grouped.setdefault(kind.name, []).append(target)
    return [types[name].open(group, settings) for name, group in grouped.items()]
