"""Issue 23's conversation features through the HTTP app on the seeds: an earlier question edited (or an answer
regenerated) with the conversation going on from there, on the server too; suggested follow-up questions made
offline from the cited articles, each one answerable; titles that say what a conversation is about."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from qa.answering import Answer, Citation
from qa.answering.followups import suggest
from qa.answering.titles import conversation_title
from qa.retrieval import Passage
from qa.service import Service
from tests.conftest import LLMServer
from tests.fake_llm import Reply
from tests.support import wait_until

SHAYRAT = "Where is the Shayrat Airbase?"
TOMAHAWK = "How many Tomahawk missiles did the US fire at the Shayrat Airbase?"


@pytest.fixture(scope="module")
def client(seeded_app: Callable[..., TestClient]) -> TestClient:
    """The app on the module's copy of the seeds (conftest's `data_dir`)."""
    return seeded_app(answer_mode="extractive")


def _edit(client: TestClient, conversation_id: str, turn: int, body: dict[str, Any]) -> dict[str, Any]:
    """POST an edit and read its events: the `done` answer object."""
    with client.stream("POST", f"/conversations/{conversation_id}/turns/{turn}", json=body) as response:
        assert response.status_code == 200, response.read()
        frames = response.read().decode().split("\n\n")
    events = [f.split("\n", 1)[0].removeprefix("event: ") for f in frames if f]
    assert events[0] == "sources" and events[-1] == "done", events
    return json.loads(frames[-2].split("data: ", 1)[1])


def test_an_edited_question_replaces_its_turn_and_every_later_one(client: TestClient) -> None:
    first = client.post("/ask", json={"question": "Who did Trump fire?"}).json()
    cid = first["conversation_id"]
    client.post("/ask", json={"question": "What was he investigating?", "conversation_id": cid})
    client.post("/ask", json={"question": "When did that happen?", "conversation_id": cid})
    done = _edit(client, cid, 1, {"question": SHAYRAT})
    assert done["conversation_id"] == cid and "Homs" in done["answer"]
    assert done["standalone_question"] == SHAYRAT  # searched as asked: the dropped turns are no context
    kept = client.get(f"/conversations/{cid}").json()
    assert [t["question"] for t in kept["turns"]] == ["Who did Trump fire?", SHAYRAT]  # what the server kept
    assert kept["turns"][1]["answer"]["answer"] == done["answer"]

    again = _edit(client, cid, 1, {})  # no question: the same one answered again (Regenerate)
    assert again["question"] == SHAYRAT
    assert [t["question"] for t in client.get(f"/conversations/{cid}").json()["turns"]] == [
        "Who did Trump fire?", SHAYRAT]
    follow = client.post("/ask", json={"question": "When did it happen?", "conversation_id": cid}).json()
    assert SHAYRAT in follow["standalone_question"]  # the conversation goes on from the edited turn

    before = client.get(f"/conversations/{cid}").json()["title"]
    _edit(client, cid, 0, {"question": TOMAHAWK})  # the first question edited: the conversation is retitled
    after = client.get(f"/conversations/{cid}").json()
    assert [t["question"] for t in after["turns"]] == [TOMAHAWK] and after["title"] != before
    assert after["title"] == client.get("/conversations").json()["conversations"][0]["title"]


def test_edits_of_what_is_not_there_or_not_yours_change_nothing(client: TestClient) -> None:
    cid = client.post("/ask", json={"question": SHAYRAT}).json()["conversation_id"]
    for turn, status in ((1, 404), (-1, 422), ("x", 422)):
        response = client.post(f"/conversations/{cid}/turns/{turn}", json={"question": "Where is Homs?"})
        assert response.status_code == status, (turn, response.text)
        assert "error" in response.json()
    assert client.post(f"/conversations/{cid}/turns/1", json={}).json()["error"] == "no turn 1 in this conversation"
    stranger = TestClient(client.app)
    stolen = stranger.post(f"/conversations/{cid}/turns/0", json={"question": "Mine now?"})
    assert stolen.status_code == 404 and stolen.json()["error"].startswith("no such conversation")
    assert client.post(f"/conversations/{cid}/turns/0", json={"question": "  "}).status_code == 400
    assert client.post(f"/conversations/{cid}/turns/0", json={"question": "x", "extra": 1}).status_code == 422
    assert client.post("/conversations/nope/turns/0", json={}).status_code == 404
    assert [t["question"] for t in client.get(f"/conversations/{cid}").json()["turns"]] == [SHAYRAT]


def test_follow_ups_come_from_the_cited_articles_and_each_is_answered_from_them(client: TestClient) -> None:
    """Each suggestion is answered, not refused, and its answer cites one of the articles it was made from."""
    answer = client.post("/ask", json={"question": SHAYRAT}).json()
    suggestions = answer["follow_ups"]
    assert 1 <= len(suggestions) <= 3 and len(set(suggestions)) == len(suggestions), suggestions
    assert SHAYRAT not in suggestions
    cited = {c["doc_id"] for c in answer["citations"]}
    for question in suggestions:
        reply = client.post("/ask", json={"question": question}).json()
        assert not reply["refused"], (question, reply["answer"])
        assert cited & {c["doc_id"] for c in reply["citations"]}, (question, reply["citations"])
    refused = client.post("/ask", json={"question": "Who won the 2018 FIFA World Cup?"}).json()
    assert refused["refused"] and refused["follow_ups"] == []
    assert answer["timings_ms"]["follow_ups"] < 500  # made offline, without another retrieval


def _passage(text: str, title: str = "Lavrov meets Tillerson in Moscow for talks", n: int = 0) -> Passage:
    return Passage(f"doc:{n}", "doc", title, "RT", "2017-04-12", text, 0, len(text))


def test_follow_up_templates_and_the_answerable_check() -> None:
    text = ("Russian Foreign Minister Sergey Lavrov met Rex Tillerson on Wednesday. The Kremlin spokesman, Dmitry "
            "Peskov, said the talks with Washington were useful. At least 59 Tomahawk cruise missiles were fired "
            "at the base on Friday.")
    passage = _passage(text)
    quoted = Answer("Lavrov met Tillerson [1].", False, [Citation(1, passage)])
    asked: list[str] = []
    found = suggest("Who did Lavrov meet?", quoted, lambda q, p: asked.append(q) or True)
    assert found == ["What did Dmitry Peskov say about Washington?", "How many Tomahawk cruise missiles were fired?",
                     "What did RT report about “Lavrov meets Tillerson in Moscow for talks”?"]
    assert suggest("Who did Lavrov meet?", quoted, lambda q, p: False) == []  # none the index would answer
    refused = Answer("The articles don't say.", True, [])
    assert suggest("Who won?", refused, lambda q, p: True) == []


def test_titles_say_what_the_conversation_is_about() -> None:
    passage = _passage("The US fired 59 missiles.", "Tillerson visits Moscow after US strike on Syria base")
    answered = Answer("The US fired 59 missiles [1].", False, [Citation(1, passage)])
    assert conversation_title(TOMAHAWK, answered) == (
        "Tomahawk, Shayrat Airbase: Tillerson visits Moscow after US strike on Syria base")  # "US" is said already
    assert conversation_title("When did it  happen?", answered) == (
        "Tillerson visits Moscow after US strike on Syria base")
    refused = Answer("The articles don't say.", True, [])
    assert conversation_title("Who won the 2018 FIFA World Cup?", refused) == "Who won the 2018 FIFA World Cup?"


def test_the_service_titles_a_new_conversation_by_topic_and_headline(pipeline: Service) -> None:
    result = pipeline.ask(SHAYRAT)
    title = next(c.title for c in pipeline.conversations.list_for("local") if c.id == result.conversation_id)
    assert title.startswith("Shayrat Airbase: ") and title.endswith(result.citations[0].title)


def test_an_edit_left_before_its_answer_is_done_changes_nothing(llm_server: LLMServer) -> None:
    """Stop during an edit (the reader closes the stream): the server stops reading the model and the
    conversation keeps the turn that was being replaced."""
    llm = llm_server.llm
    llm.replies.clear()
    client = httpx.Client(base_url=llm_server.url, timeout=30)
    first = client.post("/ask", json={"question": SHAYRAT})
    cid, token = first.json()["conversation_id"], first.headers["x-qa-client"]
    owner = {"X-QA-Client": token}
    llm.replies.append(Reply(" ".join(f"word{i}" for i in range(200)) + " [1]", word_delay=0.05))
    abandoned, received = llm.abandoned, ""
    with client.stream("POST", f"/conversations/{cid}/turns/0", json={"question": TOMAHAWK}, headers=owner) as r:
        for text in r.iter_text():
            received += text
            if received.count("event: token") >= 3:
                break  # Stop
    wait_until(lambda: llm.abandoned != abandoned, 8, "the server letting go of the model after the client left")
    assert llm.abandoned == abandoned + 1, "the server kept reading the model after the client left"
    kept = client.get(f"/conversations/{cid}", headers=owner).json()
    assert [t["question"] for t in kept["turns"]] == [SHAYRAT]
    assert kept["turns"][0]["answer"]["answer"] == first.json()["answer"]
