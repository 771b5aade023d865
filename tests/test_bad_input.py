"""Bad input on every endpoint and CLI command: each gets a clear 4xx JSON error (or one CLI error line and a
non-zero exit), never a 5xx or a traceback, and nothing is half-written to the index."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from qa.cli import app as cli_app
from qa.service import build_service
from tests.conftest import make_settings
from tests.reliability_support import assert_consistent
from tests.support import SEEDS

MAX_UPLOAD = 20_000  # QA_MAX_UPLOAD_BYTES for these tests; bodies are capped at 4x this + 64 KiB
BODY_LIMIT = MAX_UPLOAD * 4 + 65_536
SEED_IDS = {p.stem for p in SEEDS.glob("*.txt")}
TRIED: dict[str, int] = {}


def tried(kind: str) -> None:
    TRIED[kind] = TRIED.get(kind, 0) + 1


@pytest.fixture(scope="module")
def client(data_dir: Path, seeded_app: Callable[..., TestClient]) -> TestClient:
    """The app on the module's copy of the seeds (conftest's `data_dir`), with a small upload cap and an ingest root."""
    root = data_dir.parent / "ingest-root"
    root.mkdir()
    return seeded_app(max_upload_bytes=MAX_UPLOAD, ingest_root=root)


def assert_clear_error(response: Any, status: int | tuple[int, ...], fragment: str = "") -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    assert isinstance(message, str) and 0 < len(message) < 600 and "Traceback" not in message
    assert fragment.lower() in message.lower(), message


# (case id, JSON body or raw bytes, expected status(es), fragment of the error message)
QUESTION_CASES: list[tuple[str, Any, int | tuple[int, ...], str]] = [
    ("empty", {"question": ""}, 400, "empty"),  # as a blank one (issue 23)
    ("whitespace", {"question": " \t\n\r "}, 400, "empty"),
    ("control-only", {"question": "\x00\x01\x08\x1b\x7f"}, 400, "empty"),
    ("100kB", {"question": "why " * 25_000}, 422, "question"),
    ("over-limit", {"question": "w" * 2001}, 400, "longer than 2000"),
    ("int", {"question": 5}, 422, "question"),
    ("null", {"question": None}, 422, "question"),
    ("list", {"question": ["a", "b"]}, 422, "question"),
    ("object", {"question": {"text": "a"}}, 422, "question"),
    ("missing", {}, 422, "question"),
    ("array-body", [{"question": "hi"}], 422, "body"),
    ("string-body", "Where is Shayrat?", 422, "body"),
    ("null-body", None, 422, "body"),
    ("unknown-field", {"question": "hi?", "temperature": 2}, 422, "temperature"),
    ("k-zero", {"question": "hi?", "k": 0}, 422, "k"),
    ("k-negative", {"question": "hi?", "k": -3}, 422, "k"),
    ("k-51", {"question": "hi?", "k": 51}, 422, "k"),
    ("k-huge", {"question": "hi?", "k": 10**30}, 422, "k"),
    ("k-float", {"question": "hi?", "k": 2.5}, 422, "k"),
    ("k-text", {"question": "hi?", "k": "five"}, 422, "k"),
    ("filters-string", {"question": "hi?", "filters": "RT"}, 422, "filters"),
    ("filters-list", {"question": "hi?", "filters": ["RT"]}, 422, "filters"),
    ("filters-unknown", {"question": "hi?", "filters": {"author": "x"}}, 422, "author"),
    ("filters-empty-source", {"question": "hi?", "filters": {"source": ""}}, 422, "source"),
    ("filters-long-source", {"question": "hi?", "filters": {"source": "s" * 201}}, 422, "source"),
    ("filters-bad-date", {"question": "hi?", "filters": {"published_from": "yesterday"}}, 422, "published_from"),
    ("filters-month-13", {"question": "hi?", "filters": {"published_to": "2017-13-01"}}, 422, "published_to"),
    ("filters-reversed", {"question": "hi?", "filters": {"published_from": "2017-05-01",
                                                          "published_to": "2017-04-01"}}, 400, "after"),
    ("conversation-traversal", {"question": "hi?", "conversation_id": "../../etc/passwd"}, 422, "conversation_id"),
    ("conversation-long", {"question": "hi?", "conversation_id": "a" * 65}, 422, "conversation_id"),
    ("conversation-empty", {"question": "hi?", "conversation_id": ""}, 422, "conversation_id"),
    ("malformed-json", b'{"question": "hi?"', 422, "not valid JSON"),
    ("not-utf8", b'{"question": "caf\xe9?"}', 400, "body"),
    ("lone-surrogate", b'{"question": "\\ud800 where?"}', 422, "question"),
    ("empty-body", b"", 422, "body"),
]


@pytest.mark.parametrize("endpoint", ["/ask", "/chat"])
@pytest.mark.parametrize(("body", "status", "fragment"), [c[1:] for c in QUESTION_CASES],
                         ids=[c[0] for c in QUESTION_CASES])
def test_bad_questions(client: TestClient, endpoint: str, body: Any, status: int, fragment: str) -> None:
    if isinstance(body, bytes):
        response = client.post(endpoint, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(endpoint, json=body)
    tried(f"POST {endpoint}")
    assert_clear_error(response, status, fragment)  # /chat too: a JSON error, not an event stream


def test_control_characters_inside_a_question_are_dropped(client: TestClient) -> None:
    response = client.post("/ask", json={"question": "Where\x00 is the\x1b Shayrat\x7f Airbase?"})
    tried("POST /ask")
    assert response.status_code == 200
    assert response.json()["question"] == "Where  is the  Shayrat  Airbase?"
    assert "Homs" in response.json()["answer"]


def test_wrong_content_type_and_method(client: TestClient) -> None:
    form = client.post("/ask", data={"question": "hi?"})
    assert_clear_error(form, 422, "body")
    wrong = client.put("/ask", json={"question": "hi?"})
    assert_clear_error(wrong, 405)
    assert wrong.headers["allow"] == "POST"
    for _ in range(2):
        tried("POST /ask")


@pytest.mark.parametrize("doc_id", ["nope", "..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "%00", "x" * 3000,
                                    "%C3%28", "ingest-path", "' OR 1=1 --", "002_5bbdd2f0c43ed421%20"])
def test_unknown_document_ids(client: TestClient, doc_id: str) -> None:
    for method in ("GET", "DELETE"):
        response = client.request(method, f"/documents/{doc_id}")
        tried(f"{method} /documents/{{id}}")
        assert_clear_error(response, 404, "" if "/" in doc_id or "%2F" in doc_id else "no document with id")


# (case id, file name, content, fragment of the failure reason)
PDF_BYTES = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nstream\n\x00\x01x\x9c"
UPLOAD_CASES = [
    ("empty", "empty.txt", b"", "empty"),
    ("whitespace", "blank.txt", b" \n\t\r\n ", "empty"),
    ("binary-png", "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary"),
    ("binary-nul", "nul.txt", b"Looks like text\x00but is not", "binary"),
    ("control-bytes", "ctl.txt", bytes(range(1, 9)) * 50, "binary"),
    ("latin-1", "latin.txt", "Café société à Moscou, déclaré le ministre.".encode("latin-1"), "UTF-8"),
    ("utf-16", "utf16.txt", "An article in UTF-16.".encode("utf-16"), "binary"),
    ("over-limit", "huge.txt", b"word " * (MAX_UPLOAD // 5 + 1), "limit"),
    ("only-boilerplate", "junk.html", b"<html><script>alert(1)</script><nav>Home</nav></html>", "no article text"),
    ("dots-name", "..", b"Some article text here.", "no usable document id"),
    ("symbols-name", "%%%.txt", b"Some article text here.", "no usable document id"),
    # one type rule for uploads and `qa ingest` (issue 23): the suffix decides, and a PDF is said to be one
    ("text-named-pdf", "notes.pdf", b"%PDF-1.4 fake\n\nSome article text here.", "PDF is not supported"),
    ("json", "data.json", b'{"title": "Some article text here."}', "unsupported type (use .txt"),
    ("real-pdf", "report.pdf", PDF_BYTES, "PDF is not supported"),
    ("pdf-as-txt", "report.txt", PDF_BYTES, "PDF is not supported"),
]


@pytest.mark.parametrize(("name", "data", "fragment"), [c[1:] for c in UPLOAD_CASES],
                         ids=[c[0] for c in UPLOAD_CASES])
def test_bad_uploads(client: TestClient, name: str, data: bytes, fragment: str) -> None:
    response = client.post("/documents", files={"files": (name, data, "text/plain")})
    tried("POST /documents")
    assert_clear_error(response, 422, fragment)
    assert response.json()["added"] == [] and response.json()["failed"][0]["file"] == name


def test_malformed_upload_requests(client: TestClient) -> None:
    cases = [
        (client.post("/documents"), 422, "files"),
        (client.post("/documents", data={"files": "not a file"}), 422, "files"),
        (client.post("/documents", json={"files": ["a.txt"]}), 422, "files"),
        (client.post("/documents", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=zz"}),
         400, "multipart"),
        (client.post("/documents", content=b"--zz\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\""
                                            b"\r\n\r\nunterminated", headers={"content-type":
                                                                              "multipart/form-data; boundary=zz"}),
         (400, 422), ""),
        (client.post("/documents", files={"files": ("a" * 20_000 + ".txt", b"text", "text/plain")}), 400, "multipart"),
    ]
    for response, status, fragment in cases:
        tried("POST /documents")
        assert_clear_error(response, status, fragment)


def test_gigantic_bodies_are_refused_before_they_are_read(client: TestClient) -> None:
    declared = client.post("/documents", content=b"x" * (BODY_LIMIT + 1),
                           headers={"content-type": "multipart/form-data; boundary=zz"})
    assert_clear_error(declared, 413, f"larger than {BODY_LIMIT} bytes")
    lying = client.post("/ask", content=b"{}", headers={"content-type": "application/json", "content-length": "-1"})
    assert lying.status_code in (400, 413)

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield (b'--zz\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n'
               b"Content-Type: text/plain\r\n\r\n")
        for _ in range(BODY_LIMIT // 10_000 + 2):
            yield b"word " * 2000
        yield b"\r\n--zz--\r\n"

    multipart = {"content-type": "multipart/form-data; boundary=zz"}
    streamed = client.post("/documents", content=chunked(), headers=multipart)
    assert_clear_error(streamed, 413, "larger than")
    big_json = client.post("/ask", content=json.dumps({"question": "x" * (BODY_LIMIT + 10)}).encode(),
                           headers={"content-type": "application/json"})
    assert_clear_error(big_json, 413, "larger than")
    for _ in range(4):
        tried("oversized body")


@pytest.mark.parametrize("name", ["../../x.txt", "/etc/cron.d/x.txt", "..\\..\\x.txt", "C:\\Windows\\x.txt",
                                  "x\r\nX-Injected: 1.txt"])
def test_hostile_file_names_only_name_the_document(client: TestClient, data_dir: Path, name: str) -> None:
    """A file name is only ever turned into a document id; nothing is written to disk by that name."""
    body = f"Hostile name report\n\nThe upload named {name!r} was filed under a safe id.".encode()
    response = client.post("/documents", files={"files": (name, body, "text/plain")})
    tried("POST /documents")
    assert response.status_code == 201, response.text
    (doc_id,) = response.json()["added"]
    assert doc_id.startswith("x") and "/" not in doc_id and "\\" not in doc_id and ".." not in doc_id
    assert client.get(f"/documents/{doc_id}").json()["text"].startswith("Hostile name report")
    assert client.delete(f"/documents/{doc_id}").status_code == 200
    for base in (data_dir, data_dir.parent, data_dir.parent.parent, Path.cwd()):
        assert not (base / "x.txt").exists()


def test_two_files_with_one_document_id_in_one_upload(client: TestClient) -> None:
    """The first is ingested, the second reported: never a silent overwrite within one request."""
    files = [("files", ("twin.txt", b"Twin one\n\nThe first twin article.", "text/plain")),
             ("files", ("dir/twin.md", b"Twin two\n\nThe second twin article.", "text/plain"))]
    response = client.post("/documents", files=files)
    tried("POST /documents")
    assert response.status_code == 201 and response.json()["added"] == ["twin"]
    assert "same document id 'twin'" in response.json()["failed"][0]["error"]
    assert client.get("/documents/twin").json()["text"].startswith("Twin one")
    assert client.delete("/documents/twin").status_code == 200


INGEST_PATH_CASES: list[tuple[str, Any, int, str]] = [
    ("empty-list", {"paths": []}, 422, "paths"),
    ("empty-string", {"paths": [""]}, 422, "paths"),
    ("blank", {"paths": ["   "]}, 400, "invalid path"),
    ("nul", {"paths": ["a\x00b"]}, 400, "invalid path"),
    ("not-a-list", {"paths": "seeds"}, 422, "paths"),
    ("numbers", {"paths": [1, 2]}, 422, "paths"),
    ("too-many", {"paths": ["a.txt"] * 101}, 422, "paths"),
    ("too-long", {"paths": ["a" * 4097]}, 422, "paths"),
    ("name-too-long", {"paths": ["a" * 300 + ".txt"]}, 400, "invalid path"),
    ("unknown-field", {"paths": ["a.txt"], "recursive": True}, 422, "recursive"),
    ("missing", {"paths": ["nope.txt"]}, 400, "no such file"),
]


@pytest.mark.parametrize(("body", "status", "fragment"), [c[1:] for c in INGEST_PATH_CASES],
                         ids=[c[0] for c in INGEST_PATH_CASES])
def test_bad_ingest_path_requests(client: TestClient, body: Any, status: int, fragment: str) -> None:
    tried("POST /documents/ingest-path")
    assert_clear_error(client.post("/documents/ingest-path", json=body), status, fragment)


INGEST_URL_CASES = [
    ("empty", {"urls": []}, 422, "urls"),
    ("not-a-list", {"urls": "http://example.org/feed"}, 422, "urls"),
    ("not-strings", {"urls": [1]}, 422, "urls"),
    ("too-many", {"urls": ["http://example.org/"] * 101}, 422, "urls"),
    ("too-long", {"urls": ["http://example.org/" + "a" * 4097]}, 422, "urls"),
    ("unknown-field", {"urls": ["http://example.org/"], "depth": 3}, 422, "depth"),
    ("wait-not-bool", {"urls": ["http://example.org/"], "wait": "soon"}, 422, "wait"),
    ("ftp", {"urls": ["ftp://example.org/feed.xml"]}, 403, "only http and https"),
    ("file", {"urls": ["file:///etc/passwd"]}, 403, "only http and https"),
    ("no-scheme", {"urls": ["example.org/feed.xml"]}, 403, "only http and https"),
    ("not-a-url", {"urls": ["https://example.org/a", "\u00c4\u00d3\u0012[\U0001860f{\u0004"], "wait": True}, 400,
     "not a valid URL"),
    ("no-host", {"urls": ["http:///feed.xml"]}, 400, "has no host"),
    ("loopback", {"urls": ["http://127.0.0.1:8000/documents"]}, 403, "private or reserved"),
    ("localhost", {"urls": ["http://localhost/"]}, 403, "private or reserved"),
    ("metadata", {"urls": ["http://169.254.169.254/latest/meta-data/"]}, 403, "private or reserved"),
    ("ipv6-loopback", {"urls": ["http://[::1]/"], "wait": True}, 403, "private or reserved"),
    ("one-of-many", {"urls": ["https://example.org/a", "http://10.0.0.1/feed"]}, 403, "10.0.0.1"),
]


@pytest.mark.parametrize(("body", "status", "fragment"), [c[1:] for c in INGEST_URL_CASES],
                         ids=[c[0] for c in INGEST_URL_CASES])
def test_bad_ingest_url_requests(client: TestClient, body: Any, status: int, fragment: str) -> None:
    tried("POST /documents/ingest-url")
    assert_clear_error(client.post("/documents/ingest-url", json=body), status, fragment)


def test_nothing_was_half_written(client: TestClient, data_dir: Path) -> None:
    """After every bad request above, the index holds exactly the seeds, consistent across all stores."""
    assert {d["doc_id"] for d in client.get("/documents").json()["documents"]} == SEED_IDS
    health = client.get("/health").json()
    assert health["documents"] == 5 and health["chunks"] == health["vectors"]
    assert_consistent(build_service(make_settings(data_dir)), SEED_IDS)


# ---- the CLI: the same inputs give one error line and a non-zero exit code ----

@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, seeded_dir: Path, tmp_path: Path) -> Path:
    """The CLI in-process (typer's runner, the real commands) on a private copy of the seeded index."""
    import os

    data = tmp_path / "data"
    shutil.copytree(seeded_dir, data)
    for name in [n for n in os.environ if n.startswith("QA_") or n == "OPENAI_API_KEY"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("QA_DATA_DIR", str(data))
    monkeypatch.setenv("QA_MAX_UPLOAD_BYTES", str(MAX_UPLOAD))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return tmp_path


def run_cli(*args: str) -> Any:
    result = CliRunner().invoke(cli_app, list(args))
    tried("CLI")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


CLI_CASES: list[tuple[str, list[str], int, str]] = [
    ("ask-empty", ["ask", ""], 2, "error: question is empty"),
    ("ask-whitespace", ["ask", " \t "], 2, "error: question is empty"),
    ("ask-control", ["ask", "\x01\x02\x1b"], 2, "error: question is empty"),
    ("ask-100kB", ["ask", "why " * 25_000], 2, "error: question is longer than 2000"),
    ("ask-k-zero", ["ask", "hi?", "-k", "0"], 2, "-k"),
    ("ask-k-huge", ["ask", "hi?", "-k", "100000000000000000000"], 2, "-k"),
    ("ask-k-text", ["ask", "hi?", "-k", "five"], 2, "-k"),
    ("ask-bad-date", ["ask", "hi?", "--since", "2017-13-01"], 2, "error: bad date filter"),
    ("ask-reversed", ["ask", "hi?", "--since", "2017-05-01", "--until", "2017-04-01"], 2, "after"),
    ("ask-empty-source", ["ask", "hi?", "--source", ""], 2, "error: --source must not be empty"),
    ("ask-bad-conversation", ["ask", "hi?", "--conversation", "../x"], 2, "error: conversation_id"),
    ("ask-unknown-option", ["ask", "hi?", "--temperature", "2"], 2, "--temperature"),
    ("ingest-missing", ["ingest", "/nonexistent/folder"], 2, "error: no such file or folder"),
]


@pytest.mark.parametrize(("args", "code", "fragment"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(cli_env: Path, args: list[str], code: int, fragment: str) -> None:
    result = run_cli(*args)
    assert result.exit_code == code, result.output
    assert fragment in " ".join(result.stderr.split()), result.stderr
    if result.stderr.lstrip().startswith("error:"):  # our own errors: exactly one line
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_cli_ingest_of_only_bad_files(cli_env: Path) -> None:
    folder = cli_env / "bad"
    folder.mkdir()
    files = {name: data for _, name, data, _ in UPLOAD_CASES if name.endswith((".txt", ".html"))}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    result = run_cli("ingest", str(folder))
    assert result.exit_code == 1
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == len(files), result.stderr  # one line per bad file, each with its reason
    assert "added 0, replaced 0, unchanged 0" in result.stdout
    assert_consistent(build_service(make_settings(cli_env / "data")), SEED_IDS)


def test_cli_bad_configuration_is_one_line(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_TOP_K", "lots")
    result = run_cli("ask", "hi?")
    assert result.exit_code == 1 and result.stderr.startswith("error: invalid configuration")
    assert len(result.stderr.strip().splitlines()) == 1


def teardown_module() -> None:
    print(f"\nbad inputs tried: {sum(TRIED.values())}", *[f"{k}: {v}" for k, v in sorted(TRIED.items())],
          sep="\n  ")
