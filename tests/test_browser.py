"""The chat page in headless Chromium (Debian's), against the real `qa serve` on the seed articles."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import CHROMIUM, ROOT, api_server

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium chromium-driver)", allow_module_level=True)
pytest.importorskip("pytest_playwright", reason="pip install playwright pytest-playwright (never `playwright install`)")

from playwright.sync_api import Locator, Page, Response, expect

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
FINISHED = re.compile(r"^(done|refused|error)$")
EVIL = """Marmalade <img src=x onerror="window.__pwned=1"> festival in Zorbton

ZORBTON, March 3, 2017 – The Zorbton marmalade festival was held in the Quillfield market hall \
<script>window.__pwned=1</script> on Friday, organisers said.

The festival attracted 4,000 visitors <img src=x onerror="window.__pwned=1"> from across the region.
"""


@pytest.fixture(autouse=True)
def _page_checks(page: Page) -> Iterator[None]:
    """Generous waits (a busy CI box) and no uncaught JavaScript error in any test."""
    expect.set_options(timeout=15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="module")
def server(seeded_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the read-only tests, on a private copy of the seeded index (conversations get written)."""
    data_dir = tmp_path_factory.mktemp("browser") / "data"
    shutil.copytree(seeded_dir, data_dir)
    with api_server(data_dir) as url:
        yield url


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def ask(page: Page, question: str) -> Locator:
    """Type a question, press Enter, and wait until its answer has finished (answered, refused or failed)."""
    turns = page.locator("#log > li.turn")
    before = turns.count()
    box = page.get_by_label("Your question")
    box.fill(question)
    box.press("Enter")
    expect(turns).to_have_count(before + 1)
    answer = turns.nth(before).locator("article.answer")
    expect(answer).to_have_attribute("data-state", FINISHED)
    expect(answer).to_have_attribute("aria-busy", "false")
    return answer


def done_event(response: Response) -> dict[str, Any]:
    """The `done` payload of a finished /chat event stream."""
    frames = response.text().replace("\r\n", "\n").split("\n\n")
    for frame in frames:
        lines = frame.split("\n")
        if "event: done" in lines:
            return json.loads("\n".join(line[6:] for line in lines if line.startswith("data: ")))
    raise AssertionError(f"no done event in {response.text()[:500]!r}")


