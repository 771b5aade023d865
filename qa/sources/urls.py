"""Articles from URLs (feeds, sitemaps, pages): the Source behind `qa ingest URL` and POST /documents/ingest-url."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from qa.config import Settings
from qa.db import sqlite_file
from qa.db.schema import VALIDATORS
from qa.errors import BadDocument
from qa.sources.article import Article, Unchanged
from qa.sources.cleaning import clean_text
from qa.sources.fetch import Fetcher, FetchFailed, FetchPolicy, InvalidUrl
from qa.sources.lifecycle import InputLine, Landed, SourceContext
from qa.sources.sanitize import one_line
from qa.sources.web import (
    SqlValidatorCache,
    WebFailure,
    WebPage,
    WebSource,
    WebUnchanged,
)

VALIDATORS_FILE = "web.sqlite"  # in the data folder: ETag / Last-Modified per URL, a feed's entries


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
    title = one_line(page.title or text.split("\n", 1)[0], 500 if page.title else 200)
    return Article(
        doc_id=page.doc_id, title=title, text=text, source=one_line(page.source) or None,
        published=page.published or dateline, url=page.url, author=one_line(page.author) or None,
        removed=tuple(removed), dedupe=True,
    )


def fetch_policy(settings: Settings) -> FetchPolicy:
    """The fetch limits from settings (the size cap is the upload cap, QA_MAX_UPLOAD_BYTES)."""
    return FetchPolicy(
        max_bytes=settings.max_upload_bytes, allow_private=settings.fetch_allow_private,
        connect_timeout=settings.fetch_connect_timeout, read_timeout=settings.fetch_timeout,
        total_timeout=settings.fetch_total_timeout, per_host=settings.fetch_per_host,
    )


@dataclass(frozen=True)
class UrlLine:
    """One line of the report per URL: what became of it."""

    url: str
    doc_id: str | None
    reason: str | None = None
    same_as: str | None = None  # another URL of this batch that is the same article (same canonical URL)


class UrlSource:
    """The URLs asked for: article pages, RSS/Atom feeds and sitemaps (a URL's kind is known only once it is
    fetched: qa.sources.web reads feeds and sitemaps into their articles, when first counted). `check` needs only
    the settings; `bind` gives it the process's shared Fetcher, the validator cache in the data folder and the
    store's "is this article indexed" (a 304 for a deleted article must not count as unchanged)."""

    name = "web"
    remote = True

    def __init__(self, urls: Sequence[str], settings: Settings) -> None:
        self.urls = list(urls)
        self.settings = settings
        self.fetcher = Fetcher(fetch_policy(settings))  # replaced by the shared one in bind()
        self.web: WebSource | None = None
        self.pages: dict[str, WebPage] = {}  # doc id -> page, for the validators after the ingest
        self.lines: list[UrlLine] = []
        self._expanded: tuple[list, list] | None = None

    def check(self) -> None:
        """Refuse the whole batch if any URL asked for is not a URL (InvalidUrl, 400) or may not be fetched
        (FetchRefused, 403); a URL that merely fails (an unknown host) is reported on its own line later."""
        for url in self.urls:
            try:
                self.fetcher.check_url(url)
            except InvalidUrl:
                raise
            except FetchFailed:
                continue

    def bind(self, context: SourceContext) -> None:
        if self.web is not None:
            return
        self.fetcher.close()
        self.fetcher = context.shared("web.fetcher", lambda: Fetcher(fetch_policy(self.settings)))
        cache = context.shared("web.validators", lambda: context.validators() if context.validators else
                               SqlValidatorCache(sqlite_file(context.state_dir / VALIDATORS_FILE, VALIDATORS)))
        self.web = WebSource(self.fetcher, cache, self.settings.fetch_concurrency, self.settings.fetch_max_urls,
                             context.known, self.settings.fetch_max_sitemaps)

    def _expand(self) -> tuple[list, list]:
        if self.web is None:
            raise RuntimeError("UrlSource used before bind()")
        if self._expanded is None:
            self._expanded = self.web.expand_all(self.urls)
        return self._expanded

    def count(self) -> int:
        early, targets = self._expand()
        return len(early) + len(targets)

    def articles(self) -> Iterator[Article | BadDocument | Unchanged]:
        early, targets = self._expand()
        assert self.web is not None
        first_url: dict[str, str] = {}
        for item in [*early, *self.web.fetch_all(targets)]:
            if isinstance(item, WebFailure):
                self.lines.append(UrlLine(item.url, None, item.reason))
                yield BadDocument(item.url, item.reason)
            elif isinstance(item, WebUnchanged):
                self.lines.append(UrlLine(item.url, item.doc_id))
                yield Unchanged(item.doc_id, item.url)
            else:
                try:
                    article = page_article(item)
                except BadDocument as exc:
                    self.lines.append(UrlLine(item.asked_url or item.url, None, exc.reason))
                    yield exc
                    continue
                asked = item.asked_url or item.url
                if article.doc_id in first_url:  # two URLs, one article (a redirect, a tracking parameter)
                    self.lines.append(UrlLine(asked, article.doc_id, same_as=first_url[article.doc_id]))
                    continue
                first_url[article.doc_id] = asked
                self.pages[article.doc_id] = item
                self.lines.append(UrlLine(asked, article.doc_id))
                yield article

    def remember(self, landed: Landed) -> None:
        """After the ingest: keep the validators of every page that is now safely indexed or recorded as a copy
        (under the kept article's id), so a crash never leaves a 304 for a page that was not stored."""
        if self.web is None:
            return
        for doc_id, page in self.pages.items():
            if doc_id in landed.copies:
                self.web.remember(page, landed.copies[doc_id])
            elif doc_id in landed.indexed:
                self.web.remember(page)

    def report(self, landed: Landed) -> list[InputLine]:
        """One line per URL: added, replaced, unchanged (a 304, or another URL of the batch for the same
        article), duplicate (a copy of an indexed article) or failed with the reason."""
        out = []
        for line in self.lines:
            status, error = "failed", line.reason
            if line.same_as is not None:
                status, error = "unchanged", None
            elif line.reason is None and line.doc_id is not None:
                status = ("duplicate" if line.doc_id in landed.copies else "added" if line.doc_id in landed.added
                          else "replaced" if line.doc_id in landed.replaced
                          else "unchanged" if line.doc_id in landed.indexed else "failed")
                error = None if status != "failed" else landed.failed.get(line.url, "not indexed")
            out.append(InputLine(line.url, status, line.doc_id, error,
                                 landed.copies.get(line.doc_id or "") or line.same_as))
        return out

    def close(self) -> None:
        """The fetcher made before bind() (the shared Fetcher and validator cache stay open for the process)."""
        if self.web is None:
            self.fetcher.close()


def open_urls(targets: Sequence[str], settings: Settings) -> UrlSource:
    """Command-line targets that are URLs as one UrlSource."""
    return UrlSource(targets, settings)
