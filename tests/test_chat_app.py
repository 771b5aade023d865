"""The chat page as a chat app (issue 15), in Debian's headless Chromium against the real `qa serve`:
conversation history, Stop, Retry, Copy, the Documents dialog, the empty state, feedback, citations per
article, and accessibility (axe-core from the npm registry, in tests/js/) in every state."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LLMServer
from tests.fake_llm import Reply
from tests.page_checks import axe
from tests.support import CHROMIUM, ROOT, api_server

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium chromium-driver)", allow_module_level=True)
pytest.importorskip("pytest_playwright", reason="pip install playwright pytest-playwright (never `playwright install`)")

from playwright.sync_api import Dialog, Locator, Page, expect

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
FINISHED = re.compile(r"^(done|refused|error|stopped)$")
KEY = "page-test-key"
SHAYRAT = "Where is the Shayrat Airbase?"


@pytest.fixture(autouse=True)
def _page_checks(page: Page) -> Iterator[None]:
    """Generous waits (a busy CI box) and no uncaught JavaScript error in any test."""
    expect.set_options(timeout=15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[str]:
    """One server for the module, extractive answers, with an API key so the page must ask for it."""
    with api_server(data_dir, QA_API_KEY=KEY) as url:
        yield url


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"app-{name}.png"))


def small_targets(page: Page) -> list[dict[str, Any]]:
    """Visible controls under 24x24 px (WCAG 2.2 target size)."""
    return page.evaluate("""() => [...document.querySelectorAll('button, a, input, select, textarea, summary')]
        .filter(e => e.offsetParent !== null)
        .map(e => ({name: e.getAttribute('aria-label') || e.textContent.trim().slice(0, 30),
                    w: e.getBoundingClientRect().width, h: e.getBoundingClientRect().height}))
        .filter(r => r.w < 24 || r.h < 24)""")


def ask(page: Page, question: str) -> Locator:
    turns = page.locator("#log > li.turn")
    before = turns.count()
    box = page.get_by_label("Your question")
    box.fill(question)
    box.press("Enter")
    expect(turns).to_have_count(before + 1)
    answer = turns.nth(before).locator("article.answer")
    expect(answer).to_have_attribute("data-state", FINISHED)
    return answer


def answered(page: Page, question: str = SHAYRAT) -> Locator:
    answer = ask(page, question)
    expect(answer).to_have_attribute("data-state", "done")
    return answer


def conversations(page: Page) -> list[dict[str, Any]]:
    """The page's own list, as the server holds it (the request carries the page's cookie)."""
    return page.evaluate("fetch('/conversations').then(r => r.json())")["conversations"]


def test_empty_state_says_what_is_indexed_and_asks_an_example(page: Page, server: str) -> None:
    page.goto(server)
    expect(page.get_by_label("Your question")).to_be_focused()
    expect(page.locator("#corpus")).to_have_text(re.compile(r"^5 articles from .+ · \d+ \w+ – \d+ \w+ 2017$"))
    for outlet in {d["source"] for d in httpx.get(f"{server}/documents").json()["documents"] if d["source"]}:
        expect(page.locator("#corpus")).to_contain_text(outlet)
    assert httpx.get(f"{server}/static/favicon.svg").status_code == 200
    assert page.evaluate("document.querySelector('link[rel=icon]').href").endswith("/static/favicon.svg")
    expect(page.locator("#counter")).to_have_text("0 / 2000")
    page.get_by_label("Your question").fill("Shayrat")
    expect(page.locator("#counter")).to_have_text("7 / 2000")
    page.get_by_label("Your question").fill("")
    examples = page.locator("#example-list button")
    expect(examples.first).to_be_visible()
    texts = examples.all_text_contents()
    assert len({t.split(" report about ")[0] for t in texts}) == len(texts), texts  # one template no more
    assert not any(t.startswith("What do the articles say about") for t in texts), texts
    assert page.get_by_label("Your question").get_attribute("placeholder") == f"e.g. {texts[0]}"
    axe(page, "empty")
    screenshot(page, "empty")
    page.emulate_media(color_scheme="dark")
    axe(page, "empty, dark")
    screenshot(page, "empty-dark")
    page.emulate_media(color_scheme="light")
    question = examples.first.text_content()
    with page.expect_request("**/chat") as request:
        examples.first.click()
    filters = request.value.post_data_json["filters"]  # asked of its own article's outlet and day
    assert filters["source"] in (question or "") and filters["published_from"] == filters["published_to"]
    turn = page.locator("#log > li.turn").first
    expect(turn.locator(".question")).to_have_text(question or "")
    expect(turn.locator("article.answer")).to_have_attribute("data-state", re.compile("^(done|refused)$"))
    expect(turn.locator(".filter-note")).to_contain_text(f"Searched only: {filters['source']}")
    nav = page.get_by_role("navigation", name="Conversations")
    expect(nav.locator(".history-open")).to_have_count(1)
    title = conversations(page)[0]["title"]  # what it is about: the article's headline, not "What did RT r…"
    assert not title.startswith("What did") and filters["source"] in title, title
    expect(nav.locator(".history-open").first).to_have_attribute("title", title)  # full title on hover


def test_conversations_survive_reload_reopen_rename_and_delete(page: Page, server: str) -> None:
    page.goto(server)
    first = answered(page)
    citations_before = first.locator("details.sources li").count()
    ask(page, "When did it happen?")
    nav = page.get_by_role("navigation", name="Conversations")
    page.set_viewport_size({"width": 1280, "height": 800})
    shayrat = conversations(page)[0]["title"]  # the question's names, then the cited article's headline
    assert shayrat == f"Shayrat Airbase: {first.locator('.source-title').first.text_content()[4:]}", shayrat
    expect(nav.get_by_role("button", name=shayrat, exact=True)).to_be_visible()

    page.get_by_role("button", name="New chat").click()
    expect(page.locator("#log > li")).to_have_count(0)
    answered(page, "Who did Trump fire?")
    page.reload()
    titles = [c["title"] for c in conversations(page)]
    assert titles[1] == shayrat and "Trump" in titles[0]  # newest first
    expect(nav.get_by_role("button", name=titles[0], exact=True)).to_be_visible()
    expect(nav.locator(".history-open")).to_have_text(titles)
    expect(page.locator("#log > li.turn")).to_have_count(1)  # the open conversation came back on reload
    expect(nav.locator(".history-day").first).to_have_text("Today")  # grouped by day
    nav.get_by_label("Search conversations").fill("shayrat AIRBASE")
    expect(nav.locator(".history-open")).to_have_text([shayrat])
    nav.get_by_label("Search conversations").fill("")

    nav.get_by_role("button", name=shayrat, exact=True).click()
    turns = page.locator("#log > li.turn")
    expect(turns).to_have_count(2)
    expect(turns.nth(0).locator(".question")).to_have_text(SHAYRAT)
    expect(turns.nth(1).locator(".question")).to_have_text("When did it happen?")
    expect(turns.nth(0).locator("details.sources li")).to_have_count(citations_before)
    turns.nth(0).locator("button.cite").first.click()
    expect(page.locator("#doc-panel")).to_have_attribute("data-state", "ready")
    expect(page.locator("#doc-panel mark")).to_have_count(1)
    page.keyboard.press("Escape")
    screenshot(page, "reopened")

    page.once("dialog", lambda d: d.accept("Shayrat strike"))
    nav.get_by_role("button", name=f"Rename “{shayrat}”").click()
    expect(nav.get_by_role("button", name="Shayrat strike", exact=True)).to_be_visible()
    assert any(c["title"] == "Shayrat strike" for c in conversations(page))

    page.once("dialog", lambda d: d.accept())
    expect(nav.get_by_role("button", name="Delete “Shayrat strike”").locator("svg")).to_have_count(1)
    nav.get_by_role("button", name="Delete “Shayrat strike”").click()
    expect(nav.get_by_role("button", name="Shayrat strike", exact=True)).to_have_count(0)
    expect(page.locator("#log > li")).to_have_count(0)  # the open conversation was the deleted one
    assert all(c["title"] != "Shayrat strike" for c in conversations(page))


def test_stop_cancels_the_stream_and_keeps_no_half_answer(page: Page, llm_server: LLMServer) -> None:
    url, llm = llm_server.url, llm_server.llm
    llm.replies.clear()
    llm.replies.append(Reply(" ".join(f"word{i}" for i in range(300)) + " [1]", word_delay=0.05))
    page.goto(url)
    box = page.get_by_label("Your question")
    box.fill(SHAYRAT)
    box.press("Enter")
    answer = page.locator("#log article.answer").first
    expect(answer.locator(".answer-text")).to_contain_text("word3")
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    expect(page.get_by_role("button", name="Ask")).to_be_hidden()
    box.fill("Another question")
    box.press("Enter")  # while streaming: said, not silently ignored
    expect(page.locator("#ask-status")).to_contain_text("press Stop")
    axe(page, "streaming")
    screenshot(page, "streaming")
    box.fill("why " * 600)  # typed while the answer streams: still said to be too long once it ends
    abandoned = llm.abandoned
    stop.click()
    expect(answer).to_have_attribute("data-state", "stopped")
    expect(page.locator("#ask-status")).to_contain_text("399 characters over the limit of 2000")
    expect(answer.locator(".stopped-label")).to_have_text("Stopped")
    expect(answer.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.get_by_role("button", name="Ask")).to_be_visible()
    page.wait_for_function("() => true")
    for _ in range(100):
        if llm.abandoned > abandoned:
            break
        page.wait_for_timeout(50)
    assert llm.abandoned == abandoned + 1, "the server went on reading the model after Stop"
    assert conversations(page) == []  # the stopped first turn was never stored
    expect(page.locator("#chat")).to_have_attribute("data-conversation-id", "")


def test_stop_after_the_server_kept_the_answer_says_so_and_retry_makes_no_copy(page: Page, server: str) -> None:
    """A slow link: the server has stored the whole answer while its bytes are still on the way; Stop then shows
    the kept answer and says so (it was not "not saved"), and the conversation is the server's one."""
    page.goto(server)
    listed = {c["id"] for c in page.request.get(f"{server}/conversations").json()["conversations"]}
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 300, "downloadThroughput": 600,
                                                  "uploadThroughput": 1_000_000})
    box = page.get_by_label("Your question")
    box.fill(SHAYRAT)
    box.press("Enter")
    answer = page.locator("#log article.answer").first
    new: list[dict[str, Any]] = []
    for _ in range(300):  # the page's own cookie, over an unthrottled request
        new = [c for c in page.request.get(f"{server}/conversations").json()["conversations"] if c["id"] not in listed]
        if new:
            break
        page.wait_for_timeout(100)
    assert new, "the server never stored the answer"
    expect(answer).to_have_attribute("data-state", "streaming")  # still arriving over the slow link
    page.get_by_role("button", name="Stop").click()
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": -1})  # the link recovers
    expect(answer).to_have_attribute("data-state", "done")
    expect(answer.locator(".kept-notice")).to_have_text(
        "The answer was already complete when you pressed Stop, so the server kept it.")
    expect(answer.locator(".stopped-label")).to_have_count(0)
    expect(page.locator("#chat")).to_have_attribute("data-conversation-id", new[0]["id"])
    screenshot(page, "stopped-but-kept")
    ask(page, "When did it happen?")  # continues the kept conversation, no second copy of it
    after = [c for c in page.request.get(f"{server}/conversations").json()["conversations"] if c["id"] not in listed]
    assert [c["id"] for c in after] == [new[0]["id"]]