def no_horizontal_overflow(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_answer_citation_follow_up_and_refusal(page: Page, server: str) -> None:
    page.goto(server)

    with page.expect_request("**/chat") as first_request, page.expect_response("**/chat") as first_response:
        answer = ask(page, "Where is the Shayrat Airbase?")
    assert "conversation_id" not in first_request.value.post_data_json
    expect(answer).to_have_attribute("data-state", "done")
    expect(answer.locator(".answer-text")).to_contain_text("Homs")
    marker = answer.locator(".answer-text button.cite").first
    expect(marker).to_have_text("[1]")
    result = done_event(first_response.value)
    expect(answer.locator(".answer-text")).to_have_text(result["answer"])
    # one source per article (issue 15): two passages of one article are one entry
    expect(answer.locator("details.sources[open] li")).to_have_count(len({c["doc_id"] for c in result["citations"]}))
    expect(answer.locator(".as-of")).to_have_text(result["as_of"]["text"])  # e.g. "as of 11 Apr 2017"

    citation = next(c for c in result["citations"] if c["n"] == 1)
    cited = citation.get("quote") or citation
    article = httpx.get(f"{server}/documents/{citation['doc_id']}").json()
    marker.click()
    panel = page.locator("#doc-panel")
    expect(panel).to_have_attribute("data-state", "ready")
    expect(page.locator("#doc-title")).to_have_text(article["title"])
    expect(page.locator("#doc-meta")).to_contain_text(article["source"])
    expect(page.locator("#doc-text")).to_have_text(article["text"], use_inner_text=False)
    mark = panel.locator("mark")
    expect(mark).to_have_count(1)
    assert mark.text_content() == cited["text"] == article["text"][cited["start"]:cited["end"]]
    expect(panel.locator(".passage")).to_contain_text(cited["text"])
    expect(mark).to_be_in_viewport()
    screenshot(page, "chat-citation")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(marker).to_be_focused()

    conversation_id = result["conversation_id"]
    expect(page.locator("#chat")).to_have_attribute("data-conversation-id", conversation_id)
    with page.expect_request("**/chat") as follow_up:
        answer = ask(page, "When did it happen?")
    assert follow_up.value.post_data_json["conversation_id"] == conversation_id
    expect(answer).to_have_attribute("data-state", re.compile("^(done|refused)$"))

    answer = ask(page, "Who won the 2018 FIFA World Cup?")
    expect(answer).to_have_attribute("data-state", "refused")
    expect(answer.locator(".refusal-label")).to_have_text("Not found in the articles")
    assert answer.evaluate("a => getComputedStyle(a).borderTopStyle") == "dashed"
    expect(answer.locator("button.cite")).to_have_count(0)
    nearest = answer.locator("details.nearest")
    expect(nearest).not_to_have_attribute("open", re.compile(".*"))
    expect(nearest.locator("li").first).to_be_hidden()
    nearest.locator("summary").click()
    expect(nearest.locator("li").first).to_be_visible()
    answer.scroll_into_view_if_needed()
    screenshot(page, "chat-refusal")

    page.get_by_role("button", name="New chat").click()
    expect(page.locator("#log > li")).to_have_count(0)
    expect(page.locator("#chat")).to_have_attribute("data-conversation-id", "")
    with page.expect_request("**/chat") as fresh:
        ask(page, "Where is the Shayrat Airbase?")
    assert "conversation_id" not in fresh.value.post_data_json


def test_article_text_is_never_run_as_html(page: Page, server: str) -> None:
    uploaded = httpx.post(f"{server}/documents", files={"files": ("zorbton.txt", EVIL.encode(), "text/plain")},
                          timeout=60)  # indexing it took over httpx's default 5 s at load 9
    assert uploaded.status_code == 201, uploaded.text
    try:
        page.add_init_script(
            "window.__blocked = [];"
            "document.addEventListener('securitypolicyviolation', e => window.__blocked.push(e.violatedDirective));"
        )
        page.goto(server)
        answer = ask(page, "Where was the Zorbton marmalade festival held?")
        expect(answer).to_have_attribute("data-state", "done")
        expect(answer.locator(".answer-text")).to_contain_text("<script>window.__pwned=1</script>")
        answer.locator("button.cite").first.click()
        panel = page.locator("#doc-panel")
        expect(panel).to_have_attribute("data-state", "ready")
        expect(page.locator("#doc-title")).to_have_text(EVIL.split("\n", 1)[0])
        expect(panel.locator("mark")).to_contain_text("<script>window.__pwned=1</script>")
        expect(page.locator("#doc-text")).to_contain_text('<img src=x onerror="window.__pwned=1">')
        expect(answer.locator(".sources")).to_contain_text("<img src=x")

        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.evaluate("window.__blocked") == []  # nothing was even attempted; the page CSP is a backstop
        assert page.locator("img").count() == 0
        scripts = page.evaluate("[...document.scripts].map(s => s.getAttribute('src'))")
        assert scripts == ["/static/app.js"]
        screenshot(page, "chat-untrusted-text")
    finally:  # the other tests share this server: leave it holding the seeds only
        assert httpx.delete(f"{server}/documents/zorbton").status_code == 200


def test_phone_width(page: Page, server: str) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(server)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    box = page.get_by_label("Your question")
    expect(box).to_be_in_viewport()
    send = page.get_by_role("button", name="Ask")
    expect(send).to_be_in_viewport()
    send_box = send.bounding_box()
    assert send_box is not None and send_box["x"] + send_box["width"] <= 360

    answer = ask(page, "Where is the Shayrat Airbase?")
    expect(answer).to_have_attribute("data-state", "done")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    expect(box).to_be_in_viewport()
    screenshot(page, "chat-phone-answer")
    answer.locator("button.cite").first.click()
    panel = page.locator("#doc-panel")
    expect(panel).to_have_attribute("data-state", "ready")
    expect(panel.locator("mark")).to_be_in_viewport()
    panel_box = panel.bounding_box()
    assert panel_box is not None and panel_box["width"] <= 360
    assert no_horizontal_overflow(page)
    screenshot(page, "chat-phone-article")
    page.get_by_role("button", name="Close article").click()
    expect(panel).to_be_hidden()


SSE_FAILURE = (
    'event: sources\ndata: {"conversation_id": "abc", "passages": []}\n\n'
    'event: token\ndata: {"text": "Partial "}\n\n'
    'event: error\ndata: {"error": "the language model is unavailable", "status": 503}\n\n'
)


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ("http-500", "The server had a problem answering"),  # in words, not a status code (issue 15)
        ("error-event", "the language model is unavailable"),
        ("network", "Could not reach the server"),
    ],
)
def test_server_failure_shows_error_state(page: Page, server: str, failure: str, message: str) -> None:
    def fail(route: Any) -> None:
        if failure == "http-500":
            route.fulfill(status=500, json={"error": "internal error"})
        elif failure == "error-event":
            route.fulfill(status=200, content_type="text/event-stream", body=SSE_FAILURE)
        else:
            route.abort("connectionrefused")

    page.route("**/chat", fail)
    page.goto(server)
    answer = ask(page, "Where is the Shayrat Airbase?")
    expect(answer).to_have_attribute("data-state", "error")
    expect(answer).to_have_attribute("role", "alert")
    expect(answer.locator(".error-label")).to_have_text("Something went wrong")
    expect(answer.locator(".error-message")).to_contain_text(message)
    if failure == "error-event":  # the streamed draft was never checked against its sources: it goes (issue 26)
        expect(answer.locator(".answer-text")).to_have_count(0)
        assert "Partial" not in (answer.text_content() or "")
    expect(page.get_by_role("button", name="Ask")).to_be_enabled()
    if failure == "http-500":
        screenshot(page, "chat-error")


def test_rejected_question_shows_error_then_recovers(page: Page, server: str) -> None:
    # The page refuses to send a question over the limit /health gives; told a higher one, it sends this one
    # and the server's real 400 comes back before streaming.
    page.route("**/health", lambda route: route.fulfill(json={"max_question_chars": 100_000}))
    page.goto(server)
    answer = ask(page, "why " * 600)  # over the server's 2,000-character limit
    expect(answer).to_have_attribute("data-state", "error")
    expect(answer.locator(".error-message")).to_contain_text("The question was not accepted")
    expect(answer.locator(".error-message")).to_contain_text("longer than")
    answer = ask(page, "Where is the Shayrat Airbase?")
    expect(answer).to_have_attribute("data-state", "done")
