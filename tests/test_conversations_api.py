"""The conversation history API (issue 15): list, read, rename and delete one's own conversations; a client
that disconnects from /chat stops the work and leaves no half answer; feedback stored and exported."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from eval.dataset import load_dataset
from qa.conversations import ConversationStore, Limits, Turn
from qa.conversations import store as conversation_store
from qa.conversations.feedback import EVIDENCE_QUOTES, QUOTE_CHARS
from qa.conversations.store import PASSAGE_CHARS, RESULT_CHARS, STORED_PASSAGES, SWEEP_EVERY
from qa.db import sqlite_file
from qa.db.schema import CONVERSATIONS
from tests.conftest import LLMServer, make_settings
from tests.fake_llm import Reply
from tests.support import ROOT, qa_env, wait_until

FIRST = "Who did Trump fire?"
FOLLOW = "What was he investigating?"


@pytest.fixture(scope="module")
def app(seeded_app: Callable[..., TestClient]) -> object:
    """The started app on the module's copy of the seeds (conftest's `data_dir`); each test makes its clients."""
    return seeded_app(answer_mode="extractive").app


def _client(app: object) -> TestClient:
    return TestClient(app)  # type: ignore[arg-type]


def test_list_is_own_conversations_newest_first_titled_by_their_topic(app: object) -> None:
    alice, bob = _client(app), _client(app)
    first = alice.post("/ask", json={"question": FIRST}).json()["conversation_id"]
    alice.post("/ask", json={"question": FOLLOW, "conversation_id": first})
    second = alice.post("/ask", json={"question": "  Where is   the Shayrat Airbase?"}).json()["conversation_id"]
    bob.post("/ask", json={"question": "Who is Sergei Lavrov?"})
    listed = alice.get("/conversations")
    assert listed.status_code == 200
    rows = listed.json()["conversations"]
    assert [r["id"] for r in rows][:2] == [second, first]
    # titled by what they are about: the question's names, then the headline of the article that answered it
    assert rows[0]["title"].startswith("Shayrat Airbase: ") and "Trump" in rows[1]["title"]
    assert all("Sergei Lavrov" not in r["title"] for r in rows)
    assert [r["title"].split(":")[0] for r in bob.get("/conversations").json()["conversations"]] == ["Sergei Lavrov"]
    assert _client(app).get("/conversations").json() == {"conversations": []}  # a new client has none


def test_a_conversation_comes_back_with_every_turn_and_its_citations(app: object) -> None:
    alice = _client(app)
    asked = alice.post("/ask", json={"question": FIRST}).json()
    with alice.stream("POST", "/chat", json={"question": FOLLOW, "conversation_id": asked["conversation_id"]}) as r:
        frames = r.read().decode().split("\n\n")
    done = next(json.loads(f.split("data: ", 1)[1]) for f in frames if f.startswith("event: done"))
    got = alice.get(f"/conversations/{asked['conversation_id']}")
    assert got.status_code == 200
    body = got.json()
    assert body["title"] == alice.get("/conversations").json()["conversations"][0]["title"]
    assert [t["question"] for t in body["turns"]] == [FIRST, FOLLOW]
    for turn, given in zip(body["turns"], (asked, done), strict=True):
        assert turn["answer_text"] == given["answer"]
        stored = dict(turn["answer"])
        assert stored.pop("timings_ms").keys() <= given["timings_ms"].keys()
        assert stored == {k: v for k, v in given.items() if k != "timings_ms"}  # citations, quotes, offsets
    assert body["turns"][0]["answer"]["citations"], "the first answer cites its article"


def test_rename_and_delete_only_ones_own(app: object) -> None:
    alice, mallory = _client(app), _client(app)
    cid = alice.post("/ask", json={"question": FIRST}).json()["conversation_id"]
    for request in (lambda c: c.get(f"/conversations/{cid}"),
                    lambda c: c.patch(f"/conversations/{cid}", json={"title": "mine now"}),
                    lambda c: c.delete(f"/conversations/{cid}")):
        stolen = request(mallory)
        # mallory's first request has no token yet: the 404 says so (whether or not the id exists: no leak)
        assert stolen.status_code == 404 and stolen.json()["error"].startswith("no such conversation")
    renamed = alice.patch(f"/conversations/{cid}", json={"title": "  Comey \n firing "})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Comey firing"
    assert alice.get(f"/conversations/{cid}").json()["title"] == "Comey firing"
    assert alice.patch(f"/conversations/{cid}", json={"title": "   "}).status_code == 400
    assert alice.patch(f"/conversations/{cid}", json={}).status_code == 422
    assert alice.delete(f"/conversations/{cid}").json() == {"deleted": cid}
    assert alice.get(f"/conversations/{cid}").status_code == 404
    assert cid not in [c["id"] for c in alice.get("/conversations").json()["conversations"]]
    assert alice.post("/ask", json={"question": FOLLOW, "conversation_id": cid}).status_code == 404
    assert alice.get("/conversations/not%20an%20id").status_code == 404


def test_stored_answer_objects_are_bounded(tmp_path: Path) -> None:
    store = ConversationStore(sqlite_file(tmp_path / "c.sqlite", CONVERSATIONS), max_turns=5)
    small = json.dumps({"answer": "a", "passages": [{"text": "p"}]})
    many = json.dumps({"answer": "a", "passages": [{"text": "x" * (PASSAGE_CHARS + 500)}] * 3
                       + [{"text": "p"}] * STORED_PASSAGES})
    huge = json.dumps({"answer": "a", "passages": [{"text": "x" * RESULT_CHARS}] * STORED_PASSAGES})
    enormous = json.dumps({"answer": "y" * RESULT_CHARS, "passages": []})
    for n, result in enumerate((small, many, huge, enormous)):
        store.add("c1", Turn(f"q{n}", f"q{n}", "a", result), client="me")
    turns = store.get("c1", "me").turns
    assert turns[0].answer == json.loads(small)
    kept = turns[1].answer["passages"]  # type: ignore[index]  # the first STORED_PASSAGES passages, each text cut
    assert len(kept) == STORED_PASSAGES and [len(p["text"]) for p in kept[:4]] == [PASSAGE_CHARS] * 3 + [1]
    assert turns[2].answer == {"answer": "a", "passages": []}  # passages dropped to fit
    assert turns[3].answer is None and turns[3].answer_text == "a"  # too big even so: the text alone
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        assert max(len(r[0] or "") for r in db.execute("SELECT result FROM turns")) <= RESULT_CHARS


def test_writes_sweep_idle_conversations_at_most_once_an_hour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.sqlite"
    store = ConversationStore(sqlite_file(path, CONVERSATIONS), max_turns=5, limits=Limits(retention_days=2))
    store.add("old", Turn("q", "q", "a"), client="me")  # the first write sweeps (nothing idle yet)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE turns SET created = datetime('now', '-3 days')")
        db.execute("UPDATE conversations SET created = '2000-01-01T00:00:00.000Z'")
    store.add("new", Turn("q", "q", "a"), client="me")
    assert [c.id for c in store.list_for("me")] == ["new", "old"]  # swept less than an hour ago
    later = time.monotonic() + SWEEP_EVERY
    monkeypatch.setattr(conversation_store.time, "monotonic", lambda: later)
    store.add("next", Turn("q", "q", "a"), client="me")
    assert [c.id for c in store.list_for("me")] == ["next", "new"]


def test_an_old_turns_table_gains_the_answer_column(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE turns (conversation_id TEXT NOT NULL, idx INTEGER NOT NULL, question TEXT NOT NULL,"
                   " standalone TEXT NOT NULL, answer TEXT NOT NULL, created TEXT NOT NULL DEFAULT"
                   " CURRENT_TIMESTAMP, PRIMARY KEY (conversation_id, idx))")
    store = ConversationStore(sqlite_file(path, CONVERSATIONS), max_turns=5)
    store.add("c1", Turn("q", "q", "a"), client="me")
    assert store.get("c1", "me").turns[0].answer is None


def test_a_client_that_disconnects_stops_the_llm_and_stores_no_half_answer(llm_server: LLMServer) -> None:
    llm = llm_server.llm
    llm.replies.clear()
    words = " ".join(f"word{i}" for i in range(200)) + " [1]"
    llm.replies.append(Reply(words, word_delay=0.05))  # 10 s of streaming unless abandoned
    abandoned = llm.abandoned
    client = httpx.Client(base_url=llm_server.url, timeout=30)
    received = ""
    started = time.monotonic()
    with client.stream("POST", "/chat", json={"question": FIRST}) as response:
        for text in response.iter_text():
            received += text
            if received.count("event: token") >= 3:
                break  # the reader presses Stop: the connection is closed here
    cid = json.loads(received.split("event: sources\ndata: ", 1)[1].split("\n", 1)[0])["conversation_id"]
    wait_until(lambda: llm.abandoned != abandoned, 8, "the server letting go of the LLM after the client left")
    assert llm.abandoned == abandoned + 1, "the server kept reading the LLM after the client left"
    assert time.monotonic() - started < 8  # well before the 10 s the full reply takes
    token = response.headers["x-qa-client"]
    again = client.get(f"/conversations/{cid}", headers={"X-QA-Client": token})
    assert again.status_code == 404  # the first turn never finished: no conversation, no half answer
    assert client.get("/conversations", headers={"X-QA-Client": token}).json() == {"conversations": []}
    with sqlite3.connect(llm_server.data_dir / "conversations.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM turns WHERE conversation_id = ?", (cid,)).fetchone()[0] == 0


def test_feedback_is_stored_and_exported_as_eval_items(app: object, data_dir: Path, tmp_path: Path) -> None:
    alice = _client(app)
    asked = alice.post("/ask", json={"question": FIRST}).json()
    quotes = [(c["quote"] or c)["text"] for c in asked["citations"]]
    up = alice.post("/feedback", json={"rating": "up", "question": FIRST, "answer": asked["answer"],
                                       "conversation_id": asked["conversation_id"], "evidence": quotes,
                                       "doc_ids": [c["doc_id"] for c in asked["citations"]]})
    assert up.status_code == 201 and up.json()["rating"] == "up"
    first_thumb = alice.post("/feedback", json={"rating": "up", "question": "Who won?", "answer": "nobody"})
    assert first_thumb.status_code == 201  # the page saves the thumb at once; the changed rating + note replace it
    down = alice.post("/feedback", json={"rating": "down", "question": "Who won?", "answer": "nobody",
                                         "note": "wrong outlet"})
    assert down.status_code == 201
    refused_up = alice.post("/feedback", json={"rating": "up", "question": "Who won the 2018 World Cup?",
                                               "refused": True})
    assert refused_up.status_code == 201
    assert alice.post("/feedback", json={"rating": "meh", "question": "q"}).status_code == 422
    foreign = _client(app).post("/feedback", json={"rating": "up", "question": "q",
                                                   "conversation_id": asked["conversation_id"]})
    assert foreign.status_code == 404

    out = tmp_path / "fb"
    done = subprocess.run([sys.executable, "-m", "qa.cli", "feedback", "export", str(out)], cwd=ROOT,
                          env=qa_env(data_dir), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "2 eval item(s)" in done.stdout and "1 to review" in done.stdout
    dataset = load_dataset([out])  # the eval loader reads them as questions
    by_question = {item.question: item for item in dataset.questions}
    assert by_question[FIRST].answerable and by_question[FIRST].evidence == tuple(quotes)
    assert not by_question["Who won the 2018 World Cup?"].answerable
    review = [json.loads(line) for line in (out / "review.jsonl").read_text().splitlines()]
    assert [(r["question"], r["note"]) for r in review] == [("Who won?", "wrong outlet")]


def test_a_rating_keeps_only_bounded_fields(app: object, data_dir: Path) -> None:
    """An anonymous client posting the largest body /feedback accepts stores tens of KB, not hundreds."""
    body = {"rating": "down", "question": "é" * 20_000, "answer": "a" * 50_000, "note": "n" * 2000,
            "evidence": ["€" * 5000] * 50, "doc_ids": ["d" * 300] * 50}
    assert _client(app).post("/feedback", json=body).status_code == 201
    with sqlite3.connect(data_dir / "conversations.sqlite") as db:
        question, evidence, size = db.execute(
            "SELECT question, evidence, length(CAST(question || answer || coalesce(note, '') || evidence || doc_ids"
            " AS BLOB)) FROM feedback ORDER BY id DESC LIMIT 1").fetchone()
    quotes = json.loads(evidence)
    assert len(quotes) == EVIDENCE_QUOTES and all(len(q) == QUOTE_CHARS for q in quotes)
    assert question.endswith("…") and len(question) < 20_000
    assert size < 64_000  # was over 1.5 MB (all 50 quotes kept, as \\u escapes)


def test_idle_conversations_expire_and_quotas_delete_the_least_recently_used(seeded_dir: Path,
                                                                             tmp_path: Path) -> None:
    """Retention (swept at start-up), a client's conversation quota, the total turn and rating quotas, with
    small limits."""
    data = tmp_path / "data"
    shutil.copytree(seeded_dir, data)
    aged = ConversationStore(sqlite_file(data / "conversations.sqlite", CONVERSATIONS), max_turns=5)
    with sqlite3.connect(data / "conversations.sqlite") as db:  # other tests may have left turns in seeded_dir
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in tables & {"turns", "conversations", "feedback"}:
            db.execute(f"DELETE FROM {table}")
    for cid in ("idle", "recent"):
        aged.add(cid, Turn("q", "q", "a"), client="someone")
    with sqlite3.connect(data / "conversations.sqlite") as db:
        db.execute("UPDATE turns SET created = datetime('now', '-3 days') WHERE conversation_id = 'idle'")
        db.execute("UPDATE conversations SET created = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-3 days')")
    settings = make_settings(data, answer_mode="extractive", conversation_retention_days=2,
                             max_conversations_per_client=2, max_stored_turns=6, max_feedback=1)
    with TestClient(create_app(settings)) as alice:
        with sqlite3.connect(data / "conversations.sqlite") as db:  # swept at start-up: idle for 3 days > 2
            assert {r[0] for r in db.execute("SELECT conversation_id FROM turns")} == {"recent"}
        ids = [alice.post("/ask", json={"question": q}).json()["conversation_id"] for q in (FIRST, FOLLOW, FIRST)]
        listed = [c["id"] for c in alice.get("/conversations").json()["conversations"]]
        assert listed == ids[:0:-1]  # the third conversation pushed out alice's first
        assert alice.get(f"/conversations/{ids[0]}").status_code == 404
        alice.post("/ask", json={"question": FOLLOW, "conversation_id": ids[1]})  # alice's 2nd is now her newest
        anonymous = [_client(alice.app).post("/ask", json={"question": FIRST}).json()["conversation_id"]
                     for _ in range(3)]  # 1 + 3 + 3 = 7 turns > 6: down to 5, least recently used first
        with sqlite3.connect(data / "conversations.sqlite") as db:
            kept = {r[0] for r in db.execute("SELECT conversation_id FROM turns")}
        assert kept == {ids[1], *anonymous}  # "recent" and alice's 3rd (least recently used) were deleted
        assert alice.get(f"/conversations/{ids[1]}").json()["turns"][1]["question"] == FOLLOW
        rating = {"rating": "up", "question": FIRST, "answer": "Comey."}
        assert alice.post("/feedback", json=rating).status_code == 201
        assert alice.post("/feedback", json={**rating, "rating": "down"}).status_code == 201  # replaces: room
        full = alice.post("/feedback", json={**rating, "question": FOLLOW})
        assert full.status_code == 507 and "at most 1" in full.json()["error"]
        with sqlite3.connect(data / "conversations.sqlite") as db:
            assert db.execute("SELECT rating, question FROM feedback").fetchall() == [("down", FIRST)]