def test_the_page_shows_only_the_sentences_that_survived_the_check(page: Page, llm_server: LLMServer) -> None:
    """The streamed draft carries an unsupported sentence; the finished answer on the page does not."""
    url, llm = llm_server.url, llm_server.llm
    llm.replies.clear()
    supported = "The US fired at least 59 Tomahawk cruise missiles at the Shayrat Airbase [1]."
    llm.replies.append(Reply(f"{supported} Reuters reported 200 dead in Moscow [1].", word_delay=0.02))
    page.goto(url)
    box = page.get_by_label("Your question")
    box.fill("How many Tomahawk missiles did the US fire at the Shayrat Airbase?")
    box.press("Enter")
    answer = page.locator("#log article.answer").first
    expect(answer).to_have_attribute("data-state", "done")
    expect(answer.locator(".answer-text")).to_contain_text("at least 59 Tomahawk cruise missiles")
    assert "Reuters" not in (answer.locator(".answer-text").text_content() or "")
    expect(answer.locator(".notice")).to_contain_text("1 of 2 sentences")
    assert "Reuters reported" not in (answer.text_content() or "")
    llm.replies.clear()


def test_retry_after_an_error_keeps_the_question_and_says_it_in_words(page: Page, server: str) -> None:
    page.route("**/chat", lambda route: route.fulfill(status=500, json={"error": "internal error"}))
    page.goto(server)
    answer = ask(page, SHAYRAT)
    expect(answer).to_have_attribute("data-state", "error")
    message = answer.locator(".error-message")
    expect(message).to_have_text("The server had a problem answering. Try again in a moment.")
    screenshot(page, "error")
    expect(page.get_by_label("Your question")).to_have_value(SHAYRAT)
    page.unroute("**/chat")
    answer.get_by_role("button", name="Retry").click()
    turns = page.locator("#log > li.turn")
    expect(turns).to_have_count(1)  # the failed turn is replaced
    expect(turns.first.locator("article.answer")).to_have_attribute("data-state", "done")

    refused = ask(page, "Who won the 2018 FIFA World Cup?")
    expect(refused).to_have_attribute("data-state", "refused")
    refused.get_by_role("button", name="Retry").click()
    expect(turns).to_have_count(3)
    expect(turns.nth(2).locator(".question")).to_have_text("Who won the 2018 FIFA World Cup?")
    expect(turns.nth(2).locator("article.answer")).to_have_attribute("data-state", "refused")

    box = page.get_by_label("Your question")
    box.fill("why " * 600)
    expect(page.locator("#counter")).to_have_text("2399 / 2000")
    expect(page.locator("#ask-status")).to_contain_text("399 characters over the limit of 2000")
    box.press("Enter")  # over the limit: said, nothing sent, no error card
    expect(page.locator("#ask-status")).to_contain_text("shorten it to send")
    expect(turns).to_have_count(3)
    expect(box).to_have_value("why " * 600)

    hung: list[Any] = []
    page.route("**/chat", lambda route: hung.append(route))  # the server never answers
    page.evaluate("window.qaAnswerTimeoutMs = 1500")
    box.fill(SHAYRAT)
    box.press("Enter")
    gave_up = turns.nth(3).locator("article.answer")
    expect(gave_up).to_have_attribute("data-state", "error")
    expect(gave_up.locator(".error-message")).to_contain_text("The server sent nothing for 2 seconds")
    expect(gave_up.get_by_role("button", name="Retry")).to_be_visible()
    page.evaluate("window.qaAnswerTimeoutMs = 0")
    page.unroute("**/chat")
    gave_up.get_by_role("button", name="Retry").click()
    expect(turns.nth(3).locator("article.answer")).to_have_attribute("data-state", "done")


