"""The LLM path end to end against the scripted OpenAI-protocol server: no answer reaches /ask, /chat or a stored
turn with a sentence its citations do not support, and a slow, trickling or oversized model is cut off at the
deadline with the extractive fallback (or a 503 without it). One app for the module; deadlines are fractions
of a second."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from functools import partial

import pytest
from fastapi.testclient import TestClient

from qa.answering import AnswerChain
from qa.answering.llm import ChatModel
from qa.conversations import LLMRewriter
from qa.service import Service
from tests.fake_llm import FakeLLM, Reply

QUESTION = "How many Tomahawk missiles did the US fire at the Shayrat Airbase?"
GOOD = "The US fired at least 59 Tomahawk cruise missiles at the Shayrat Airbase"


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def client(seeded_app: Callable[..., TestClient], llm: FakeLLM) -> TestClient:
    """The app on the module's copy of the seeds (conftest's `data_dir`), answering through the scripted model."""
    return seeded_app(llm_base_url=llm.url, openai_api_key="sk-test", llm_max_retries=0, llm_timeout=5.0,
                      llm_deadline=5.0, llm_rewrite_deadline=5.0)


@pytest.fixture
def service(client: TestClient, llm: FakeLLM) -> Iterator[Service]:
    """The app's service with a generous deadline; tests shorten it on the model they get from `model()`."""
    found: Service = client.app.state.service  # type: ignore[attr-defined]
    chain = found.answerer
    llm.replies.clear()
    yield found
    found.answerer = chain
    model(found).deadline = 5.0
    model(found).max_reply_bytes = 524_288
    found.rewriter = LLMRewriter(partial(model(found).complete, deadline=5.0))
    llm.replies.clear()


def model(service: Service) -> ChatModel:
    return service.answerer.answerers[0].model  # type: ignore[attr-defined]


def cited(service: Service, question: str, needle: str) -> int:
    """The number the prompt gives the passage holding `needle`."""
    passages = service.retriever.retrieve(question, service.settings.top_k).passages
    return next(n for n, p in enumerate(passages, start=1) if needle in p.text)


def events(text: str) -> list[tuple[str, dict]]:
    found = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((lines["event"], json.loads(lines["data"])))
    return found


def no_fallback(service: Service) -> None:
    service.answerer = AnswerChain(service.answerer.answerers[:1])


# ---- grounding --------------------------------------------------------------------------------------------


def test_an_answer_citing_nothing_is_not_shown(service: Service, client: TestClient, llm: FakeLLM) -> None:
    uncited = f"{GOOD}. Russia condemned the strike."
    llm.replies.append(Reply(uncited))
    result = service.ask(QUESTION).model_dump()
    assert result["mode"] == "extractive" and "59" in result["answer"]
    assert "not shown" in result["notice"] and "cites no passage" in result["notice"]
    assert [d["text"] for d in result["dropped"]] == [f"{GOOD}.", "Russia condemned the strike."]
    no_fallback(service)
    llm.replies.append(Reply(uncited))
    response = client.post("/ask", json={"question": QUESTION})
    assert response.status_code == 503 and "cites no passage" in response.json()["error"]


def test_a_sentence_its_citation_does_not_support_is_dropped(service: Service, llm: FakeLLM) -> None:
    n = cited(service, QUESTION, "59 Tomahawk")
    llm.replies.append(Reply(f"{GOOD} [{n}]. Reuters reported 200 dead in the strike [{n}]."))
    result = service.ask(QUESTION).model_dump()
    assert result["mode"] == "llm" and result["answer"] == f"{GOOD} [{n}]."
    assert result["dropped"][0]["position"] == 2 and "Reuters" in result["dropped"][0]["reason"]
    assert "1 of 2 sentences" in result["notice"] and "Reuters reported" not in result["notice"]
    llm.replies.append(Reply(f"The US fired 95 Tomahawk missiles at the Shayrat Airbase [{n}]."))
    only_wrong = service.ask(QUESTION).model_dump()
    assert only_wrong["mode"] == "extractive" and "95" not in only_wrong["answer"]
    assert "“95”" in only_wrong["notice"]


def test_template_debris_and_pasted_passages_are_not_answers(service: Service, llm: FakeLLM) -> None:
    question = "Did Tillerson meet Putin?"
    passages = service.retriever.retrieve(question, service.settings.top_k).passages
    pasted = "\n".join(p.text for p in passages[:2])
    llm.replies.append(Reply(f"<<SYS>> Tillerson meets Putin in Moscow (Reuters, 2017-04-12) [6] [7]\n{pasted}"))
    result = service.ask(question).model_dump()
    assert result["mode"] == "extractive" and "<<SYS>>" not in result["answer"] and "Reuters" not in result["answer"]
    assert "not shown" in result["notice"]
    n = cited(service, QUESTION, "59 Tomahawk")
    llm.replies.append(Reply(f"<start_of_turn>model\n{GOOD} [{n}].<end_of_turn>\n<start_of_turn>user\nThanks!"))
    wrapped = service.ask(QUESTION).model_dump()
    assert wrapped["mode"] == "llm" and wrapped["answer"] == f"{GOOD} [{n}]."
    assert "prompt-template text" in wrapped["notice"]


