"""The chat page shows "also reported by" under a citation whose story other outlets ran (headless Chromium)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from qa.service import build_service
from tests.conftest import make_settings
from tests.page_checks import axe
from tests.support import CHROMIUM, api_server
from tests.web_server import WebServer

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium chromium-driver)", allow_module_level=True)
pytest.importorskip("pytest_playwright", reason="pip install playwright pytest-playwright (never `playwright install`)")

from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, WebServer]]:
    data_dir = tmp_path_factory.mktemp("web-browser") / "data"
    with WebServer() as web:
        service = build_service(make_settings(data_dir, fetch_allow_private=True))
        report = service.ingest_urls([web.url(f) for f in ("/ledger/rss.xml", "/tribune/atom.xml",
                                                           "/courier/feed.xml")])
        assert len(report.duplicate) == 3
        service.docs.close_thread()
        with api_server(data_dir) as url:
            yield url, web


def test_citation_shows_the_other_outlets(page: Page, server: tuple[str, WebServer]) -> None:
    url, web = server
    expect.set_options(timeout=15_000)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page.goto(url)
    box = page.get_by_label("Your question")
    box.fill("When did the Harbour Bridge reopen?")
    box.press("Enter")
    answer = page.locator("#log > li.turn article.answer").first
    expect(answer).to_have_attribute("data-state", re.compile(r"^(done|refused)$"))
    also = answer.locator("details.sources li .also-at").first
    expect(also).to_have_text("also reported by Coastal Tribune, Valley Courier")
    links = also.locator("a")
    expect(links).to_have_count(2)
    assert links.nth(0).get_attribute("href") == web.url("/tribune/news/bridge-back-open.html")
    assert links.nth(1).get_attribute("href") == web.url("/courier/stories/bridge-open-again")
    axe(page, "answered, with also reported by")

    answer.get_by_role("button", name="Copy").click()  # a web article's source line ends with its URL
    expect(answer.locator(".copy-status")).to_have_text("Copied the answer and its sources.")
    sources = page.evaluate("navigator.clipboard.readText()").split("\n\nSources:\n")[1].splitlines()
    cited = answer.locator("details.sources li button.source").first.get_attribute("data-doc-id")
    article = httpx.get(f"{url}/documents/{cited}").json()
    assert article["url"] and article["published"]
    assert sources[0].startswith(f"[1] {article['title']}, {article['source']}, ")
    assert sources[0].endswith(f" {article['published'][:4]}, {article['url']}")  # "…, 3 Mar 2025, <url>"