def test_copy_gives_the_answer_with_numbered_sources(page: Page, server: str) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page.goto(server)
    with page.expect_response("**/chat") as response:
        answer = answered(page)
    done = next(json.loads(f.split("data: ", 1)[1]) for f in response.value.text().split("\n\n")
                if f.startswith("event: done"))
    answer.get_by_role("button", name="Copy").click()
    expect(answer.locator(".copy-status")).to_have_text("Copied the answer and its sources.")
    copied = page.evaluate("navigator.clipboard.readText()")
    text, sources = copied.split("\n\nSources:\n")
    assert text == answer.locator(".answer-text").text_content()
    first = done["citations"][0]
    line = sources.splitlines()[0]
    assert line.startswith(f"[1] {first['title']}, {first['source']}, ") and "2017" in line
    assert len(sources.splitlines()) == len({c["doc_id"] for c in done["citations"]})


def test_documents_dialog_lists_filters_uploads_deletes_and_restricts(page: Page, server: str) -> None:
    prompts: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        prompts.append(dialog.type)
        dialog.accept(KEY if dialog.type == "prompt" else None)

    page.on("dialog", on_dialog)
    page.goto(server)
    page.get_by_role("button", name="Documents").click()
    dialog = page.get_by_role("dialog", name="Documents")
    expect(dialog).to_be_visible()
    rows = dialog.locator("tbody tr")
    expect(rows).to_have_count(5)
    listed = httpx.get(f"{server}/documents").json()["documents"]
    first = listed[0]
    row = dialog.locator(f"tr[data-doc-id='{first['doc_id']}']")
    expect(row).to_contain_text(first["title"])
    expect(row).to_contain_text(first["source"])
    expect(row).to_contain_text("characters")
    axe(page, "documents open")
    screenshot(page, "documents")
    assert not small_targets(page)

    outlet = first["source"]
    dialog.get_by_label("Outlet").select_option(outlet)
    expect(rows).to_have_count(sum(d["source"] == outlet for d in listed))

    dialog.get_by_label("Add articles").set_input_files(
        files=[{"name": "zorbton.txt", "mimeType": "text/plain",
                "buffer": b"Marmalade festival in Zorbton\n\nZORBTON, March 3, 2017 - The Zorbton marmalade "
                          b"festival was held in the Quillfield market hall on Friday, organisers said.\n"}])
    dialog.get_by_role("button", name="Upload").click()
    status = dialog.locator("#upload-status")
    expect(status).to_contain_text("1 article indexed.", timeout=90_000)
    expect(status).to_contain_text("zorbton.txt: added")
    expect(status).to_be_in_viewport()  # said by the button, not at the top of a long dialog
    upload_box, status_box = dialog.get_by_role("button", name="Upload").bounding_box(), status.bounding_box()
    assert upload_box and status_box and 0 <= status_box["y"] - upload_box["y"] < 120
    zorbton = {"name": "zorbton.txt", "mimeType": "text/plain",
               "buffer": b"Marmalade festival in Zorbton\n\nZORBTON, March 3, 2017 - The Zorbton marmalade "
                         b"festival was held in the Quillfield market hall on Friday, organisers said.\n"}
    # the same file again and a text file named .pdf, dropped on the dialog (drag and drop)
    page.evaluate("""([article, fake]) => {
        const drop = new DataTransfer();
        drop.items.add(new File([article], "zorbton.txt", {type: "text/plain"}));
        drop.items.add(new File([fake], "notes.pdf", {type: "application/pdf"}));
        const dialog = document.getElementById("documents");
        dialog.dispatchEvent(new DragEvent("dragover", {dataTransfer: drop, bubbles: true, cancelable: true}));
        dialog.dispatchEvent(new DragEvent("drop", {dataTransfer: drop, bubbles: true, cancelable: true}));
    }""", [zorbton["buffer"].decode(), "%PDF-1.4 fake\n\nSome text."])
    expect(status).to_contain_text("zorbton.txt: unchanged", timeout=90_000)
    expect(status).to_contain_text("notes.pdf: not added, PDF is not supported")
    expect(status).not_to_contain_text("indexed.")
    axe(page, "documents, upload reported")
    screenshot(page, "documents-uploaded")
    dialog.get_by_label("Outlet").select_option("")
    expect(rows).to_have_count(6)
    dialog.get_by_label("Search titles").fill("marmalade zorbton")
    expect(rows).to_have_count(1)
    dialog.get_by_label("Search titles").fill("")
    dialog.get_by_label("Sort by").select_option("title")
    shown = [t.strip() for t in rows.locator("td:first-child").all_text_contents()]
    assert shown == sorted(shown), shown
    page.evaluate("window.qaDocumentsPageSize = 4")  # paging, without indexing 51 articles
    dialog.get_by_label("Sort by").select_option("date")
    expect(rows).to_have_count(4)
    expect(dialog.locator("#page-info")).to_have_text("1–4 of 6 (page 1 of 2)")
    dialog.get_by_role("button", name="Next").click()
    expect(rows).to_have_count(2)
    page.evaluate("window.qaDocumentsPageSize = 0")
    dialog.get_by_role("button", name="Previous").click()
    expect(rows).to_have_count(6)
    title = dialog.get_by_role("button", name="Marmalade festival in Zorbton", exact=True)
    title.click()  # the title opens the article
    expect(page.locator("#doc-panel")).to_have_attribute("data-state", "ready")
    expect(page.locator("#doc-text")).to_contain_text("Quillfield market hall")
    page.get_by_role("button", name="Close article").click()
    expect(title).to_be_focused()
    dialog.get_by_role("button", name="Delete Marmalade festival in Zorbton").click()
    expect(dialog.locator("#documents-status")).to_contain_text("Deleted")
    expect(rows).to_have_count(5)
    assert prompts.count("prompt") == 1  # the key was asked once, then kept for the tab
    assert page.evaluate("sessionStorage.getItem('qa.apiKey')") == KEY
    assert page.evaluate("localStorage.length") == 0

    dialog.get_by_label("Outlet").select_option(outlet)
    dialog.get_by_role("button", name="Ask about these").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#filter-chip")).to_contain_text(outlet)
    expect(page.get_by_label("Your question")).to_be_focused()  # what the user types next goes into the box
    with page.expect_request("**/chat") as request:
        restricted = ask(page, SHAYRAT)
    assert request.value.post_data_json["filters"] == {"source": outlet}
    expect(restricted.locator(".filter-note")).to_have_text(f"Searched only: {outlet}")
    page.get_by_role("button", name="Clear filter").click()
    with page.expect_request("**/chat") as request:
        ask(page, SHAYRAT)
    assert "filters" not in request.value.post_data_json

    page.get_by_role("button", name="Documents").click()
    dialog.get_by_label("Outlet").select_option("")
    days = sorted(d["published"] for d in listed if d["published"])
    since, until = days[1], days[-2]
    dialog.get_by_label("From").fill(since)
    dialog.get_by_label("To").fill(until)
    expect(rows).to_have_count(sum(bool(d["published"]) and since <= d["published"] <= until for d in listed))
    dialog.get_by_role("button", name="Ask about these").click()
    with page.expect_request("**/chat") as request:
        ask(page, SHAYRAT)
    assert request.value.post_data_json["filters"] == {"published_from": since, "published_to": until}


