"""Web ingest end to end: the real service, CLI and HTTP app against the local web server (tests/web_server.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from qa.conversations import LOCAL_CLIENT
from qa.service import Service, build_service
from qa.sources.fetch import FetchRefused
from tests.conftest import make_settings
from tests.support import ROOT, qa_env, wait_until
from tests.web_server import WebServer

BRIDGE = "/ledger/2026/03/14/harbour-bridge-reopens.html"
FEEDS = ["/ledger/rss.xml", "/tribune/atom.xml", "/courier/feed.xml"]
SITE = Path(__file__).parent / "web_fixtures" / "site"


@pytest.fixture(scope="module")
def web() -> Iterator[WebServer]:
    with WebServer() as server:
        yield server


def _service(data_dir: Path, **overrides: object) -> Service:
    return build_service(make_settings(data_dir, fetch_allow_private=True, **overrides))


def _status(report, url: str) -> str:
    return next(u.status for u in report.urls if u.url == url)


def test_feeds_copies_rerun_edit_and_delete(web: WebServer, tmp_path: Path) -> None:
    service = _service(tmp_path / "data")
    report = service.ingest_urls([web.url(f) for f in FEEDS])
    by_url = {u.url: u for u in report.urls}
    assert len(by_url) == 9 and not report.failed
    # the Ledger's five are new; the Tribune's and the Courier's copies of two of them are recognised
    assert sorted(u.status for u in report.urls) == ["added"] * 6 + ["duplicate"] * 3
    bridge = by_url[web.url(BRIDGE)]
    assert bridge.status == "added" and bridge.doc_id and bridge.doc_id.startswith("web:127.0.0.1:harbour-bridge")
    for copy in ("/tribune/news/bridge-back-open.html", "/courier/stories/bridge-open-again"):
        assert by_url[web.url(copy)].status == "duplicate" and by_url[web.url(copy)].of == bridge.doc_id
    flood = by_url[web.url("/ledger/2026/02/09/eden-flood-warning.html")].doc_id
    assert by_url[web.url("/tribune/news/eden-towns-warned.html")].of == flood
    assert by_url[web.url("/tribune/news/flood-payouts.html")].status == "added"  # same topic, another story

    document = service.get_document(bridge.doc_id)
    assert (document.url, document.source, document.author, document.published) == (
        web.url(BRIDGE), "The Daily Ledger", "Ellen Marsh", "2026-03-14")
    assert [(c.url, c.source, c.published) for c in document.also_at] == [
        (web.url("/tribune/news/bridge-back-open.html"), "Coastal Tribune", "2026-03-14"),
        (web.url("/courier/stories/bridge-open-again"), "Valley Courier", "2026-03-15"),
    ]
    assert "Morning Ledger" not in document.text and "harbourwatcher" not in document.text
    assert service.docs.count()[0] == 6
    answer = service.ask("When did the Harbour Bridge reopen?")
    cited = [c for c in answer.citations if c.doc_id == bridge.doc_id]
    assert cited and [c.source for c in cited[0].also_at] == ["Coastal Tribune", "Valley Courier"]
    reopened = service.get_conversation(answer.conversation_id, LOCAL_CLIENT).turns[0].answer
    assert reopened is not None  # a reopened conversation shows the same "also reported by"
    assert [c.also_at for c in reopened.citations] == [c.also_at for c in answer.citations]

    # the same feeds again: conditional requests, nothing re-read, nothing written
    hits_before = web.not_modified[BRIDGE]
    again = service.ingest_urls([web.url(f) for f in FEEDS])
    assert {u.status for u in again.urls} == {"unchanged"} and len(again.urls) == 9
    assert again.chunks_written == 0 and web.not_modified[BRIDGE] == hits_before + 1

    # an edited article is replaced in place, and keeps its copies
    web.edit(BRIDGE)
    try:
        edited = service.ingest_urls([web.url("/ledger/rss.xml")])
    finally:
        web.edit(BRIDGE, False)
    assert _status(edited, web.url(BRIDGE)) == "replaced"
    assert [u.status for u in edited.urls].count("unchanged") == 4
    document = service.get_document(bridge.doc_id)
    assert "186 million pounds" in document.text and len(document.also_at) == 2

    # deleting the kept article deletes the record of its copies; a copy's URL then goes in as its own article
    service.delete(bridge.doc_id)
    assert all(bridge.doc_id != d.doc_id for d in service.docs.list_documents())
    readded = service.ingest_urls([web.url("/tribune/atom.xml")])
    assert _status(readded, web.url("/tribune/news/bridge-back-open.html")) == "added"
    assert _status(readded, web.url("/tribune/news/eden-towns-warned.html")) == "unchanged"  # still a copy


def test_files_are_never_dropped_as_copies_but_web_copies_of_them_are(web: WebServer, tmp_path: Path) -> None:
    from tests.web_fixtures.build_pages import story

    title, _, _, body = story("bridge-reopens")
    folder = tmp_path / "files"
    folder.mkdir()
    for name in ("a.txt", "b.txt"):
        (folder / name).write_text(title + "\n\n" + "\n\n".join(body))
    service = _service(tmp_path / "data")
    files = service.ingest_paths([folder])
    assert sorted(files.added) == ["a", "b"] and not files.duplicate
    report = service.ingest_urls([web.url(BRIDGE)])
    assert [(u.status, u.of) for u in report.urls] == [("duplicate", "a")]
    assert service.get_document("a").also_at[0].url == web.url(BRIDGE)


def test_copy_index_follows_writes_of_another_process(web: WebServer, tmp_path: Path) -> None:
    """Two services on one data folder (a `qa serve` and a `qa ingest`): each sees the other's articles."""
    first, second = _service(tmp_path / "data"), _service(tmp_path / "data")
    kept = first.ingest_urls([web.url(BRIDGE)]).urls[0].doc_id
    assert second.ingest_urls([web.url("/tribune/news/bridge-back-open.html")]).urls[0].status == "duplicate"
    second.delete(kept)
    assert first.ingest_urls([web.url("/courier/stories/bridge-open-again")]).urls[0].status == "added"
    assert second.ingest_urls([web.url(BRIDGE)]).urls[0].status == "duplicate"  # now of the Courier's


