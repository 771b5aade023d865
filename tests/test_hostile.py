"""Hostile input, second pass (issue 12): each test drives the real app (TestClient over a copy of the seeded
index, or `qa serve` as a subprocess) with one input from the adversarial review, and checks the promise
the README makes about it."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import make_settings
from tests.fake_llm import FakeLLM, Reply
from tests.support import ROOT, api_server, chroma_server, qa_env

KEY = "hostile-key-5b1e7c9d3a"
MARKER = re.compile(r"\[(\d+)\]")


@pytest.fixture(scope="module")
def client(seeded_app: Callable[..., TestClient]) -> TestClient:
    """The app on the module's copy of the seeds (conftest's `data_dir`)."""
    return seeded_app(answer_mode="extractive")


def _upload(client: TestClient | httpx.Client, name: str, data: bytes, **kwargs: Any) -> httpx.Response:
    return client.post("/documents", files={"files": (name, data, "text/plain")}, **kwargs)


def _sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    return events


# ---- 1. cleaning is linear in the line length, and never stops the server answering ----

def test_health_answers_while_a_one_line_article_is_cleaned(tmp_path: Path) -> None:
    """A title and one line of 24,000 words (the review's example): /health must keep answering meanwhile,
    and the article goes in. Before the fix the photo-credit regex held the GIL for tens of seconds."""
    article = ("One line report\n" + "Zorbton " * 24_000 + "\n").encode()
    with api_server(tmp_path / "data") as url:
        result: dict[str, Any] = {}

        def upload() -> None:
            with httpx.Client(base_url=url, timeout=300) as http:
                result["response"] = _upload(http, "one-line.txt", article)

        worker = threading.Thread(target=upload)
        worker.start()
        slowest = 0.0
        with httpx.Client(base_url=url, timeout=30) as http:
            while worker.is_alive():
                started = time.perf_counter()
                assert http.get("/health").status_code == 200
                slowest = max(slowest, time.perf_counter() - started)
                time.sleep(0.2)
            worker.join()
            answer = http.post("/ask", json={"question": "What does the one line report say about Zorbton?"}).json()
    assert result["response"].status_code == 201, result["response"].text
    assert slowest < 5.0, f"/health took {slowest:.1f} s during the upload"
    # a "sentence" with no punctuation is quoted in pieces of at most 1,000 characters, never the whole line
    assert len(answer["answer"]) <= 2 * 1000 + 20 and len(json.dumps(answer)) < 60_000, len(answer["answer"])


# ---- 2. bracketed numbers in article text are never citations ----

BRACKETS = (
    "Zorbton shipping report\n\n"
    "The Zorbton harbour handled 4,100 container ships in 2016 [2], the port authority said on Monday.\n\n"
    "Harbour traffic at Zorbton had doubled since the new quay opened [٣] in the spring [12].\n\n"
    "Fishermen in Zorbton complained about the noise of the cranes at night."
)


def _markers_match_citations(result: dict) -> None:
    numbers = {int(n) for n in MARKER.findall(result["answer"])}
    assert numbers == {c["n"] for c in result["citations"]}, result["answer"]
    assert len(MARKER.findall(result["answer"])) == len(re.findall(r"\[\d+\](?=\s|$)", result["answer"]))


def test_bracketed_numbers_in_articles_never_look_like_citations(client: TestClient) -> None:
    assert _upload(client, "zorbton-shipping.txt", BRACKETS.encode()).status_code == 201
    question = "How many container ships did the Zorbton harbour handle in 2016?"
    result = client.post("/ask", json={"question": question}).json()
    assert not result["refused"] and result["citations"][0]["doc_id"] == "zorbton-shipping"
    assert "4,100" in result["answer"]
    assert "[2]" not in result["answer"] and len(result["citations"]) == 1
    _markers_match_citations(result)
    for passage in result["passages"]:
        assert not re.search(r"\[\s*\d+\s*\]", passage["text"]), passage["text"]  # shown to the user as well
    article = client.get("/documents/zorbton-shipping").json()["text"]
    for citation in result["citations"]:
        assert article[citation["start"] : citation["end"]] == citation["text"]
        quote = citation["quote"]
        assert article[quote["start"] : quote["end"]] == quote["text"]

    events = _sse(client.post("/chat", json={"question": question}).text)
    streamed = "".join(data["text"] for event, data in events if event == "token")
    done = events[-1][1]
    assert events[-1][0] == "done" and streamed == done["answer"]
    assert "[2]" not in streamed
    _markers_match_citations(done)
    traffic = client.post("/ask", json={"question": "When had Zorbton harbour traffic doubled since?"}).json()
    assert not re.search(r"\[\s*[\d٣]+\s*\]", traffic["answer"].replace(f" [{1}]", "")), traffic["answer"]


def test_llm_sees_no_bracketed_numbers_from_article_text(data_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    with FakeLLM() as llm, TestClient(create_app(make_settings(copy, llm_base_url=llm.url, llm_max_retries=0))) as http:
        _upload(http, "zorbton-shipping.txt", BRACKETS.encode())
        llm.replies.append(Reply("It handled 4,100 ships [1]."))
        result = http.post("/ask", json={"question": "How many ships did the Zorbton harbour handle in 2016?"}).json()
    assert result["mode"] == "llm"
    prompt = llm.requests[0]["body"]["messages"][1]["content"]
    bodies = re.findall(r'"""\n(.*?)\n"""', prompt, re.S)
    assert bodies and any("4,100" in b for b in bodies)
    for body in bodies:
        assert not re.search(r"\[\s*\d+\s*\]", body), body


# ---- 4. file names keep distinct ids, and an upload never silently replaces a different article ----

def test_non_ascii_names_keep_distinct_ids(client: TestClient) -> None:
    first = _upload(client, "北京-2017.txt", b"Beijing report\n\nThe Beijing marathon drew 30,000 runners.")
    second = _upload(client, "上海-2017.txt", b"Shanghai report\n\nThe Shanghai marathon drew 38,000 runners.")
    assert first.status_code == 201 and second.status_code == 201, (first.text, second.text)
    assert second.json()["replaced"] == []
    (beijing,), (shanghai,) = first.json()["added"], second.json()["added"]
    assert beijing != shanghai and "北京" in beijing and "上海" in shanghai
    assert client.get(f"/documents/{beijing}").json()["text"].startswith("Beijing report")
    assert client.get(f"/documents/{shanghai}").json()["text"].startswith("Shanghai report")


def test_an_upload_never_silently_replaces_an_article_from_another_name(client: TestClient) -> None:
    assert _upload(client, "ferry.txt", b"Ferry report\n\nThe Zorbton ferry sailed at dawn.").status_code == 201
    clash = _upload(client, "ferry.md", b"Ferry notes\n\nSomething else entirely was written here.")
    assert clash.status_code == 409, clash.text
    assert "ferry" in clash.json()["error"] and "ferry.txt" in clash.json()["error"]
    assert client.get("/documents/ferry").json()["text"].startswith("Ferry report")
    spaced = _upload(client, "ferry .txt", b"Ferry again\n\nA third text under a look-alike name.")
    assert spaced.status_code == 409 or spaced.json()["added"] != ["ferry"], spaced.text
    same = _upload(client, "ferry.txt", b"Ferry report\n\nThe Zorbton ferry sailed at noon instead.")
    assert same.status_code == 201 and same.json()["replaced"] == ["ferry"]  # the same name updates in place


# ---- 5. follow-ups are bounded ----

def test_follow_up_questions_stay_bounded(client: TestClient, data_dir: Path) -> None:
    words = "what did he say about the missiles and the airbase and the strike"
    question = (" ".join([words] * 40))[:1990]
    first = client.post("/ask", json={"question": question}).json()
    conversation = first["conversation_id"]
    lengths = []
    for _ in range(8):
        result = client.post("/ask", json={"question": question, "conversation_id": conversation})
        assert result.status_code == 200, result.text
        lengths.append(len(result.json()["standalone_question"]))
    assert max(lengths) <= 2 * 2000, lengths
    with sqlite3.connect(data_dir / "conversations.sqlite") as db:
        stored = db.execute("SELECT MAX(LENGTH(standalone) + LENGTH(answer) + LENGTH(question)) FROM turns").fetchone()
    assert stored[0] <= 12_000, stored


# ---- 6. NUL and other C0 controls anywhere in a file ----

FILLER = "The Zorbton council met again to discuss the harbour budget and nothing was decided. " * 120


def test_nul_after_the_first_8_kb_is_refused_with_a_reason(client: TestClient) -> None:
    data = f"Late NUL report\n\n{FILLER}\n\n".encode() + b"\x00" + b"The Zorbton lighthouse keeper retired."
    assert len(data) > 9000
    response = _upload(client, "late-nul.txt", data)
    assert response.status_code == 422, response.text
    assert "NUL" in response.json()["error"]
    assert client.get("/documents/late-nul").status_code == 404


def test_other_control_characters_are_stripped_before_the_text_is_fixed(client: TestClient) -> None:
    data = (f"Control report\n\n{FILLER}\n\nThe Zorbton lighthouse\x1b[31m keeper\x07 retired after\x0b 41 years"
            " of service.\x0c\n").encode()
    response = _upload(client, "controls.txt", data)
    assert response.status_code == 201, response.text
    text = client.get("/documents/controls").json()["text"]
    assert not [ch for ch in text if unicodedata.category(ch) == "Cc" and ch != "\n"]
    result = client.post("/ask", json={"question": "After how many years did the Zorbton lighthouse keeper retire?"})
    body = result.json()
    assert not body["refused"] and "41 years" in body["answer"], body["answer"]
    for citation in body["citations"]:
        assert citation["text"] and text[citation["start"] : citation["end"]] == citation["text"]


# ---- 7. only regular files are read; loops and hardlinks are refused ----

@pytest.fixture
def ingest_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "harbour.txt").write_bytes(b"Harbour report\n\nThe Zorbton harbour reopened on Monday.")
    os.mkfifo(root / "pipe.txt")
    (root / "loop.txt").symlink_to(root / "loop.txt")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"Secret memo\n\nThe launch codes are 0000, said nobody.")
    os.link(outside / "secret.txt", root / "linked.txt")
    return root


def test_special_files_in_the_ingest_root(ingest_root: Path, tmp_path: Path) -> None:
    with api_server(tmp_path / "data", QA_INGEST_ROOT=str(ingest_root)) as url, \
            httpx.Client(base_url=url, timeout=20) as http:
        fifo = http.post("/documents/ingest-path", json={"paths": ["pipe.txt"]})
        assert fifo.status_code == 422 and "not a regular file" in fifo.json()["error"], fifo.text
        fine = http.post("/documents/ingest-path", json={"paths": ["harbour.txt"]})  # the lock was not kept
        assert fine.status_code == 201 and fine.json()["added"] == ["harbour"], fine.text
        loop = http.post("/documents/ingest-path", json={"paths": ["loop.txt"]})
        assert 400 <= loop.status_code < 500 and "loop" in loop.json()["error"].lower(), loop.text
        linked = http.post("/documents/ingest-path", json={"paths": ["linked.txt"]})
        assert linked.status_code in (403, 422) and "link" in linked.json()["error"], linked.text
        folder = http.post("/documents/ingest-path", json={"paths": ["."]})
        assert folder.status_code in (403, 422) or "linked" not in folder.json()["added"], folder.text
        reasons = {Path(f["file"]).name: f["error"] for f in folder.json().get("failed", [])}
        assert "not a regular file" in reasons.get("pipe.txt", "") and "link" in reasons.get("linked.txt", ""), reasons
        assert "launch codes" not in json.dumps(http.get("/documents").json())


def test_cli_reports_a_fifo_in_one_line(ingest_root: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "qa.cli", "ingest", str(ingest_root / "pipe.txt"), str(ingest_root / "harbour.txt")],
        cwd=ROOT, env=qa_env(tmp_path / "cli-data"), capture_output=True, text=True, timeout=120,
    )
    assert "Traceback" not in run.stderr
    lines = [line for line in (run.stdout + run.stderr).splitlines() if "pipe.txt" in line]
    assert len(lines) == 1 and "not a regular file" in lines[0], run.stdout + run.stderr


# ---- 8. unauthenticated writes are refused before the body is read ----

def test_unauthenticated_writes_are_refused_before_the_body(tmp_path: Path) -> None:
    with api_server(tmp_path / "data", QA_API_KEY=KEY) as url:
        port = int(url.rsplit(":", 1)[1])
        for auth in ("", "Authorization: Bearer wrong\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
                sock.sendall(
                    f"POST /documents HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 7000000\r\n"
                    "Content-Type: multipart/form-data; boundary=zz\r\n\r\n".encode() + b"--zz\r\n" + b"x" * 1000
                )
                try:
                    head = sock.recv(4096).decode("latin-1")
                except TimeoutError:
                    head = "(no answer within 3 s)"
            assert head.startswith("HTTP/1.1 401"), head


# ---- 9. Unicode normalisation ----

def test_nfc_question_finds_nfd_article(client: TestClient) -> None:
    text = ("Café report\n\nThe Zorbtonese café on Mövenstraße served 1,200 crème brûlée portions during the "
            "festival weekend, its owner said.")
    response = _upload(client, "cafe-nfd.txt", unicodedata.normalize("NFD", text).encode())
    assert response.status_code == 201, response.text
    stored = client.get("/documents/cafe-nfd").json()["text"]
    assert stored == unicodedata.normalize("NFC", stored)
    for form in ("NFC", "NFD"):
        question = unicodedata.normalize(form, "How many crème brûlée portions did the café on Mövenstraße serve?")
        result = client.post("/ask", json={"question": question}).json()
        assert result["question"] == unicodedata.normalize("NFC", question)
        assert not result["refused"] and result["citations"][0]["doc_id"] == "cafe-nfd", result["answer"]
        for citation in result["citations"]:
            assert stored[citation["start"] : citation["end"]] == citation["text"]


# ---- 10. a transient Chroma error is retried once ----

class FlakyProxy:
    """A real HTTP proxy on 127.0.0.1 in front of `chroma run` that answers the next `fail` query requests
    with a 500 (the fault seen under concurrent writes), forwarding everything else unchanged."""

    def __init__(self, target: str) -> None:
        self.fail = 0
        self.failed = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0) or 0))
                if self.path.endswith("/query") and proxy.fail > 0:
                    proxy.fail -= 1
                    proxy.failed += 1
                    payload = b'{"error":"InternalError","message":"transient"}'
                    self.send_response(500)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                reply = httpx.request(self.command, target + self.path, content=body, headers=headers, timeout=30)
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("content-length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FlakyProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_single_chroma_error_is_retried(tmp_path: Path) -> None:
    harbour = b"Harbour report\n\nThe Zorbton harbour reopened on Monday."
    with chroma_server(tmp_path / "chroma") as (chroma_url, _proc), FlakyProxy(chroma_url) as proxy, \
            api_server(tmp_path / "data", QA_CHROMA_URL=proxy.url) as url, \
            httpx.Client(base_url=url, timeout=60) as http:
        assert _upload(http, "harbour.txt", harbour).status_code == 201
        question = {"question": "When did the Zorbton harbour reopen?"}
        proxy.fail = 1
        once = http.post("/ask", json=question)
        assert once.status_code == 200 and proxy.failed == 1, once.text
        proxy.fail = 10
        twice = http.post("/ask", json=question)
        assert twice.status_code == 503, twice.text
        assert "retried" in twice.json()["error"] and "500" in twice.json()["error"], twice.text
        proxy.fail = 0
        assert http.post("/ask", json=question).status_code == 200


# ---- 11. a large upload reports progress and reads stay fast ----

def test_a_large_upload_reports_progress(tmp_path: Path) -> None:
    sentences = [f"Report {i}: the Zorbton harbour logged ship number {i} on a {['calm', 'windy', 'wet'][i % 3]} day."
                 for i in range(2500)]
    article = ("Harbour log\n\n" + "\n\n".join(" ".join(sentences[i : i + 5]) for i in range(0, 2500, 5))).encode()
    with api_server(tmp_path / "data") as url:
        result: dict[str, Any] = {}

        def upload() -> None:
            with httpx.Client(base_url=url, timeout=600) as http:
                result["response"] = _upload(http, "harbour-log.txt", article)

        worker = threading.Thread(target=upload)
        worker.start()
        seen: list[dict] = []
        with httpx.Client(base_url=url, timeout=30) as http:
            while worker.is_alive():
                health = http.get("/health").json()
                if health.get("ingest"):
                    seen.append(health["ingest"])
                assert http.get("/documents").status_code == 200
                time.sleep(0.3)
            after = http.get("/health").json()
        worker.join()
    assert result["response"].status_code == 201, result["response"].text
    assert seen, "no progress was reported during the upload"
    assert any(0 < p["done"] < p["total"] for p in seen), seen
    assert all(p["document"] == "harbour-log" for p in seen if p.get("document"))
    assert not after.get("ingest")