def test_feedback_is_stored_with_its_note(page: Page, server: str, data_dir: Path) -> None:
    page.goto(server)
    answer = answered(page)
    for name in ("Good answer", "Bad answer"):  # drawn icons: an emoji is a box without a colour-emoji font
        expect(answer.get_by_role("button", name=name).locator("svg")).to_have_count(1)
    thumbs = answer.get_by_role("button", name="Good answer").bounding_box()
    answer.get_by_role("button", name="Bad answer").click()  # saved at once: no second button to find
    expect(answer.get_by_role("button", name="Bad answer")).to_have_attribute("aria-pressed", "true")
    expect(answer.locator(".feedback-status")).to_have_text("Thanks, your feedback was saved.")
    assert answer.get_by_role("button", name="Good answer").bounding_box() == thumbs  # no layout jump

    def rows() -> list[tuple[str, str, str | None]]:
        with sqlite3.connect(data_dir / "conversations.sqlite") as db:
            return db.execute("SELECT rating, question, note FROM feedback WHERE question = ?", (SHAYRAT,)).fetchall()

    assert rows() == [("down", SHAYRAT, None)]
    answer.get_by_label("Note (optional)").fill("the second source is off-topic")
    answer.get_by_role("button", name="Send note").click()
    expect(answer.locator(".feedback-status")).to_have_text("Thanks, your feedback and note were saved.")
    assert rows() == [("down", SHAYRAT, "the second source is off-topic")]  # the note replaced, not added


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if 40 < len(s) < 300 and "[" not in s]