def test_sitemap_index_and_failures_one_line_each(web: WebServer, tmp_path: Path) -> None:
    service = _service(tmp_path / "data", max_upload_bytes=200_000, fetch_timeout=1.0, fetch_total_timeout=3.0)
    urls = [web.url(p) for p in ("/sitemap_index.xml", "/status/404", "/status/500", "/file.pdf",
                                 "/huge?bytes=3000000", "/slow?seconds=3", "/redirect/6/ledger/rss.xml",
                                 "/misc/utf8-declared-latin1.html")]
    report = service.ingest_urls(urls)
    failures = {u.url: u.error for u in report.urls if u.status == "failed"}
    assert failures == {
        web.url("/status/404"): "HTTP 404", web.url("/status/500"): "HTTP 500",
        web.url("/file.pdf"): "unsupported content type application/pdf (expected an HTML page, a feed or a sitemap)",
        web.url("/huge?bytes=3000000"): "larger than the 200000-byte limit",
        web.url("/slow?seconds=3"): "timed out",
        web.url("/redirect/6/ledger/rss.xml"): "more than 5 redirects",
    }
    assert all("\n" not in (e or "") for e in failures.values())
    added = [u for u in report.urls if u.status == "added"]
    assert len(added) == 5  # the sitemaps' four pages and the mis-declared page
    assert service.docs.count()[0] == 5, "nothing of a failed URL was stored"
    page = next(u for u in added if "utf8-declared" in u.url)
    assert "Café owners fear" in service.get_document(page.doc_id).text


def test_private_urls_refused_before_anything_is_fetched(web: WebServer, tmp_path: Path) -> None:
    service = build_service(make_settings(tmp_path / "data"))  # QA_FETCH_ALLOW_PRIVATE unset
    before = sum(web.hits.values())
    with pytest.raises(FetchRefused, match="QA_FETCH_ALLOW_PRIVATE"):
        service.ingest_urls(["https://example.org/feed", web.url("/ledger/rss.xml")])
    with pytest.raises(FetchRefused, match="only http and https"):
        service.ingest_urls(["file:///etc/passwd"])
    assert sum(web.hits.values()) == before and service.docs.count()[0] == 0


def test_html_upload_goes_through_trafilatura(tmp_path: Path) -> None:
    service = build_service(make_settings(tmp_path / "data"))
    page = (SITE / "ledger/2026/02/27/council-budget.html").read_bytes().replace(b"{{BASE}}", b"https://ledger.example")
    report = service.ingest_files([("council-budget.html", page)])
    assert report.added == ["council-budget"]
    document = service.get_document("council-budget")
    assert document.title == "City council sets budget with cuts to library opening hours"
    assert (document.author, document.source, document.published) == ("Tom Adeyemi", "The Daily Ledger", "2026-02-27")
    assert document.text.startswith("The city council approved a 412-million-pound budget")
    assert "Sign up for our free newsletter" not in document.text and "Privacy policy" not in document.text


# --- HTTP API ----------------------------------------------------------------------------------------------------

def _client(data_dir: Path, **overrides: object) -> TestClient:
    return TestClient(create_app(make_settings(data_dir, **overrides)))


