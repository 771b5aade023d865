"""Web sources: RSS/Atom feeds, sitemaps (and sitemap indexes) and single article URLs, fetched into pages."""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import delete, select

from qa.db import Database
from qa.db.schema import validators
from qa.sources.extract import Extracted, extract_html
from qa.sources.fetch import Fetched, Fetcher, FetchFailed, FetchRefused

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/feed+json")
XML_TYPES = ("application/xml", "text/xml")
HTML_TYPES = ("text/html", "application/xhtml+xml")
_TRACKING = re.compile(r"^(?:utm_\w+|fbclid|gclid|dclid|mc_cid|mc_eid|ocid|cmpid|icid|at_medium|at_campaign)$", re.I)
_SLUG_BAD = re.compile(r"[^a-z0-9]+")
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
log = logging.getLogger("qa.sources.web")


def normalize_url(url: str) -> str:
    """The URL an article is known by: lower-case scheme and host, no default port, no fragment, no tracking
    parameters (utm_*, fbclid, ...); other query parameters are kept in their order."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)])
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def web_doc_id(url: str) -> str:
    """A stable, readable document id for an article URL: `web:<host>:<slug>-<hash>`. File-based ids never hold
    a ':' (they keep only [A-Za-z0-9_.-]), so the two can never collide; the hash of the whole normalized URL
    keeps two pages with the same last path segment apart."""
    normalized = normalize_url(url)
    parts = urlsplit(normalized)
    host = (parts.hostname or "unknown").removeprefix("www.")
    segments = [s for s in parts.path.split("/") if s]
    last = re.sub(r"\.(?:s?html?|php|aspx?|jsp)$", "", segments[-1].lower()) if segments else "index"
    slug = _SLUG_BAD.sub("-", last).strip("-")[:60].strip("-") or "index"
    digest = hashlib.sha256(normalized.encode()).hexdigest()[:8]
    return f"web:{host}:{slug}-{digest}"


def _same_site(a: str, b: str) -> bool:
    host_a, host_b = (urlsplit(u).hostname or "" for u in (a, b))
    return host_a.removeprefix("www.") == host_b.removeprefix("www.")


@dataclass(frozen=True)
class EntryHint:
    """What a feed says about an entry, used where the page itself says nothing."""

    title: str | None = None
    published: date | None = None
    author: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class WebPage:
    """An article page fetched and extracted; `text` is trafilatura's text, before the shared cleaning."""

    doc_id: str
    url: str
    fetched_url: str
    title: str | None
    text: str
    author: str | None
    source: str | None
    published: date | None
    language: str | None
    etag: str | None = None
    last_modified: str | None = None
    asked_url: str | None = None  # the URL requested (before redirects): what the validators are kept under


@dataclass(frozen=True)
class WebUnchanged:
    """A page the server answered 304 Not Modified for."""

    url: str
    doc_id: str


@dataclass(frozen=True)
class WebFailure:
    """A URL that gave nothing to index, with the one-line reason."""

    url: str
    reason: str
    refused: bool = False


WebItem = WebPage | WebUnchanged | WebFailure


class ValidatorCache(Protocol):
    """Remembers each URL's ETag / Last-Modified (and a feed's entries) between runs."""

    def get(self, url: str) -> tuple[str | None, str | None, str | None, list[dict] | None] | None: ...

    def put(self, url: str, etag: str | None, last_modified: str | None, doc_id: str | None = None,
            entries: list[dict] | None = None) -> None: ...

    def forget_doc(self, doc_id: str) -> None: ...