def test_each_marker_highlights_its_sentence_and_one_article_is_one_source(page: Page, server: str) -> None:
    docs = httpx.get(f"{server}/documents").json()["documents"]
    a, b = (httpx.get(f"{server}/documents/{d['doc_id']}").json() for d in docs[:2])
    one, two = _sentences(a["text"])[:2]
    three = _sentences(b["text"])[0]

    def cite(n: int, doc: dict[str, Any], sentence: str) -> dict[str, Any]:
        start = doc["text"].index(sentence)
        return {"n": n, "doc_id": doc["doc_id"], "title": doc["title"], "source": doc["source"],
                "published": doc["published"], "text": sentence, "start": start, "end": start + len(sentence),
                "score": 0.1, "quote": {"text": sentence, "start": start, "end": start + len(sentence)}}

    # Two sentences of article A carry [1] (the second is not the citation's quote); [2] is another passage of
    # A; [3] is article B. The page must show two sources and highlight, for each marker, its own sentence.
    citations = [cite(1, a, one), cite(2, a, two), cite(3, b, three)]
    text = f"{one} [1] {two} [1] {two} [2] {three} [3]"
    done = {"question": "q", "standalone_question": "q", "answer": text, "refused": False, "citations": citations,
            "passages": [], "conversation_id": "x" * 32, "mode": "llm", "notice": None, "timings_ms": {},
            "as_of": {"text": "Sources dated 7 Apr 2017 to 10 May 2017"},
            "disagreements": [{"about": "the number of missiles", "values": [
                {"n": 1, "value": "59", "source": a["source"], "published": a["published"]},
                {"n": 3, "value": "60", "source": b["source"], "published": b["published"]}]}]}
    body = f"event: sources\ndata: {json.dumps({'passages': []})}\n\nevent: done\ndata: {json.dumps(done)}\n\n"
    page.route("**/chat", lambda route: route.fulfill(status=200, content_type="text/event-stream", body=body))
    page.goto(server)
    answer = answered(page, "anything")
    expect(answer.locator(".disagreement")).to_contain_text("Sources disagree: the number of missiles")
    for scheme in ("dark", "light"):  # the disagreement box and the "as of" line are readable in both schemes
        page.emulate_media(color_scheme=scheme)
        axe(page, f"sources disagree, {scheme}")
        screenshot(page, f"disagreement-{scheme}")
    markers = answer.locator(".answer-text button.cite")
    expect(markers).to_have_text(["[1]", "[1]", "[1]", "[2]"])
    sources = answer.locator("details.sources li")
    expect(sources).to_have_count(2)
    expect(sources.first.locator("blockquote")).to_have_count(2)  # one source, both quotes
    expect(sources.first).to_contain_text(a["title"])
    panel = page.locator("#doc-panel")
    for index, sentence in ((0, one), (1, two), (2, two), (3, three)):
        markers.nth(index).click()
        expect(panel).to_have_attribute("data-state", "ready")
        expect(panel.locator("mark")).to_have_text(sentence)
        page.keyboard.press("Escape")
        expect(markers.nth(index)).to_be_focused()