def _wait_job(client: TestClient, job_id: str) -> dict:
    return wait_until(lambda: (job := client.get(f"/jobs/{job_id}").json())["status"] != "running" and job, 60,
                      "the job finishing", every=0.1)


def test_api_ingest_url_job_and_document(web: WebServer, tmp_path: Path) -> None:
    with _client(tmp_path / "data", fetch_allow_private=True, api_key="sekrit") as client:
        before = sum(web.hits.values())
        assert client.post("/documents/ingest-url", json={"urls": [web.url("/ledger/rss.xml")]}).status_code == 401
        assert sum(web.hits.values()) == before, "the key is checked before anything is fetched"
        auth = {"Authorization": "Bearer sekrit"}
        started = client.post("/documents/ingest-url", headers=auth,
                              json={"urls": [web.url("/ledger/rss.xml"), web.url("/tribune/atom.xml")]})
        assert started.status_code == 202 and started.headers["location"] == f"/jobs/{started.json()['job_id']}"
        job = _wait_job(client, started.json()["job_id"])
        assert job["status"] == "done" and job["progress"]["done"] == job["progress"]["total"] == 8
        assert len(job["report"]["added"]) == 6 and len(job["report"]["duplicate"]) == 2
        bridge = next(u["doc_id"] for u in job["report"]["urls"] if u["url"] == web.url(BRIDGE))
        document = client.get(f"/documents/{bridge}").json()
        assert document["author"] == "Ellen Marsh" and document["also_at"] == [
            {"url": web.url("/tribune/news/bridge-back-open.html"), "source": "Coastal Tribune",
             "published": "2026-03-14"}]
        waited = client.post("/documents/ingest-url", headers=auth,
                             json={"urls": [web.url("/ledger/rss.xml")], "wait": True})
        assert waited.status_code == 200 and len(waited.json()["unchanged"]) == 5
        assert client.get("/jobs/nope").status_code == 404
        for bad in ({"urls": []}, {"urls": "x"}, {"urls": [1]}, {"url": ["x"]}):
            response = client.post("/documents/ingest-url", headers=auth, json=bad)
            assert response.status_code == 422 and "error" in response.json()


def test_api_refuses_private_urls_with_403(web: WebServer, tmp_path: Path) -> None:
    with _client(tmp_path / "data") as client:
        before = sum(web.hits.values())
        for wait in (False, True):
            response = client.post("/documents/ingest-url", json={"urls": [web.url("/ledger/rss.xml")], "wait": wait})
            assert response.status_code == 403 and "private" in response.json()["error"]
        assert sum(web.hits.values()) == before


# --- CLI ---------------------------------------------------------------------------------------------------------

def _qa(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=ROOT, env=qa_env(data_dir, **env),
                          capture_output=True, text=True, timeout=240)


def test_cli_ingest_urls_mixed_with_files(web: WebServer, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "local.txt").write_text("Local note\n\nThe harbour ferry will keep its Sunday timetable until May.\n")
    result = _qa(tmp_path / "data", "ingest", web.url("/ledger/rss.xml"), web.url("/courier/feed.xml"),
                 web.url("/status/404"), str(notes), QA_FETCH_ALLOW_PRIVATE="true")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("added      http") for line in lines) == 5
    assert any(line.startswith("duplicate  " + web.url("/courier/stories/bridge-open-again")) for line in lines)
    assert f"failed     {web.url('/status/404')}: HTTP 404" in result.stderr
    assert "added 6, replaced 0, unchanged 0, failed 1, duplicate 1 documents" in result.stdout


def test_cli_refused_url_exits_2_with_one_line(web: WebServer, tmp_path: Path) -> None:
    result = _qa(tmp_path / "data", "ingest", web.url("/ledger/rss.xml"), "seeds")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "private or reserved address" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "data" / "docstore.sqlite").exists()


def test_cli_follow_rounds(web: WebServer, tmp_path: Path) -> None:
    result = _qa(tmp_path / "data", "ingest", "--follow", web.url("/ledger/rss.xml"), "--every", "1s",
                 "--rounds", "2", QA_FETCH_ALLOW_PRIVATE="true")
    assert result.returncode == 0, result.stderr
    rounds = [line for line in result.stdout.splitlines() if " round " in line]
    assert len(rounds) == 2
    assert "round 1: added 5, replaced 0, unchanged 0" in rounds[0]
    assert "round 2: added 0, replaced 0, unchanged 5" in rounds[1]
    bad = _qa(tmp_path / "data", "ingest", "--follow", web.url("/ledger/rss.xml"), "--every", "soon")
    assert bad.returncode == 2 and "--every" in bad.stderr
