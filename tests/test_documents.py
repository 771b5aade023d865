"""Cleaning on the real seed files: boilerplate goes, the article text stays exact."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from qa.errors import BadDocument
from qa.lexicon import parse_date
from qa.sources.cleaning import clean_text, parse_article, safe_doc_id
from qa.sources.files import load_articles
from tests.support import SEEDS


@pytest.fixture(scope="module")
def seeds() -> dict:
    return {a.doc_id: a for a in load_articles([SEEDS])}


def raw(doc_id: str) -> str:
    return (SEEDS / f"{doc_id}.txt").read_text("utf-8")


def test_all_five_seeds_load_with_manifest_metadata(seeds: dict) -> None:
    assert len(seeds) == 5
    a = seeds["002_5bbdd2f0c43ed421"]
    assert a.title == "Russia’s Lavrov meets Tillerson ahead of Trump talks"
    assert a.published == date(2017, 5, 10)  # not the 2023 scrape date in the page header
    assert {s.source for s in seeds.values()} == {"RT", "AFP", "bne IntelliNews", "TASS"}


def test_boilerplate_is_removed(seeds: dict) -> None:
    text = "\n".join(a.text for a in seeds.values())
    for junk in ("bookmarkicon", "Breaking News", "3rd February 2023", "READ MORE", "Getty Images",
                 "Photo: Stanislav", "By bne IntelliNews", "11 Apr, 2017 07:29"):
        assert junk not in text, junk


def test_repeated_lead_paragraph_kept_once(seeds: dict) -> None:
    text = seeds["002_5bbdd2f0c43ed421"].text
    assert text.count("met Wednesday with US Secretary of State Rex Tillerson ahead of rare Oval Office") == 1
    title = "Russia and US take non-confrontational stance on Syria at Moscow talks"
    assert seeds["003_a22345d48b9559f9"].text.count(title) == 1


def test_kept_text_is_exact(seeds: dict) -> None:
    """Every kept paragraph is a line of the original file (whitespace-normalised at its ends only)."""
    for doc_id, article in seeds.items():
        lines = {line.replace("\u00a0", " ").strip() for line in raw(doc_id).splitlines()}
        for paragraph in article.text.split("\n\n"):
            assert paragraph in lines, (doc_id, paragraph[:80])
    assert "the US fired at least 59 Tomahawk cruise missiles at the Shayrat Airbase" in seeds[
        "000_9a3c7f577db017be"].text


def test_doc_ids_are_stable(seeds: dict) -> None:
    again = {a.doc_id: a.content_hash for a in load_articles([SEEDS])}
    assert again == {d: a.content_hash for d, a in seeds.items()}
    assert safe_doc_id("../../etc/passwd.txt") == "passwd"
    assert safe_doc_id("my article (1).html") == "my-article-1"


def test_bad_files_get_a_reason_and_the_rest_still_loads(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("A real article about the talks.\n\nSecond paragraph here.", "utf-8")
    (tmp_path / "empty.txt").write_text("   \n", "utf-8")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR")
    (tmp_path / "ignored.pdf").write_bytes(b"%PDF-1.4")
    results = list(load_articles([tmp_path]))
    errors = {Path(e.name).name: e.reason for e in results if isinstance(e, BadDocument)}
    assert [a.doc_id for a in results if not isinstance(a, BadDocument)] == ["good"]
    assert errors["empty.txt"] == "file is empty"
    assert "UTF-8" in errors["latin1.txt"]
    assert "binary" in errors["binary.txt"]
    assert "ignored.pdf" not in errors  # folders only yield supported types


def test_files_in_subfolders_keep_their_folder_in_the_id(tmp_path: Path) -> None:
    body = "A real article about the talks.\n\nSecond paragraph here."
    for folder in ("business", "sport"):
        (tmp_path / "bbc" / folder).mkdir(parents=True)
        (tmp_path / "bbc" / folder / "001.txt").write_text(f"{folder} {body}", "utf-8")
    (tmp_path / "bbc" / "top.txt").write_text(body, "utf-8")
    (tmp_path / "bbc" / "sport" / "manifest.json").write_text('{"001.txt": {"id": "chosen"}}', "utf-8")
    ids = sorted(a.doc_id for a in load_articles([tmp_path / "bbc"]))
    assert ids == ["business-001", "chosen", "top"]  # a manifest id still wins
    assert [a.doc_id for a in load_articles([tmp_path / "bbc" / "business" / "001.txt"])] == ["001"]
    assert [a.doc_id for a in load_articles([tmp_path / "bbc" / "business"])] == ["001"]


def test_html_is_parsed_not_regexed() -> None:
    """HTML goes through trafilatura (then the line cleaning): script, navigation, footer and the READ MORE
    line go, entities are decoded. (Paragraphs of real length: on a page with a few words in all, trafilatura
    keeps the menu too.)"""
    html = b"""<html><head><title>Site | Talks</title><script>alert(1)</script></head><body>
    <nav><a href=/>Home</a> <a href=/news>News</a></nav><article><h1>Lavrov meets Tillerson</h1>
    <p>First &amp; foremost, the two ministers met in Moscow on Wednesday for talks that lasted more than five
    hours.</p><p>READ MORE: something else</p><p>Second paragraph: both sides said the talks had been frank and
    useful.</p></article><footer>Copyright 2017 Site</footer></body></html>"""
    article = parse_article("talks.html", html)
    assert article.title == "Lavrov meets Tillerson"
    assert article.text == (
        "Lavrov meets Tillerson\n\nFirst & foremost, the two ministers met in Moscow on Wednesday for talks that "
        "lasted more than five hours.\n\nSecond paragraph: both sides said the talks had been frank and useful."
    )


def test_html_without_article_text_is_refused() -> None:
    html = b"<html><head><title>Site</title></head><body><nav><a href=/>Home</a> <a href=/news>News</a></nav>" \
        b"</body></html>"
    with pytest.raises(BadDocument, match=r"menu\.html: no article text found in the page"):
        parse_article("menu.html", html)


def test_dates_and_datelines() -> None:
    assert parse_date("11 Apr, 2017 07:29") == date(2017, 4, 11)
    assert parse_date("By bne IntelliNews April 12, 2017") == date(2017, 4, 12)
    assert parse_date("no date here") is None
    text, _removed, dateline = clean_text("11 Apr, 2017 07:29\n\nHeadline\n\nBody text.")
    assert dateline == date(2017, 4, 11) and text == "Headline\n\nBody text."
    _, _, header_date = clean_text("Friday, 3rd February 2023\nBreaking News:\n\nHeadline\n\nBody.")
    assert header_date is None  # a site header's date is the scrape date
