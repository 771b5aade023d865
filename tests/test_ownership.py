"""Conversations belong to the client that started them (issue 12, item 3): the server issues the ids (at
least 128 random bits) and an opaque client token (cookie `qa_client`, or header `X-QA-Client` for API
clients); an unknown or foreign id is a 404 that reveals nothing."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support import api_server

FIRST = "Who did Trump fire?"
FOLLOW = "What was he investigating?"


@pytest.fixture(scope="module")
def app(seeded_app: Callable[..., TestClient]) -> object:
    """The started app on the module's copy of the seeds (conftest's `data_dir`); each test makes its clients."""
    return seeded_app(answer_mode="extractive").app


def _client(app: object) -> TestClient:
    return TestClient(app)  # type: ignore[arg-type]


def test_ids_are_issued_by_the_server_with_a_client_cookie(app: object) -> None:
    alice = _client(app)
    first = alice.post("/ask", json={"question": FIRST})
    assert first.status_code == 200
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("qa_client=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie.replace(
        "samesite=strict", "SameSite=Strict")
    ids = {first.json()["conversation_id"]} | {alice.post("/ask", json={"question": FIRST}).json()["conversation_id"]
                                               for _ in range(3)}
    assert len(ids) == 4
    for conversation_id in ids:
        assert len(conversation_id) >= 22  # >= 128 bits in URL-safe base64
    follow = alice.post("/ask", json={"question": FOLLOW, "conversation_id": first.json()["conversation_id"]})
    assert follow.status_code == 200 and FIRST in follow.json()["standalone_question"]


def test_a_made_up_id_is_not_a_conversation(app: object) -> None:
    response = _client(app).post("/ask", json={"question": FIRST, "conversation_id": "my-own-id"})
    error = response.json()["error"]  # a request without a client token: the 404 says what is missing
    assert response.status_code == 404 and error.startswith("no such conversation") and "X-QA-Client" in error


def test_a_foreign_conversation_reveals_nothing_and_is_not_changed(app: object, data_dir: Path) -> None:
    alice, mallory = _client(app), _client(app)
    secret = "Who did Trump fire, and what about the Zorbton secret?"
    started = alice.post("/ask", json={"question": secret}).json()
    conversation = started["conversation_id"]
    mallory.post("/ask", json={"question": "hello?"})  # mallory has a client token of her own
    for endpoint in ("/ask", "/chat"):
        stolen = mallory.post(endpoint, json={"question": FOLLOW, "conversation_id": conversation})
        assert stolen.status_code == 404, stolen.text
        assert stolen.json() == {"error": "no such conversation"} and "Zorbton" not in stolen.text
    forged = httpx.Headers({"X-QA-Client": "forged-token"})
    assert _client(app).post("/ask", json={"question": FOLLOW, "conversation_id": conversation},
                             headers=forged).status_code == 404
    with sqlite3.connect(data_dir / "conversations.sqlite") as db:
        turns = db.execute("SELECT COUNT(*) FROM turns WHERE conversation_id=?", (conversation,)).fetchone()[0]
    assert turns == 1
    own = alice.post("/ask", json={"question": FOLLOW, "conversation_id": conversation}).json()
    assert "Zorbton secret" in own["standalone_question"]


def test_api_clients_use_the_header(app: object) -> None:
    bare = _client(app)
    first = bare.post("/ask", json={"question": FIRST})
    token = first.headers["x-qa-client"]
    bare.cookies.clear()
    headers = {"X-QA-Client": token}
    follow = bare.post("/ask", json={"question": FOLLOW, "conversation_id": first.json()["conversation_id"]},
                       headers=headers)
    assert follow.status_code == 200 and FIRST in follow.json()["standalone_question"]


def test_the_store_lists_a_clients_conversations(app: object, data_dir: Path) -> None:
    alice = _client(app)
    ids = [alice.post("/ask", json={"question": q}).json()["conversation_id"] for q in (FIRST, "Where is Shayrat?")]
    with sqlite3.connect(data_dir / "conversations.sqlite") as db:
        rows = db.execute("SELECT id, client, created, title FROM conversations WHERE id IN (?, ?)", ids).fetchall()
    assert len(rows) == 2 and len({r[1] for r in rows}) == 1 and rows[0][1] not in ids
    # each kept with its own title (made from the question's names and the cited headline: tests/test_chat_edits.py)
    assert all(r[3] and r[2] for r in rows) and len({r[3] for r in rows}) == 2


def test_conversations_work_across_workers(tmp_path: Path, seeded_dir: Path) -> None:
    """Two `qa serve` processes on one data folder accept each other's client tokens."""
    data = tmp_path / "data"
    shutil.copytree(seeded_dir, data)
    with api_server(data) as one:
        first = httpx.post(f"{one}/ask", json={"question": FIRST}, timeout=60)
        token = first.headers["x-qa-client"]
    with api_server(data) as two:
        follow = httpx.post(f"{two}/ask", json={"question": FOLLOW, "conversation_id": first.json()["conversation_id"]},
                            headers={"X-QA-Client": token}, timeout=60)
    assert follow.status_code == 200 and FIRST in follow.json()["standalone_question"], follow.text