def test_accessibility_in_every_state(page: Page, server: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(server)
    box = page.get_by_label("Your question")
    expect(box).to_be_focused()
    colours = page.evaluate("""() => {
        const s = getComputedStyle(document.activeElement);
        return {outline: s.outlineColor, border: s.borderTopColor,
                page: getComputedStyle(document.querySelector('.ask')).backgroundColor,
                field: s.backgroundColor};
    }""")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")  # keyboard focus: the ring is drawn
    focused = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused == "solid"
    assert _contrast(colours["outline"], colours["page"]) >= 3, colours
    assert _contrast(colours["border"], colours["page"]) >= 3, colours
    assert _contrast(colours["border"], colours["field"]) >= 3, colours

    answer = answered(page)
    axe(page, "answered")
    screenshot(page, "answered")
    assert not small_targets(page)
    page.emulate_media(color_scheme="dark")
    axe(page, "answered, dark")
    screenshot(page, "answered-dark")
    page.emulate_media(color_scheme="light")

    marker = answer.locator("button.cite").first
    marker.click()
    panel = page.get_by_role("dialog")
    expect(panel).to_have_attribute("data-state", "ready")
    axe(page, "article open")
    screenshot(page, "article-open")
    for _ in range(6):  # Tab never leaves the modal panel
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('doc-panel').contains(document.activeElement)")
    page.get_by_role("button", name="Close article").click()
    expect(marker).to_be_focused()

    page.set_viewport_size({"width": 390, "height": 844})
    axe(page, "phone")
    marker.click()
    expect(panel).to_have_attribute("data-state", "ready")
    box_ = panel.bounding_box()
    assert box_ is not None and box_["width"] <= 390
    axe(page, "phone, article open")
    page.emulate_media(color_scheme="dark")
    axe(page, "phone, article open, dark")
    page.emulate_media(color_scheme="light")
    screenshot(page, "phone-article")
    page.get_by_role("button", name="Close article").click()
    expect(marker).to_be_focused()
    page.keyboard.press("Tab")  # after closing, Tab goes on in the page, not into a hidden panel
    assert not page.evaluate("document.getElementById('doc-panel').contains(document.activeElement)")
    page.get_by_role("button", name="History").click()
    expect(page.get_by_role("navigation", name="Conversations")).to_be_visible()
    axe(page, "phone, conversations open")
    screenshot(page, "phone-history")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the layout did not grow sideways
    expect(page.get_by_role("button", name="New chat")).to_be_in_viewport(ratio=1)
    page.emulate_media(color_scheme="dark")
    axe(page, "phone, conversations open, dark")
    page.get_by_role("button", name="History").click()
    page.get_by_role("button", name="Documents").click()
    dialog = page.get_by_role("dialog", name="Documents")
    delete = dialog.locator("tbody tr").first.get_by_role("button", name=re.compile("^Delete "))
    expect(delete).to_be_in_viewport(ratio=1)  # the Delete column is on screen on a phone
    axe(page, "phone, documents open, dark")
    screenshot(page, "phone-documents-dark")
    page.emulate_media(color_scheme="light")
    axe(page, "phone, documents open")


def _rgb(colour: str) -> tuple[float, ...]:
    values = [float(v) for v in re.findall(r"[\d.]+", colour)[:3]]
    return tuple(values)


def _contrast(one: str, two: str) -> float:
    def luminance(colour: str) -> float:
        channels = [c / 255 for c in _rgb(colour)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(one), luminance(two)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_edit_regenerate_and_follow_ups_keep_the_page_as_the_server_keeps_it(page: Page, server: str) -> None:
    """Suggested follow-ups ask themselves; an edited question replaces its turn and the later ones, on the page
    and on the server; Regenerate asks the last question again; a stopped edit shows the conversation the
    server kept. Checked with axe in both schemes and at phone width."""
    page.goto(server)
    first = answered(page)
    suggestions = first.locator(".follow-ups button.follow-up")
    expect(suggestions.first).to_be_visible()
    assert 1 <= suggestions.count() <= 3
    for scheme in ("dark", "light"):
        page.emulate_media(color_scheme=scheme)
        axe(page, f"follow-ups, {scheme}")
        screenshot(page, f"follow-ups-{scheme}")
    ask(page, "When did it happen?")
    turns = page.locator("#log > li.turn")
    regenerate = page.get_by_role("button", name="Regenerate")
    expect(regenerate).to_have_count(1)  # only under the last kept answer
    expect(turns.nth(1).get_by_role("button", name="Regenerate")).to_be_visible()
    cid = page.locator("#chat").get_attribute("data-conversation-id")

    def kept() -> list[str]:
        return [t["question"] for t in page.evaluate(f"fetch('/conversations/{cid}').then(r => r.json())")["turns"]]

    turns.nth(0).get_by_role("button", name=f"Edit question: {SHAYRAT}").click()
    editor = turns.nth(0).get_by_label("Edit your question")
    expect(editor).to_be_focused()
    expect(editor).to_have_value(SHAYRAT)
    axe(page, "editing a question")
    screenshot(page, "editing")
    page.emulate_media(color_scheme="dark")
    axe(page, "editing a question, dark")
    screenshot(page, "editing-dark")
    page.emulate_media(color_scheme="light")
    tomahawk = "How many Tomahawk missiles did the US fire at the Shayrat Airbase?"
    editor.fill(tomahawk)
    with page.expect_request("**/conversations/*/turns/0") as request:
        editor.press("Enter")
    assert request.value.post_data_json == {"question": tomahawk}
    expect(turns).to_have_count(1)  # the later turn went, as on the server
    expect(turns.nth(0).locator(".question")).to_have_text(tomahawk)
    expect(turns.nth(0).locator("article.answer")).to_have_attribute("data-state", "done")
    expect(turns.nth(0).locator(".answer-text")).to_contain_text("59")
    assert kept() == [tomahawk]
    nav = page.get_by_role("navigation", name="Conversations")
    expect(nav.locator(".history-open[aria-current='true']")).to_contain_text("Tomahawk")  # retitled

    suggestion = turns.nth(0).locator("button.follow-up").first
    follow_up = suggestion.text_content() or ""
    suggestion.click()
    expect(turns).to_have_count(2)
    expect(turns.nth(1).locator(".question")).to_have_text(follow_up)
    expect(turns.nth(1).locator("article.answer")).to_have_attribute("data-state", "done")
    assert kept() == [tomahawk, follow_up]

    with page.expect_request("**/conversations/*/turns/1") as request:
        turns.nth(1).get_by_role("button", name="Regenerate").click()
    assert request.value.post_data_json == {}  # the server asks its kept question again
    expect(turns).to_have_count(2)
    expect(turns.nth(1).locator("article.answer")).to_have_attribute("data-state", "done")
    assert kept() == [tomahawk, follow_up]

    hung: list[Any] = []
    page.route("**/conversations/*/turns/*", lambda route: hung.append(route))  # the edit never completes
    turns.nth(0).get_by_role("button", name=re.compile("^Edit question")).click()
    turns.nth(0).get_by_label("Edit your question").fill("Who did Trump fire?")
    turns.nth(0).get_by_role("button", name="Save and ask").click()
    expect(turns).to_have_count(1)
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#ask-status")).to_have_text(
        "The edit was stopped. The conversation is shown as the server kept it.")
    expect(turns).to_have_count(2)  # the server kept both turns: the page shows them again
    expect(turns.locator(".question")).to_have_text([tomahawk, follow_up])
    page.unroute("**/conversations/*/turns/*")
    assert kept() == [tomahawk, follow_up]

    page.set_viewport_size({"width": 390, "height": 844})
    edit = turns.nth(1).get_by_role("button", name=re.compile("^Edit question"))
    edit.scroll_into_view_if_needed()
    expect(edit).to_be_in_viewport(ratio=1)
    edit.click()
    save = turns.nth(1).get_by_role("button", name="Save and ask")
    expect(save).to_be_in_viewport(ratio=1)
    assert save.evaluate("b => { const r = b.getBoundingClientRect();"
                         " return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === b; }")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for scheme in ("dark", "light"):
        page.emulate_media(color_scheme=scheme)
        axe(page, f"phone, editing, {scheme}")
    screenshot(page, "phone-editing")
    turns.nth(1).get_by_role("button", name="Cancel").click()
    suggestions = turns.nth(1).locator("button.follow-up")
    if suggestions.count():
        suggestions.first.scroll_into_view_if_needed()
        box = suggestions.first.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] >= 24
    screenshot(page, "phone-follow-ups")
