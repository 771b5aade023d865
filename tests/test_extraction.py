"""Extraction on the fixture news pages: every body paragraph kept verbatim, page furniture dropped."""

from __future__ import annotations

import pytest

from bench.extraction import BASE, score, trafilatura_clean
from qa.sources.extract import extract_html
from tests.web_fixtures.build_pages import pages

PAGES = pages()


@pytest.mark.parametrize("rel", list(PAGES))
def test_body_kept_and_furniture_dropped(rel: str) -> None:
    body, page = PAGES[rel]
    page = page.replace("{{BASE}}", BASE)
    kept, _, _, leaked = score(trafilatura_clean(page, f"{BASE}/{rel}"), body)
    assert kept == len(body), f"{len(body) - kept} body paragraphs lost"
    # the Courier repeats its headline in the body (an <h2> inside the content section); nothing else may leak
    assert leaked in ([], ["Bridge open again - and hauliers are happy"]), leaked


def test_metadata_from_json_ld_open_graph_and_meta_tags() -> None:
    _, page = PAGES["ledger/2026/03/20/bridge-toll-rise.html"]
    found = extract_html(page.replace("{{BASE}}", BASE), f"{BASE}/ledger/x?utm_source=feed")
    assert found is not None
    assert (found.title, found.author, found.site_name, str(found.published), found.language) == (
        "Council votes to raise Harbour Bridge toll to pay for repairs", "Tom Adeyemi", "The Daily Ledger",
        "2026-03-20", "en-GB")
    assert found.canonical_url == f"{BASE}/ledger/2026/03/20/bridge-toll-rise.html"


def test_a_page_without_metadata_has_no_guessed_date_or_site() -> None:
    _, page = PAGES["courier/stories/bridge-open-again"]
    found = extract_html(page.replace("{{BASE}}", BASE), f"{BASE}/courier/stories/bridge-open-again")
    assert found is not None
    assert found.published is None, "no date guessed from a year in the body text"
    assert found.site_name is None and found.author is None


@pytest.mark.parametrize("html", ["", "<html><body></body></html>", "<html><body><nav>Home</nav></body></html>",
                                  "<html><body><div><a href=/>Home</a> <a href=/news>News</a></div></body></html>"])
def test_no_article_text_gives_none(html: str) -> None:  # not `page`: pytest-playwright's fixture name
    assert extract_html(html) is None


def test_a_one_sentence_page_is_kept() -> None:
    found = extract_html("<html><body><p>The Zorblat festival drew 9,000 visitors on Sunday.</p></body></html>")
    assert found is not None and found.text == "The Zorblat festival drew 9,000 visitors on Sunday."