def test_the_stream_is_checked_before_done(service: Service, client: TestClient, llm: FakeLLM) -> None:
    n = cited(service, QUESTION, "59 Tomahawk")
    llm.replies.append(Reply(f"{GOOD} [{n}]. Reuters reported 200 dead [{n}]."))
    response = client.post("/chat", json={"question": QUESTION})
    found = events(response.text)
    assert found[0][0] == "sources" and found[-1][0] == "done"
    assert "Reuters" in "".join(d["text"] for name, d in found if name == "token")  # the draft, as it came
    done = found[-1][1]
    assert done["answer"] == f"{GOOD} [{n}]." and done["dropped"][0]["position"] == 2
    turns = client.get(f"/conversations/{done['conversation_id']}").json()["turns"]
    assert "Reuters" not in turns[-1]["answer_text"]  # the stored turn is what survived
    llm.replies.append(Reply("Reuters reported 200 dead in Moscow."))  # nothing survives: the fallback, whole
    fallback = events(client.post("/chat", json={"question": QUESTION}).text)[-1]
    assert fallback[0] == "done" and fallback[1]["mode"] == "extractive" and "59" in fallback[1]["answer"]
    no_fallback(service)
    llm.replies.append(Reply("Reuters reported 200 dead in Moscow."))
    error = events(client.post("/chat", json={"question": QUESTION}).text)[-1]
    assert error[0] == "error" and error[1]["status"] == 503


def test_every_citation_spelling_is_normalised_then_validated(service: Service, llm: FakeLLM) -> None:
    n = cited(service, QUESTION, "59 Tomahawk")
    full_width = chr(0xFF10 + n)
    arabic_indic = chr(0x0660 + n)
    llm.replies.append(Reply(f"{GOOD} ［{full_width}］ [{arabic_indic}, 9999]. "
                             f"The Shayrat Airbase is controlled by the Syrian Army [{n}, {n}]."))
    result = service.ask(QUESTION).model_dump()
    assert result["answer"] == f"{GOOD} [{n}]. The Shayrat Airbase is controlled by the Syrian Army [{n}]."
    assert [c["n"] for c in result["citations"]] == [n] and "[9999]" in result["notice"]


# ---- deadlines and size ------------------------------------------------------------------------------------


def test_a_slow_model_is_cut_off_at_the_deadline(service: Service, llm: FakeLLM) -> None:
    model(service).deadline = 0.5  # QA_LLM_TIMEOUT (per read) is 5 s here: only the deadline can stop it
    llm.replies.append(Reply(f"{GOOD} [1].", delay=3))
    started = time.monotonic()
    result = service.ask(QUESTION).model_dump()
    assert time.monotonic() - started < 2.0
    assert result["mode"] == "extractive" and "did not answer in time (within 0.5 s)" in result["notice"]


def test_a_trickling_model_cannot_hold_ask(service: Service, client: TestClient, llm: FakeLLM) -> None:
    model(service).deadline = 0.5
    llm.replies.append(Reply(f"{GOOD} [1].", trickle=0.05))  # a byte every 50 ms: ~20 s for the whole reply
    started = time.monotonic()
    response = client.post("/ask", json={"question": QUESTION})
    assert time.monotonic() - started < 2.0
    assert response.status_code == 200 and response.json()["mode"] == "extractive"
    assert "did not answer in time" in response.json()["notice"]


def test_a_trickling_stream_cannot_hold_chat(service: Service, client: TestClient, llm: FakeLLM) -> None:
    model(service).deadline = 0.6
    llm.replies.append(Reply(" ".join(["word"] * 200) + " [1].", word_delay=0.1))  # a delta every 100 ms
    started = time.monotonic()
    found = events(client.post("/chat", json={"question": QUESTION}).text)
    assert time.monotonic() - started < 2.5
    names = [name for name, _ in found]
    assert names[0] == "sources" and 1 <= names.count("token") < 50 and names[-1] == "done"
    assert found[-1][1]["mode"] == "extractive" and "did not answer in time" in found[-1][1]["notice"]


def test_a_trickling_model_cannot_hold_the_follow_up_rewrite(service: Service, llm: FakeLLM) -> None:
    n = cited(service, "Who did Trump fire?", "Comey")
    llm.replies.append(Reply(f"Trump dismissed FBI Director James Comey [{n}]."))
    first = service.ask("Who did Trump fire?").model_dump()
    service.rewriter = LLMRewriter(partial(model(service).complete, deadline=0.3))
    llm.replies.extend([Reply("What was James Comey investigating?", trickle=0.05), Reply("NOT_IN_ARTICLES")])
    started = time.monotonic()
    second = service.ask("What was he investigating?", conversation_id=first["conversation_id"]).model_dump()
    assert time.monotonic() - started < 2.0
    assert second["standalone_question"] == "Who did Trump fire? What was he investigating?"  # the offline rule


def test_an_oversized_reply_is_not_read(service: Service, llm: FakeLLM) -> None:
    model(service).max_reply_bytes = 65_536
    llm.replies.append(Reply("word " * 400_000 + "[1]."))  # 2 MB
    result = service.ask(QUESTION).model_dump()
    assert result["mode"] == "extractive" and "larger than 65,536 bytes" in result["notice"]
