"""Turn the bytes of an article file into clean, citable text with metadata and a stable id.

Shared by every source (files, uploads, web); imports only qa.errors, qa.lexicon, qa.sources.article and
qa.sources.extract (trafilatura, for HTML).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from pathlib import Path

from qa.errors import BadDocument
from qa.lexicon import DATE_PATTERN, WEEKDAY_WORD_PATTERN, parse_date
from qa.sources.article import Article
from qa.sources.extract import extract_html
from qa.sources.sanitize import URL_MAX_CHARS, neutralise_citations, normalise, one_line, refuse_nul

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm")

_DATE_LINE = re.compile(
    rf"^(?:{WEEKDAY_WORD_PATTERN},? )?(?:{DATE_PATTERN})(?: \d{{1,2}}:\d{{2}}(?: ?[AP]M)?)?$", re.I
)
_BREAKING = re.compile(r"^breaking news:?$", re.I)
_READ_MORE = re.compile(r"^(?:read more|also read|related):", re.I)
_PHOTO_LABEL = re.compile(r"^(?:photo|image|picture)\s*:", re.I)
# "Name/Getty Images", "Reuters photo/AFP/Pool" at the end of a line. Searched only in the line's last
# CREDIT_TAIL characters, with possessive repeats: the old pattern (a run of words, then the agency) was tried
# from every word and took seconds on a 40 KB line while holding the GIL (issue 12).
_CREDIT_TAIL = re.compile(
    r"(?<=[\w.'-])/(?:Getty Images|AFP|Reuters|TASS|AP|EPA|Sputnik)(?:/[\w .-]++)*+\s*+$", re.I
)
CREDIT_TAIL = 200
_BYLINE = re.compile(rf"^By [A-Za-z][\w .&'-]{{1,60}}(?:{DATE_PATTERN})?$")
_ICON_WORD = re.compile(r"icon", re.I)
_SAFE_ID = re.compile(r"[^\w.-]+")  # Unicode letters and digits stay: 北京-2017 and 上海-2017 are two ids


def _is_icon_junk(line: str) -> bool:
    words = line.split()
    return len(words) >= 8 and len(_ICON_WORD.findall(line)) >= 5


def _is_photo_credit(line: str) -> bool:
    """A photo label ("Photo: ...") or a credit ending the line after a word ("Karim Sahib/AFP")."""
    if _PHOTO_LABEL.match(line):
        return True
    match = _CREDIT_TAIL.search(line, max(0, len(line) - CREDIT_TAIL))
    if match is None:
        return False
    before = line[max(0, match.start() - 60) : match.start()]
    run = re.search(r"[\w.'-]+$", before)
    return run is not None and re.search(r"\w", run.group(0)) is not None


_PLAIN_PUNCTUATION = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-"})


def _paragraph_key(paragraph: str) -> str:
    text = unicodedata.normalize("NFKC", paragraph).casefold()
    text = text.translate(_PLAIN_PUNCTUATION)
    return re.sub(r"\W+", " ", text).strip()


def clean_text(raw: str) -> tuple[str, list[str], date | None]:
    """Drop boilerplate lines and repeated paragraphs; return (text, removed lines, dateline date)."""
    raw = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    lines = [line.replace("\u00a0", " ").strip() for line in raw.split("\n")]
    following = [""] * len(lines)  # the next non-empty line after each (computed once: linear in the lines)
    for i in range(len(lines) - 2, -1, -1):
        following[i] = lines[i + 1] or following[i + 1]
    kept: list[str] = []
    removed: list[str] = []
    seen: set[str] = set()
    dateline: date | None = None
    for i, line in enumerate(lines):
        if not line:
            continue
        next_line = following[i]
        drop = (
            _is_icon_junk(line)
            or _BREAKING.match(line)
            or _READ_MORE.match(line)
            or _is_photo_credit(line)
            or _BYLINE.match(line)
        )
        if not drop and _DATE_LINE.match(line):
            drop = True
            if not _BREAKING.match(next_line) and dateline is None:  # a site header's date is the scrape date
                dateline = parse_date(line)
        if drop:
            removed.append(line)
            continue
        key = _paragraph_key(line)
        if key in seen:
            removed.append(line)
            continue
        seen.add(key)
        kept.append(line)
    return "\n\n".join(kept), removed, dateline


def safe_doc_id(name: str) -> str:
    """A doc id from a file name (NFC): its stem with anything but letters, digits, '_', '.' and '-' replaced."""
    stem = unicodedata.normalize("NFC", Path(name.replace("\\", "/")).name)
    for suffix in SUPPORTED_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    doc_id = _SAFE_ID.sub("-", stem).strip("-.")[:128]
    if not doc_id:
        raise BadDocument(name, "file name gives no usable document id")
    return doc_id


def refuse_unsupported(name: str, data: bytes = b"") -> None:
    """One type rule for files, folders and uploads: a supported suffix, and never a PDF (said as such, not as
    "binary", whatever its name)."""
    kinds = ", ".join(SUPPORTED_SUFFIXES)
    if data.startswith(b"%PDF-") or Path(name).suffix.lower() == ".pdf":
        raise BadDocument(name, f"PDF is not supported (save the text as {kinds})")
    if Path(name.replace("\\", "/")).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise BadDocument(name, f"unsupported type (use {kinds})")


def decode(name: str, data: bytes) -> str:
    """Bytes to text, refusing binary and non-UTF-8 content with a clear reason."""
    if not data.strip():
        raise BadDocument(name, "file is empty")
    if data.startswith(b"%PDF-"):
        raise BadDocument(name, f"PDF is not supported (save the text as {', '.join(SUPPORTED_SUFFIXES)})")
    refuse_nul(name, data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadDocument(name, f"not valid UTF-8 (byte {exc.start})") from None
    controls = sum(1 for ch in text[:8192] if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t")
    if controls > 0.05 * min(len(text), 8192):
        raise BadDocument(name, "file looks binary (many control characters)")
    return normalise(text)


def _one_line(value: object, max_chars: int = 500) -> str:
    """Whitespace (newlines included) collapsed: a title is one line wherever it is shown or quoted, and
    never carries a bracketed number that could pass for a citation."""
    return one_line(value, max_chars)


_META_FIELDS = ("id", "title", "source", "author", "url", "published")


def checked_meta(name: str, meta: object) -> dict:
    """A manifest entry's values checked one file at a time (BadDocument names the bad field): strings only,
    the id normalised like a file-derived id (letters, digits, '_', '.', '-'; never ':' or '/', at most 128),
    outlet and author one neutralised line of at most 200 characters, the URL one http(s) line or none."""
    if not isinstance(meta, dict):
        return {}
    for key in _META_FIELDS:
        value = meta.get(key)
        if value is not None and not isinstance(value, str):
            raise BadDocument(name, f"manifest: '{key}' must be a string, not {type(value).__name__}")
    out = dict(meta)
    if meta.get("id") is not None:
        doc_id = unicodedata.normalize("NFC", meta["id"])
        cleaned = _SAFE_ID.sub("-", doc_id).strip("-.")
        if not cleaned:
            raise BadDocument(name, "manifest: 'id' gives no usable document id")
        if len(cleaned) > 128:
            raise BadDocument(name, "manifest: 'id' is longer than 128 characters")
        out["id"] = cleaned
    for key in ("source", "author"):
        if meta.get(key) is not None:
            out[key] = one_line(meta[key]) or None
    if meta.get("url"):  # kept only as one http(s) URL (the page links nothing else either)
        url = " ".join(meta["url"].split())
        ok = url.lower().startswith(("http://", "https://")) and len(url) <= URL_MAX_CHARS and " " not in url
        out["url"] = url if ok else None
    return out


def parse_article(name: str, data: bytes, meta: dict | None = None, doc_id: str | None = None) -> Article:
    """Decode, clean and describe one article; raises BadDocument with the reason it cannot be used. An HTML file
    goes through trafilatura first (main text and the page's metadata; the manifest's metadata wins)."""
    meta = checked_meta(name, meta)
    raw = decode(name, data)
    page = None
    if name.lower().endswith((".html", ".htm")):
        page = extract_html(raw, meta.get("url"))
        if page is None:
            raise BadDocument(name, "no article text found in the page")
        raw = page.text
    text, removed, dateline = clean_text(normalise(raw))
    text = neutralise_citations(text)
    if not text:
        raise BadDocument(name, "no article text left after cleaning")
    first_line = text.split("\n", 1)[0].lstrip("# ").strip()
    title = _one_line(meta.get("title")) or _one_line(page and page.title) or _one_line(first_line[:200])
    published = parse_date(str(meta["published"])) if meta.get("published") else (page and page.published) or dateline
    return Article(
        doc_id=doc_id or meta.get("id") or safe_doc_id(name),
        title=title,
        text=text,
        source=meta.get("source") or one_line(page and page.site_name) or None,
        published=published,
        url=meta.get("url") or one_line(page and page.canonical_url, URL_MAX_CHARS) or None,
        path=name,
        removed=tuple(removed),
        author=meta.get("author") or one_line(page and page.author) or None,
    )
