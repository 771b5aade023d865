"""What HTML extraction keeps and drops on the fixture news pages: the old tag filter vs trafilatura (+ cleaning).

    python -m bench.extraction

For every page in tests/web_fixtures (whose body paragraphs are known), counts the body paragraphs kept
verbatim, the body characters kept, and the lines of page furniture that leaked into the text. Then, to see
whether the plain-text cleaning still earns its place after trafilatura, the seed articles (scraped text with
"READ MORE" links, photo credits and datelines in the body) are wrapped as pages and extracted both ways.
"""

from __future__ import annotations

import html
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.sources.extract import extract_html  # noqa: E402
from tests.web_fixtures.build_pages import pages  # noqa: E402

try:  # the cleaning module moved in the layout change
    from qa.sources.cleaning import clean_text
except ImportError:  # pragma: no cover - before the layout change
    from qa.documents import clean_text  # type: ignore[no-redef]


def _old_filter(page: str) -> tuple[str | None, str]:
    """The hand-written tag filter HTML went through before trafilatura (kept here for the comparison)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "footer", "header", "aside", "figure", "form"]):
        tag.decompose()
    title_tag = soup.find("h1") or soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else None
    root = soup.find("article") or soup.body or soup
    blocks = [el.get_text(" ", strip=True) for el in root.find_all(["h1", "h2", "h3", "p", "li", "blockquote"])]
    return title, "\n".join(b for b in blocks if b) or root.get_text("\n", strip=True)


BASE = "http://news.example"


def _norm(line: str) -> str:
    return " ".join(line.split())


def old_filter(page: str, url: str) -> str:
    return clean_text(_old_filter(page)[1])[0]


def trafilatura_raw(page: str, url: str) -> str:
    extracted = extract_html(page, url)
    return extracted.text if extracted else ""


def trafilatura_clean(page: str, url: str) -> str:
    return clean_text(trafilatura_raw(page, url))[0]


METHODS: dict[str, Callable[[str, str], str]] = {
    "old tag filter + cleaning": old_filter,
    "trafilatura": trafilatura_raw,
    "trafilatura + cleaning": trafilatura_clean,
}


def score(text: str, body: list[str], title: str | None = None) -> tuple[int, int, int, list[str]]:
    """(body paragraphs kept verbatim, body characters kept, furniture characters leaked, leaked lines)."""
    lines = [_norm(x) for x in text.splitlines() if x.strip()]
    expected = [_norm(p) for p in body]
    kept = sum(1 for p in expected if p in lines)
    kept_chars = sum(len(p) for p in expected if p in lines)
    leaked = [x for x in lines if x not in expected and x != _norm(title or "")]
    return kept, kept_chars, sum(len(x) for x in leaked), leaked


def fixture_table() -> dict[str, list[int]]:
    totals: dict[str, list[int]] = {name: [0, 0, 0, 0, 0] for name in METHODS}
    print(f"{'page':48} {'method':28} {'paras kept':>11} {'furniture lines':>16}")
    for rel, (body, page_template) in pages().items():
        page = page_template.replace("{{BASE}}", BASE)
        for name, method in METHODS.items():
            kept, kept_chars, leaked_chars, leaked = score(method(page, f"{BASE}/{rel}"), body)
            t = totals[name]
            t[0] += kept
            t[1] += len(body)
            t[2] += kept_chars
            t[3] += sum(len(p) for p in body)
            t[4] += leaked_chars
            print(f"{rel[-48:]:48} {name:28} {kept:>5}/{len(body):<5} {len(leaked):>16}")
            for line in leaked[:12]:
                print(f"{'':50}leaked: {line[:90]}")
    print()
    print(f"{'all fixture pages':48} {'method':28} {'paras kept':>11} {'body chars kept':>16} {'furniture chars':>16}")
    for name, (kept, paras, kept_chars, chars, leaked_chars) in totals.items():
        print(f"{'':48} {name:28} {kept:>5}/{paras:<5} {kept_chars / chars:>15.1%} {leaked_chars:>16}")
    return totals


def seeds_table() -> None:
    """Seed articles wrapped as pages: lines left that the plain-text cleaning of the seed file removes."""
    seeds = sorted((ROOT / "seeds").glob("*.txt"))
    print()
    print(f"{'seed page':32} {'method':28} {'lines':>6} {'boilerplate lines left':>24}")
    for path in seeds:
        raw = path.read_text("utf-8")
        cleaned, _, _ = clean_text(raw)
        paras = "\n".join(f"<p>{html.escape(x)}</p>" for x in raw.splitlines() if x.strip())
        page = (f"<html lang='en'><head><title>{html.escape(raw.splitlines()[0][:80])}</title></head><body>"
                f"<nav><a href='/'>Home</a> <a href='/news'>News</a></nav><article>{paras}</article>"
                "<footer>Copyright 2017</footer></body></html>")
        expected = Counter(_norm(x) for x in cleaned.splitlines() if x.strip())
        for name in ("trafilatura", "trafilatura + cleaning"):
            text = METHODS[name](page, f"{BASE}/{path.stem}")
            lines = [_norm(x) for x in text.splitlines() if x.strip()]
            left = list((Counter(lines) - expected).elements())  # repeated paragraphs count once
            print(f"{path.stem:32} {name:28} {len(lines):>6} {len(left):>24}")
            for line in left[:3]:
                print(f"{'':34}left: {line[:90]}")


if __name__ == "__main__":
    fixture_table()
    seeds_table()