class SqlValidatorCache:
    """ValidatorCache in the SQL layer (qa.db): a small SQLite file in the data folder (safe across processes:
    WAL, short writes), or the PostgreSQL database every replica shares."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def get(self, url: str) -> tuple[str | None, str | None, str | None, list[dict] | None] | None:
        with self.db.read() as conn:
            row = conn.execute(select(validators.c.etag, validators.c.last_modified, validators.c.doc_id,
                                      validators.c.entries).where(validators.c.url == url)).first()
        if row is None:
            return None
        return row[0], row[1], row[2], json.loads(row[3]) if row[3] else None

    def put(self, url: str, etag: str | None, last_modified: str | None, doc_id: str | None = None,
            entries: list[dict] | None = None) -> None:
        values = {"etag": etag, "last_modified": last_modified, "doc_id": doc_id,
                  "entries": json.dumps(entries) if entries is not None else None}
        upsert = self.db.insert(validators).values(url=url, **values)
        with self.db.write() as conn:
            conn.execute(upsert.on_conflict_do_update(index_elements=["url"], set_=values))

    def forget_doc(self, doc_id: str) -> None:
        with self.db.write() as conn:
            conn.execute(delete(validators).where(validators.c.doc_id == doc_id))

    def close(self) -> None:
        """Close the database's pooled connections (the service's shutdown)."""
        self.db.close()


def _kind(fetched: Fetched) -> str:
    """feed, sitemap, sitemapindex or html, from the content type and, for generic XML, the root element."""
    body = (fetched.body or b"")[:2048].lstrip()
    ctype = fetched.content_type
    if ctype in FEED_TYPES:
        return "feed"
    if ctype in HTML_TYPES and not body.startswith(b"<?xml"):
        return "html"
    if ctype in XML_TYPES or ctype in HTML_TYPES or ctype in ("text/plain", "application/octet-stream") or \
            body.startswith(b"<?xml"):
        head = body.lower()
        if b"<sitemapindex" in head:
            return "sitemapindex"
        if b"<urlset" in head:
            return "sitemap"
        if b"<rss" in head or b"<feed" in head or b"<rdf:rdf" in head:
            return "feed"
        if ctype in HTML_TYPES or b"<html" in head:
            return "html"
    raise FetchFailed(f"{fetched.url[:200]}: unsupported content type {ctype or 'unknown'} "
                      "(expected an HTML page, a feed or a sitemap)")


def _struct_date(value: object) -> date | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC).date()  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def parse_feed(fetched: Fetched) -> tuple[str | None, list[dict]]:
    """The feed's title and its entries as {url, title, published, author} (feedparser: RSS 0.9x-2.0, Atom,
    RDF), in feed order, without duplicate links."""
    import feedparser  # imported on first use, not when the service starts

    parsed = feedparser.parse(fetched.body or b"", response_headers={
        "content-type": f"{fetched.content_type}; charset={fetched.charset}" if fetched.charset
        else fetched.content_type, "content-location": fetched.final_url})
    if parsed.bozo and not parsed.entries:
        raise FetchFailed(f"{fetched.url[:200]}: not a readable feed ({type(parsed.bozo_exception).__name__})")
    title = " ".join(str(parsed.feed.get("title") or "").split()) or None
    entries, seen = [], set()
    for entry in parsed.entries:
        link = entry.get("link") or next((x.get("href") for x in entry.get("links", []) if x.get("href")), None)
        if not link or urlsplit(link).scheme not in ("http", "https") or link in seen:
            continue
        seen.add(link)
        published = _struct_date(entry.get("published_parsed") or entry.get("updated_parsed"))
        entries.append({
            "url": link, "title": " ".join(str(entry.get("title") or "").split()) or None,
            "published": published.isoformat() if published else None,
            "author": " ".join(str(entry.get("author") or "").split()) or None,
        })
    return title, entries


def parse_sitemap(fetched: Fetched, max_bytes: int) -> tuple[str, list[str]]:
    """("sitemap", page URLs) or ("sitemapindex", sitemap URLs); a gzipped sitemap (.xml.gz) is inflated, to
    at most max_bytes."""
    from lxml import etree

    body = fetched.body or b""
    if body[:2] == b"\x1f\x8b":
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = inflater.decompress(body, max_bytes)
        except zlib.error:
            raise FetchFailed(f"{fetched.url[:200]}: not a readable gzipped sitemap") from None
        if inflater.unconsumed_tail:
            raise FetchFailed(f"{fetched.url[:200]}: larger than the {max_bytes}-byte limit once inflated")
    try:
        # no entities, no DTD, no network: a sitemap cannot make the parser read files or URLs (XXE)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise FetchFailed(f"{fetched.url[:200]}: not a readable sitemap ({exc.msg})") from None
    kind = "sitemapindex" if etree.QName(root).localname == "sitemapindex" else "sitemap"
    child = "sitemap" if kind == "sitemapindex" else "url"
    urls = []
    for node in root.iter(f"{_SITEMAP_NS}{child}", child):
        loc = node.find(f"{_SITEMAP_NS}loc")
        if loc is None:
            loc = node.find("loc")
        if loc is not None and loc.text and urlsplit(loc.text.strip()).scheme in ("http", "https"):
            urls.append(loc.text.strip())
    return kind, list(dict.fromkeys(urls))


def _lacking(title: str | None, *names: str | None) -> bool:
    """A page title that is missing or only names the outlet (e.g. <title>Valley Courier</title>)."""
    if not title:
        return True
    return any(n and title.casefold() == n.casefold() for n in names)


def page_from(fetched: Fetched, extracted: Extracted, hint: EntryHint | None) -> WebPage:
    """A WebPage from a fetch and its extraction, with the feed's title/date/author where the page lacks them.
    The id comes from the page's canonical URL when it is on the same site (a cross-site canonical, as
    syndicated copies often carry, would make the copy replace the original), else from the fetched URL."""
    hint = hint or EntryHint()
    canonical = extracted.canonical_url
    url = canonical if canonical and urlsplit(canonical).scheme in ("http", "https") and \
        _same_site(canonical, fetched.final_url) else fetched.final_url
    url = normalize_url(url)
    source = extracted.site_name or hint.source or (urlsplit(url).hostname or "").removeprefix("www.")
    title = extracted.title
    if _lacking(title, extracted.site_name, hint.source) and hint.title:
        title = hint.title
    return WebPage(
        doc_id=web_doc_id(url), url=url, fetched_url=fetched.final_url, title=title, text=extracted.text,
        author=extracted.author or hint.author, source=source, published=extracted.published or hint.published,
        language=extracted.language, etag=fetched.etag, last_modified=fetched.last_modified,
    )


class WebSource:
    """Turns the URLs asked for into pages: feeds and sitemaps are expanded, then every article is fetched
    (conditionally when it was fetched before), `concurrency` at a time."""

    def __init__(self, fetcher: Fetcher, cache: ValidatorCache | None = None, concurrency: int = 8,
                 max_urls: int = 1000, known: Callable[[str], bool] | None = None, max_sitemaps: int = 50) -> None:
        self.fetcher = fetcher
        self.cache = cache
        self.concurrency = concurrency
        self.max_urls = max_urls
        self.max_sitemaps = max_sitemaps  # sitemaps read for one URL asked for (an index's, its indexes', ...)
        self._known = known or (lambda _doc_id: True)

    def check(self, urls: Iterable[str]) -> None:
        """Vet every URL asked for before anything is fetched: raises FetchRefused / FetchFailed for the first
        bad one (the CLI and the API refuse the whole request then)."""
        for url in urls:
            self.fetcher.check_url(url)

    def _validators(self, url: str) -> tuple[str | None, str | None, list[dict] | None]:
        cached = self.cache.get(url) if self.cache else None
        if not cached:
            return None, None, None
        etag, modified, doc_id, entries = cached
        if doc_id is not None and not self._known(doc_id):
            return None, None, None  # the article was deleted since: fetch it in full
        return etag, modified, entries

    def expand(self, url: str, depth: int = 0, budget: list[int] | None = None,
               ) -> Iterator[tuple[str, EntryHint | None, Fetched | None] | WebFailure]:
        """The article URLs behind one URL asked for: (url, feed hint, the fetch when it was already an article).
        `budget` counts the sitemaps a sitemap index may still have read for the URL asked for (max_sitemaps in
        all, empty ones included: an index of indexes of empty sitemaps must not cost thousands of fetches)."""
        budget = [self.max_sitemaps] if budget is None else budget
        etag, modified, entries = self._validators(url)
        try:
            fetched = self.fetcher.fetch(url, etag, modified)
        except (FetchRefused, FetchFailed) as exc:
            yield WebFailure(url, _reason(exc, url), isinstance(exc, FetchRefused))
            return
        if fetched.not_modified:
            if entries is not None:  # a feed or sitemap that has not changed: its entries, each re-checked
                for entry in entries[: self.max_urls]:
                    yield entry["url"], _hint(entry), None
            else:
                cached = self.cache.get(url) if self.cache else None
                yield WebUnchanged(url, (cached and cached[2]) or web_doc_id(url))  # type: ignore[misc]
            return
        try:
            kind = _kind(fetched)
            if kind == "feed":
                feed_title, entries = parse_feed(fetched)
                for entry in entries:
                    entry["source"] = feed_title
            elif kind in ("sitemap", "sitemapindex"):
                kind, locs = parse_sitemap(fetched, self.fetcher.policy.max_bytes)
                if kind == "sitemapindex":
                    if depth >= 2:
                        raise FetchFailed(f"{url[:200]}: sitemap indexes nested too deep")
                    count = 0
                    for i, sitemap_url in enumerate(locs):
                        if budget[0] <= 0:
                            yield WebFailure(url, f"lists more sitemaps than the {self.max_sitemaps} read for one "
                                                  f"URL (QA_FETCH_MAX_SITEMAPS); {len(locs) - i} not read")
                            return
                        budget[0] -= 1
                        for item in self.expand(sitemap_url, depth + 1, budget):
                            count += 1
                            if count > self.max_urls:
                                return
                            yield item
                    return  # an index is small: fetched in full every time, its sitemaps conditionally
                entries = [{"url": loc} for loc in locs]
            else:
                yield url, None, fetched
                return
        except FetchFailed as exc:
            yield WebFailure(url, _reason(exc, url))
            return
        if self.cache:
            self.cache.put(url, fetched.etag, fetched.last_modified, None, entries)
        for entry in entries[: self.max_urls]:
            yield entry["url"], _hint(entry), None

    def _article(self, url: str, hint: EntryHint | None, fetched: Fetched | None) -> WebItem:
        try:
            if fetched is None:
                etag, modified, _ = self._validators(url)
                fetched = self.fetcher.fetch(url, etag, modified)
                if fetched.not_modified:
                    cached = self.cache.get(url) if self.cache else None
                    return WebUnchanged(url, (cached and cached[2]) or web_doc_id(url))  # type: ignore[arg-type]
                if _kind(fetched) != "html":
                    raise FetchFailed(f"{url[:200]}: a feed entry that is not an HTML page")
            extracted = extract_html(fetched.text(), fetched.final_url)
            if extracted is None:
                raise FetchFailed(f"{url[:200]}: no article text found in the page")
            page = page_from(fetched, extracted, hint)
            return WebPage(**{**page.__dict__, "asked_url": url})
        except (FetchRefused, FetchFailed) as exc:
            return WebFailure(url, _reason(exc, url), isinstance(exc, FetchRefused))
        except Exception:  # a bug met by one hostile page must not cost the batch its other articles
            log.exception("reading %s failed", url[:200])
            return WebFailure(url, "internal error while reading the page")

    def expand_all(self, urls: Iterable[str]) -> tuple[list[WebItem], list[tuple[str, EntryHint | None,
                                                                            Fetched | None]]]:
        """Feeds and sitemaps read: (what is already known per URL: failures and 304s, the articles to fetch),
        each article once even when several feeds list it."""
        known: list[WebItem] = []
        targets: list[tuple[str, EntryHint | None, Fetched | None]] = []
        seen: set[str] = set()
        for url in urls:
            for item in self.expand(url):
                if isinstance(item, WebFailure | WebUnchanged):
                    known.append(item)
                    continue
                key = normalize_url(item[0])
                if key not in seen:
                    seen.add(key)
                    targets.append(item)
        return known, targets

    def fetch_all(self, targets: list[tuple[str, EntryHint | None, Fetched | None]]) -> Iterator[WebItem]:
        """Each article fetched and extracted, `concurrency` at a time, yielded in the order given."""
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency), thread_name_prefix="fetch") as pool:
            yield from pool.map(lambda t: self._article(*t), targets)

    def collect(self, urls: Iterable[str]) -> Iterator[WebItem]:
        """Every article behind the URLs: a WebPage, a WebUnchanged (304) or a WebFailure each."""
        known, targets = self.expand_all(urls)
        yield from known
        yield from self.fetch_all(targets)

    def remember(self, page: WebPage, doc_id: str | None = None) -> None:
        """Record a page's validators once it is safely indexed (so a crash never leaves a 304 for a page that was
        not stored); `doc_id` is the article it is recorded under (the kept one, for a syndicated copy)."""
        if self.cache:
            self.cache.put(page.asked_url or page.fetched_url, page.etag, page.last_modified, doc_id or page.doc_id)


def _hint(entry: dict) -> EntryHint:
    published = None
    if entry.get("published"):
        try:
            published = date.fromisoformat(entry["published"])
        except ValueError:
            published = None
    return EntryHint(entry.get("title"), published, entry.get("author"), entry.get("source"))


def _reason(exc: Exception, url: str) -> str:
    """The message without the URL it starts with (the report line already names the URL)."""
    message = str(exc)
    shown = url[:200]
    return message[len(shown) + 2 :] if message.startswith(shown + ": ") else message
