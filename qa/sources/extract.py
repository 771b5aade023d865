"""Article text and metadata from an HTML page with trafilatura (the main text only: no menus, banners or comments)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

# Only dates the page's markup states (meta tags, JSON-LD, <time>, the URL): htmldate's extensive search guesses
# from any year in the body text ("in February 2024" became 2024-01-01 on a fixture page).
_DATE_PARAMS = {"extensive_search": False, "original_date": True}
# Fewer words of main text than this is a page without an article (a bare menu, an empty shell). A page with a
# sentence or two is kept: short articles exist, and on a page with hardly any text trafilatura's fallbacks
# return what is left, furniture included (a cookie notice and menu come out as "We use cookies ... Home News").
MIN_WORDS = 5
_LANG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
# trafilatura's work grows with the square of a page's elements on pages of many tiny paragraphs (`<p>word <b>x</b>
# <i>y</i></p>` x n: 3,000 elements 0.5 s, 15,000 elements 4.3 s, 195,000 (1.9 MB) minutes). Real article pages
# have a few hundred to a few thousand elements; past this many, a linear reading of the <p> text stands in.
MAX_ELEMENTS = 6000


@dataclass(frozen=True)
class Extracted:
    """What trafilatura found in one page; None where the page does not say."""

    text: str
    title: str | None
    author: str | None
    site_name: str | None
    published: date | None
    canonical_url: str | None
    language: str | None


def _declared_language(tree: object) -> str | None:
    """The language the page declares (<html lang>, else og:locale): trafilatura 2.x only reports a language
    through its optional language detector, and the declared one is the better answer when a page has it."""
    for xpath in ("/html/@lang", "/html/@xml:lang", "//meta[@property='og:locale']/@content",
                  "//meta[@http-equiv='content-language']/@content"):
        try:
            values = tree.xpath(xpath)  # type: ignore[attr-defined]
        except Exception:  # an xpath on a namespaced attribute the parser did not keep
            continue
        for value in values:
            value = str(value).strip()
            if _LANG.match(value):
                return value.replace("_", "-")
    return None


def _published(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


def _clean(value: str | None) -> str | None:
    value = " ".join(str(value or "").split())
    return value or None


def extract_html(html: str | bytes, url: str | None = None) -> Extracted | None:
    """Main text (paragraphs on their own lines) and metadata of a page; None when no article text is found."""
    import trafilatura  # imported on first use (~0.4 s), not when the service starts
    from trafilatura.utils import load_html

    tree = load_html(html)
    if tree is None:
        return None
    language = _declared_language(tree)
    if any(i >= MAX_ELEMENTS for i, _ in enumerate(tree.iter())):
        return _plain(tree, language)
    doc = trafilatura.bare_extraction(
        tree, url=url, with_metadata=True, include_comments=False, include_tables=True,
        include_images=False, include_links=False, deduplicate=False, date_extraction_params=_DATE_PARAMS,
    )
    if doc is None or len((doc.text or "").split()) < MIN_WORDS:
        return None
    site_name = _clean(doc.sitename)
    hosts = {str(h).casefold().split(":")[0].removeprefix("www.") for h in (doc.hostname, url and urlsplit(url).netloc)
             if h}
    if site_name and site_name.casefold().split(":")[0].removeprefix("www.") in hosts:
        site_name = None  # trafilatura falls back to the host name when the page names no site
    return Extracted(
        text=doc.text,
        title=_clean(doc.title),
        author=_clean(doc.author),
        site_name=site_name,
        published=_published(doc.date),
        canonical_url=_clean(doc.url),
        language=language or _clean(doc.language),
    )


def _first(tree: object, *xpaths: str) -> str | None:
    for xpath in xpaths:
        for value in tree.xpath(xpath):  # type: ignore[attr-defined]
            if _clean(value):
                return _clean(value)
    return None


def _plain(tree: object, language: str | None) -> Extracted | None:
    """A page too large for trafilatura's time: its paragraphs' text and the head's title, site name and
    canonical URL, read in one pass (linear in the page's size)."""
    paragraphs = [" ".join(p.text_content().split()) for p in tree.iter("p")]  # type: ignore[attr-defined]
    text = "\n".join(p for p in paragraphs if p)
    if len(text.split()) < MIN_WORDS:
        return None
    return Extracted(
        text=text,
        title=_first(tree, "//meta[@property='og:title']/@content", "//title/text()", "//h1//text()"),
        author=_first(tree, "//meta[@name='author']/@content"),
        site_name=_first(tree, "//meta[@property='og:site_name']/@content"),
        published=_published(_first(tree, "//meta[@property='article:published_time']/@content")),
        canonical_url=_first(tree, "//link[@rel='canonical']/@href"),
        language=language,
    )
