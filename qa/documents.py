"""Turn article files into clean, citable text with metadata and a stable id."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from qa.errors import BadDocument

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm")
MANIFEST_NAME = "manifest.json"

_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
_MONTH_WORD = rf"(?:{_MONTHS})[a-z]*\.?"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE_PATTERNS = (
    rf"{_DAY} {_MONTH_WORD},? \d{{4}}",  # 11 Apr, 2017 / 3rd February 2023
    rf"{_MONTH_WORD} {_DAY},? \d{{4}}",  # April 12, 2017
)
_DATE_RE = re.compile("|".join(f"(?:{p})" for p in _DATE_PATTERNS))
_WEEKDAY = r"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day,? "
_DATE_LINE = re.compile(rf"^(?:{_WEEKDAY})?(?:{_DATE_RE.pattern})(?: \d{{1,2}}:\d{{2}}(?: ?[AP]M)?)?$", re.I)
_BREAKING = re.compile(r"^breaking news:?$", re.I)
_READ_MORE = re.compile(r"^(?:read more|also read|related):", re.I)
_PHOTO_CREDIT = re.compile(
    r"^(?:photo|image|picture)\s*:|\b[\w.'-]+(?: [\w.'-]+)*/(?:Getty Images|AFP|Reuters|TASS|AP|EPA|Sputnik)"
    r"(?:/[\w .-]+)*\s*$",
    re.I,
)
_BYLINE = re.compile(rf"^By [A-Za-z][\w .&'-]{{1,60}}(?:{_DATE_RE.pattern})?$")
_ICON_WORD = re.compile(r"icon", re.I)
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")


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


def _is_icon_junk(line: str) -> bool:
    words = line.split()
    return len(words) >= 8 and len(_ICON_WORD.findall(line)) >= 5


def _paragraph_key(paragraph: str) -> str:
    text = unicodedata.normalize("NFKC", paragraph).casefold()
    text = text.translate(str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-"}))
    return re.sub(r"\W+", " ", text).strip()


def clean_text(raw: str) -> tuple[str, list[str], date | None]:
    """Drop boilerplate lines and repeated paragraphs; return (text, removed lines, dateline date)."""
    raw = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    lines = [line.replace("\u00a0", " ").strip() for line in raw.split("\n")]
    kept: list[str] = []
    removed: list[str] = []
    seen: set[str] = set()
    dateline: date | None = None
    for i, line in enumerate(lines):
        if not line:
            continue
        next_line = next((x for x in lines[i + 1 :] if x), "")
        drop = (
            _is_icon_junk(line)
            or _BREAKING.match(line)
            or _READ_MORE.match(line)
            or _PHOTO_CREDIT.search(line)
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


def parse_date(value: str) -> date | None:
    """Parse the date formats news pages use; None when there is none."""
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        pass
    match = _DATE_RE.search(value)
    if not match:
        return None
    text = re.sub(r"(\d)(st|nd|rd|th)", r"\1", match.group(0)).replace(",", "").replace(".", "")
    text = text.replace("Sept", "Sep")
    for fmt in ("%d %b %Y", "%d %B %Y", "%b %d %Y", "%B %d %Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def safe_doc_id(name: str) -> str:
    """A doc id from a file name: its stem with anything outside [A-Za-z0-9_.-] replaced."""
    stem = Path(name.replace("\\", "/")).name
    for suffix in SUPPORTED_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    doc_id = _SAFE_ID.sub("-", stem).strip("-.")[:128]
    if not doc_id:
        raise BadDocument(name, "file name gives no usable document id")
    return doc_id


def decode(name: str, data: bytes) -> str:
    """Bytes to text, refusing binary and non-UTF-8 content with a clear reason."""
    if not data.strip():
        raise BadDocument(name, "file is empty")
    if b"\x00" in data[:8192]:
        raise BadDocument(name, "file looks binary (contains NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadDocument(name, f"not valid UTF-8 (byte {exc.start})") from None
    controls = sum(1 for ch in text[:8192] if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t")
    if controls > 0.05 * min(len(text), 8192):
        raise BadDocument(name, "file looks binary (many control characters)")
    return text


def _html_to_text(html: str) -> tuple[str | None, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "footer", "header", "aside", "figure", "form"]):
        tag.decompose()
    title_tag = soup.find("h1") or soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else None
    root = soup.find("article") or soup.body or soup
    blocks = [el.get_text(" ", strip=True) for el in root.find_all(["h1", "h2", "h3", "p", "li", "blockquote"])]
    text = "\n".join(b for b in blocks if b) or root.get_text("\n", strip=True)
    return title, text


def _one_line(value: object) -> str:
    """Whitespace (newlines included) collapsed: a title is one line wherever it is shown or quoted."""
    return " ".join(str(value or "").split())


def parse_article(name: str, data: bytes, meta: dict | None = None, doc_id: str | None = None) -> Article:
    """Decode, clean and describe one article; raises BadDocument with the reason it cannot be used."""
    meta = meta or {}
    raw = decode(name, data)
    html_title = None
    if name.lower().endswith((".html", ".htm")):
        html_title, raw = _html_to_text(raw)
    text, removed, dateline = clean_text(raw)
    if not text:
        raise BadDocument(name, "no article text left after cleaning")
    first_line = text.split("\n", 1)[0].lstrip("# ").strip()
    title = _one_line(meta.get("title")) or _one_line(html_title) or _one_line(first_line[:200])
    published = parse_date(str(meta["published"])) if meta.get("published") else dateline
    return Article(
        doc_id=doc_id or meta.get("id") or safe_doc_id(name),
        title=title,
        text=text,
        source=meta.get("source"),
        published=published,
        url=meta.get("url"),
        path=name,
        removed=tuple(removed),
    )


def _manifest_for(folder: Path) -> dict[str, dict]:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise BadDocument(str(path), f"unreadable manifest ({exc})") from None
    return data if isinstance(data, dict) else {}


def discover(paths: Iterable[Path]) -> dict[Path, str]:
    """Expand folders into their supported article files (sorted, without duplicates), each with the name its
    doc id comes from: its path inside the folder given, so business/001.txt and sport/001.txt stay apart."""
    found: dict[Path, str] = {}
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in SUPPORTED_SUFFIXES:
                    found.setdefault(child.resolve(), "-".join(child.relative_to(path).parts))
        else:
            found.setdefault(path.resolve(), path.name)
    return found


def load_articles(
    paths: Iterable[Path], max_bytes: int | None = None
) -> Iterator[Article | BadDocument]:
    """Yield an Article or the BadDocument error for each file, so one bad file never stops a batch."""
    manifests: dict[Path, dict[str, dict]] = {}
    for path, name in discover(paths).items():
        try:
            if not path.exists():
                raise BadDocument(str(path), "no such file")
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise BadDocument(str(path), f"unsupported type (use {', '.join(SUPPORTED_SUFFIXES)})")
            if max_bytes is not None and path.stat().st_size > max_bytes:
                raise BadDocument(str(path), f"larger than the {max_bytes}-byte limit")
            if path.parent not in manifests:
                manifests[path.parent] = _manifest_for(path.parent)
            entry = manifests[path.parent].get(path.name)
            meta = entry if isinstance(entry, dict) else {}
            yield parse_article(str(path), path.read_bytes(), meta, doc_id=meta.get("id") or safe_doc_id(name))
        except BadDocument as exc:
            yield exc
        except OSError as exc:
            yield BadDocument(str(path), exc.strerror or str(exc))
