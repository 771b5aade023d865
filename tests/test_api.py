"""The HTTP API through its interface (TestClient), on a real index of the seeds."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from qa.service import Service
from tests.support import wait_until

KEY = "s3cret-key"


@pytest.fixture
def client(copy_seeded: Callable[..., Service]) -> Iterator[TestClient]:
    settings = copy_seeded(api_key=KEY).settings
    with TestClient(create_app(settings)) as test_client:
        yield test_client


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_health(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["documents"] == 5 and body["chunks"] == body["vectors"] > 0
    assert body["store"] == "embedded" and body["llm_configured"] is False and body["answer_mode"] == "extractive"
    # the background fill's first round counts what is waiting: nothing here
    wait_until(lambda: client.get("/health").json()["spans_waiting"] == 0, 30, "no spans waiting", every=0.05)


def test_ask_returns_the_contract(client: TestClient) -> None:
    response = client.post("/ask", json={"question": "Where is the Shayrat Airbase?", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert {"question", "answer", "refused", "citations", "passages", "conversation_id", "timings_ms"} <= set(body)
    assert "Homs" in body["answer"] and len(body["passages"]) == 3
    citation = body["citations"][0]
    article = client.get(f"/documents/{citation['doc_id']}").json()
    assert article["text"][citation["start"] : citation["end"]] == citation["text"]


def test_ask_with_filters(client: TestClient) -> None:
    body = client.post("/ask", json={"question": "What did Lavrov say?", "filters": {"source": "TASS"}}).json()
    assert body["passages"] and {p["source"] for p in body["passages"]} == {"TASS"}
    bad = client.post("/ask", json={"question": "x?", "filters": {"published_from": "2017-05-01",
                                                                  "published_to": "2017-04-01"}})
    assert bad.status_code == 400 and "published_from" in bad.json()["error"]


@pytest.mark.parametrize("body,where", [
    ({}, "question"),
    ({"question": ""}, "question"),
    ({"question": "   \t "}, "empty"),
    ({"question": "ok?", "k": 0}, "k"),
    ({"question": "ok?", "k": 10_000}, "k"),
    ({"question": 42}, "question"),
    ({"question": "ok?", "extra": 1}, "extra"),
    ({"question": "ok?", "filters": {"published_from": "yesterday"}}, "published_from"),
    ({"question": "ok?", "conversation_id": "../../etc"}, "conversation_id"),
    ({"question": "x" * 2001}, "longer than 2000"),
])
def test_ask_validation_errors(client: TestClient, body: dict, where: str) -> None:
    response = client.post("/ask", json=body)
    assert 400 <= response.status_code < 500
    assert where in response.json()["error"]


def test_malformed_json_is_a_4xx(client: TestClient) -> None:
    response = client.post("/ask", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "error" in response.json()


def test_chat_streams_sources_tokens_done(client: TestClient) -> None:
    with client.stream("POST", "/chat", json={"question": "Where is the Shayrat Airbase?"}) as response:
        assert response.status_code == 200
        raw = "".join(response.iter_text())
    events = [(b.split("\n")[0][7:], json.loads(b.split("\n")[1][6:])) for b in raw.strip().split("\n\n")]
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done" and "token" in names
    streamed = "".join(data["text"] for name, data in events if name == "token")
    assert streamed == events[-1][1]["answer"]
    assert events[0][1]["conversation_id"] == events[-1][1]["conversation_id"]


def test_chat_validation_error_is_not_a_stream(client: TestClient) -> None:
    response = client.post("/chat", json={"question": " "})
    assert response.status_code == 400 and response.json()["error"] == "question is empty"


def test_documents_list_get_and_404(client: TestClient) -> None:
    documents = client.get("/documents").json()["documents"]
    assert len(documents) == 5 and all("text" not in d for d in documents)
    one = client.get("/documents/002_5bbdd2f0c43ed421").json()
    assert one["published"] == "2017-05-10" and one["source"] == "AFP" and "320,000" in one["text"]
    missing = client.get("/documents/nope")
    assert missing.status_code == 404 and missing.json() == {"error": "no document with id 'nope'"}
    assert client.delete("/documents/nope", headers=AUTH).status_code == 404


def test_write_endpoints_need_the_key(client: TestClient) -> None:
    files = {"files": ("x.txt", b"A short article about zebras in Moscow.", "text/plain")}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        assert client.post("/documents", files=files, headers=headers).status_code == 401
        response = client.delete("/documents/002_5bbdd2f0c43ed421", headers=headers)
        assert response.status_code == 401 and response.json() == {"error": "missing or invalid API key"}
    assert client.get("/documents").json()["documents"][2]["doc_id"] == "002_5bbdd2f0c43ed421"


def test_upload_then_ask_then_delete(client: TestClient) -> None:
    text = b"Zebra summit\n\nThe zebra summit in Minsk ended with 17 zebras signing a grazing accord."
    files = [("files", ("zebra-summit.txt", text, "text/plain")), ("files", ("bad.txt", b"\xff\xfe\x00", "text/plain"))]
    response = client.post("/documents", files=files, headers=AUTH)
    assert response.status_code == 201
    body = response.json()
    assert body["added"] == ["zebra-summit"] and body["failed"][0]["file"] == "bad.txt"
    again = client.post("/documents", files=files[:1], headers=AUTH)
    assert again.status_code == 200 and again.json()["unchanged"] == ["zebra-summit"]
    answer = client.post("/ask", json={"question": "How many zebras signed the grazing accord?"}).json()
    assert "17" in answer["answer"] and answer["citations"][0]["doc_id"] == "zebra-summit"
    assert client.delete("/documents/zebra-summit", headers=AUTH).json() == {"deleted": "zebra-summit"}
    assert client.get("/documents/zebra-summit").status_code == 404
    only_bad = client.post("/documents", files=files[1:], headers=AUTH)
    assert only_bad.status_code == 422 and "bad.txt" in only_bad.json()["error"]


def test_chat_page_and_openapi(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/openapi.json").json()["info"]["title"] == "News QA"


def test_docs_example_works_a_lost_token_is_said_and_empty_is_blank(client: TestClient) -> None:
    """Issue 23: the /docs example for POST /ask answers (no made-up conversation_id); a follow-up without the
    client token says the token is missing; an empty question is the same 400 as a blank one."""
    schema = client.get("/openapi.json").json()["components"]["schemas"]["AskIn"]
    (example,) = schema["examples"]
    assert "conversation_id" not in example
    first = client.post("/ask", json=example)
    assert first.status_code == 200, first.text
    conversation = first.json()["conversation_id"]
    token = first.headers["x-qa-client"]
    client.cookies.clear()
    lost = client.post("/ask", json={"question": "When was it?", "conversation_id": conversation})
    assert lost.status_code == 404 and "X-QA-Client" in lost.json()["error"]
    kept = client.post("/ask", json={"question": "When was it?", "conversation_id": conversation},
                       headers={"X-QA-Client": token})
    assert kept.status_code == 200, kept.text
    for blank in ("", "   "):
        response = client.post("/ask", json={"question": blank})
        assert response.status_code == 400 and response.json()["error"] == "question is empty"
