"""Articles from URLs (feeds, sitemaps, pages): the Source behind `qa ingest URL` and POST /documents/ingest-url."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from qa.errors import BadDocument
from qa.sources.article import Article, Unchanged
from qa.sources.cleaning import clean_text
from qa.sources.web import WebFailure, WebPage, WebSource, WebUnchanged


def is_url(target: str) -> bool:
    """A command-line target that names a URL rather than a file (anything with a scheme, so that
    `ftp://...` or `file://...` reach the URL source and are refused there, instead of being looked up as files)."""
    head, sep, _ = target.partition("://")
    return bool(sep) and head.isascii() and head.replace("+", "").replace("-", "").replace(".", "").isalnum()


def page_article(page: WebPage) -> Article:
    """A fetched page as an Article: trafilatura's text through the shared cleaning; the title falls back to the
    first line, as for files."""
    text, removed, dateline = clean_text(page.text)
    if not text:
        raise BadDocument(page.url, "no article text left after cleaning")
    title = page.title or " ".join(text.split("\n", 1)[0].split())[:200]
    return Article(
        doc_id=page.doc_id, title=title, text=text, source=page.source, published=page.published or dateline,
        url=page.url, author=page.author, removed=tuple(removed),
    )


@dataclass
class UrlSource:
    """The URLs asked for, expanded (feeds and sitemaps into their articles) when first counted."""

    urls: Sequence[str]
    web: WebSource
    name: str = "web"
    pages: dict[str, WebPage] = field(default_factory=dict)  # doc id -> page, for the validators after ingest
    lines: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (url, doc id, failure)
    _expanded: tuple[list, list] | None = None

    def check(self) -> None:
        """Refuse the whole batch (FetchRefused / FetchFailed) if any URL asked for is not allowed."""
        self.web.check(self.urls)

    def _expand(self) -> tuple[list, list]:
        if self._expanded is None:
            self._expanded = self.web.expand_all(self.urls)
        return self._expanded

    def count(self) -> int:
        early, targets = self._expand()
        return len(early) + len(targets)

    def articles(self) -> Iterator[Article | BadDocument | Unchanged]:
        early, targets = self._expand()
        for item in [*early, *self.web.fetch_all(targets)]:
            if isinstance(item, WebFailure):
                self.lines.append((item.url, None, item.reason))
                yield BadDocument(item.url, item.reason)
            elif isinstance(item, WebUnchanged):
                self.lines.append((item.url, item.doc_id, None))
                yield Unchanged(item.doc_id, item.url)
            else:
                try:
                    article = page_article(item)
                except BadDocument as exc:
                    self.lines.append((item.url, None, exc.reason))
                    yield exc
                    continue
                self.pages[article.doc_id] = item
                self.lines.append((item.url, article.doc_id, None))
                yield article

    def remember(self, kept: dict[str, str], indexed: set[str]) -> None:
        """After the ingest: keep the validators of every page that is now safely indexed (`indexed` doc ids)
        or recorded as a copy (`kept`: copy doc id -> the kept article's id)."""
        for doc_id, page in self.pages.items():
            if doc_id in kept:
                self.web.remember(page, kept[doc_id])
            elif doc_id in indexed:
                self.web.remember(page)
