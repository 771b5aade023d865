"""News-aware answers over the dated eval/news corpus (real embedder, real index, the real HTTP app): the latest
report leads, corrections win, disagreements are named and returned as data, every answer carries an "as of"
date range, and yes/no, why, multi-part and pronoun-less follow-up questions are answered as asked. The LLM
path is checked against the scripted OpenAI-protocol server. Questions are the check half of eval/news (and
new wordings), not the tune half the rules were written against."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from qa.service import Service, build_service
from tests.conftest import make_settings
from tests.fake_llm import FakeLLM, Reply
from tests.support import ROOT
from tests.test_answers import assert_citations_exact

# Cases the hand-set score (tuned on these questions) got right and the learned scorer does not: kept as strict
# xfails so they show when a better model gets them back.
SCORER = ("issue 21: the learned scorer (qa/answering/scorer.json, fitted on all tune sets) ranks or thresholds "
          "this differently from the hand-set score it replaced; see docs/eval.md")

CORPUS = ROOT / "eval" / "news" / "corpus"


@pytest.fixture(scope="module")
def news_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("news") / "data"
    report = build_service(make_settings(data_dir)).ingest_paths([CORPUS])
    assert len(report.added) == 15 and not report.failed
    return data_dir


@pytest.fixture(scope="module")
def news(news_dir: Path) -> Service:
    return build_service(make_settings(news_dir))


def ask(service: Service, question: str, conversation_id: str | None = None) -> dict:
    result = service.ask(question, conversation_id=conversation_id).model_dump(mode="json")
    assert_citations_exact(service, result)  # every [n] cited, every quote exact and shown in the answer
    return result


def test_the_latest_report_leads_and_the_earlier_figure_is_shown_as_earlier(news: Service) -> None:
    result = ask(news, "How many homes has the Ardmoor wildfire destroyed?")
    lead, _, rest = result["answer"].partition("Earlier reports said")
    assert "112" in lead and "(Northern Wire, 5 Aug 2026)" in lead
    assert "30 [2] (Valley Times, 3 Aug 2026)" in rest
    assert result["as_of"] == {"start": "2026-08-03", "end": "2026-08-05", "text": "as of 3–5 Aug 2026"}
    assert result["disagreements"] == []  # an update is not a disagreement


def test_a_correction_wins_over_the_claim_it_corrects(news: Service) -> None:
    result = ask(news, "What was the result of the Lenby council vote on the bridge?")
    assert "6 votes to 3" in result["answer"]
    assert all("by 7 votes to 2 on Monday" not in c["quote"]["text"] for c in result["citations"])
    flights = ask(news, "How many flights were cancelled at Brennport?")
    assert flights["answer"].startswith("Skyway Air cancelled 120 flights")
    assert "as reported earlier" in flights["answer"]


def test_disagreements_are_named_and_returned_as_data(news: Service) -> None:
    result = ask(news, "How much will the new Lenby bridge cost?")
    assert "The sources disagree" in result["answer"]
    (found,) = result["disagreements"]
    assert found["kind"] == "quantity"
    values = {(v["value"], v["source"], v["published"]) for v in found["values"]}
    assert values == {("55 million euros", "Daily Ledger", "2026-09-02"), ("40 million euros", "Valley Times",
                                                                            "2026-09-01")}
    cited = {c["n"]: c for c in result["citations"]}
    for value in found["values"]:  # each side points at the citation that says it
        assert value["value"] in cited[value["n"]]["quote"]["text"]


def test_disagreeing_clock_times_come_from_two_outlets(news: Service) -> None:
    result = ask(news, "What time did the controllers' strike at Brennport start?")
    (found,) = result["disagreements"]
    assert found["kind"] == "time" and {v["value"] for v in found["values"]} == {"5 a.m.", "6 a.m."}
    assert {v["source"] for v in found["values"]} == {"Daily Ledger", "Valley Times"}


def test_yes_no_questions_open_with_yes_no_or_dont_say(news: Service) -> None:
    accepted = ask(news, "Did the rail union accept the pay offer?")
    assert accepted["answer"].startswith("Yes.") and "voted on Friday to accept" in accepted["answer"]
    road = ask(news, "Is Highway 9 still closed?")
    assert road["answer"].startswith("No.") and "reopened" in road["answer"]
    unknown = ask(news, "Did the state rail company raise ticket prices?")
    assert unknown["refused"] and unknown["answer"].startswith("The articles don't say")


def test_a_preview_does_not_answer_whether_it_happened_the_later_report_does(news: Service) -> None:
    result = ask(news, "Did Ferreira meet Haddad in Lisbon?")
    assert result["answer"].startswith("Yes.") and "unclear" not in result["answer"]
    assert result["citations"][0]["published"] == "2026-10-16"


def test_why_is_answered_by_the_reason(news: Service) -> None:
    result = ask(news, "Why did the fire near Ardmoor spread so fast?")
    assert "because strong winds" in result["answer"]
    assert ask(news, "Why did Kestan put tariffs on steel?")["answer"].count("because of a surge in cheap imports")


def test_each_part_of_a_question_is_answered_or_refused(news: Service) -> None:
    result = ask(news, "How many homes did the Ardmoor fire destroy, and when did Highway 9 reopen?")
    assert "112" in result["answer"] and "Wednesday evening" in result["answer"]
    partial = ask(news, "When did Highway 9 reopen, and how many firefighters were injured?")
    assert not partial["refused"] and "Wednesday evening" in partial["answer"]
    assert "The articles don't say “how many firefighters were injured”" in partial["answer"]


@pytest.mark.xfail(strict=True, reason=SCORER)
def test_follow_ups_without_a_pronoun_use_the_previous_turn(news: Service) -> None:
    first = ask(news, "Did the rail union accept the pay offer?")
    then = ask(news, "What happened in response?", first["conversation_id"])
    assert "temporary drivers" in then["answer"]
    first = ask(news, "How many homes did the Ardmoor wildfire destroy?")
    about = ask(news, "What about residents?", first["conversation_id"])
    assert "3,500" in about["answer"]


def test_the_http_response_carries_as_of_and_disagreements(news_dir: Path) -> None:
    with TestClient(create_app(make_settings(news_dir))) as client:
        body = client.post("/ask", json={"question": "How much will the new Lenby bridge cost?"}).json()
        schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert body["as_of"]["text"] == "as of 1–2 Sep 2026" and len(body["disagreements"]) == 1
    assert {"as_of", "disagreements"} <= set(schema["AnswerOut"]["properties"])
    assert "DisagreementOut" in schema and "AsOfOut" in schema


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def test_llm_prompt_carries_outlets_and_dates_and_disagreements_come_from_the_passages(
    news_dir: Path, llm: FakeLLM
) -> None:
    service = build_service(make_settings(news_dir, llm_base_url=llm.url, llm_model="fake", llm_timeout=5,
                                          llm_max_retries=0, llm_fallback=False))
    question = "How much will the new Lenby bridge cost?"
    passages = service.retriever.retrieve(question, 5).passages
    first = next(n for n, p in enumerate(passages, 1) if "55 million" in p.text)
    second = next(n for n, p in enumerate(passages, 1) if "40 million" in p.text)
    llm.replies.append(Reply(f"The sources disagree: 55 million euros [{first}] or 40 million euros [{second}]."))
    result = service.ask(question).model_dump(mode="json")
    prompt = llm.requests[-1]["body"]["messages"]
    assert "(Daily Ledger, 2026-09-02)" in prompt[1]["content"] and "(Valley Times, 2026-09-01)" in prompt[1]["content"]
    assert "latest report" in prompt[0]["content"] and '"Yes", "No"' in prompt[0]["content"]
    assert result["mode"] == "llm" and result["as_of"]["end"] == "2026-09-02"
    (found,) = result["disagreements"]
    assert {v["value"] for v in found["values"]} == {"55 million euros", "40 million euros"}
    assert {v["n"] for v in found["values"]} == {first, second}


def test_llm_latest_state_is_an_update_not_a_disagreement(news_dir: Path, llm: FakeLLM) -> None:
    service = build_service(make_settings(news_dir, llm_base_url=llm.url, llm_model="fake", llm_timeout=5,
                                          llm_max_retries=0, llm_fallback=False))
    llm.replies.append(Reply("112 homes [1]; earlier reports said 30 [2]."))
    result = service.ask("How many homes has the Ardmoor wildfire destroyed?").model_dump(mode="json")
    assert result["disagreements"] == [] and re.search(r"\[1\]", result["answer"])


# --- the rules on their own (no index) --------------------------------------------------------------------

def test_news_rules_read_questions_and_sentences() -> None:
    from datetime import date

    from qa.answering.news import (
        asks_latest,
        days_in,
        question_form,
        resolve_what_about,
        says_no,
        split_parts,
        superseded,
    )
    from qa.conversations.rewrite import is_follow_up

    assert split_parts("How many died, and has the port reopened?") == ["How many died", "has the port reopened?"]
    assert split_parts("According to Tillerson, who was behind the attack?") == [
        "According to Tillerson, who was behind the attack?"]
    assert question_form("Did X meet Y?") == "yes-no" and question_form("Why did it sink?") == "why"
    assert asks_latest("How many people died?") and not asks_latest("How much will the bridge cost?")
    assert says_no("Is the road still closed?", "The road reopened on Friday.")
    assert says_no("Did the airport close?", "The airport did not close.")
    assert not says_no("Has the port reopened?", "The port reopened on Thursday.")
    assert superseded("Skyway cancelled 120 flights, not 80 as reported earlier.") == {"count:80"}  # measure:value
    assert superseded("An earlier version of this article said 7 votes to 2; the vote was 6 to 3.") == {
        "count:7", "count:2"}
    assert days_in("The fire started on Saturday.", date(2026, 8, 3)) == [("Saturday (1 Aug 2026)", "2026-08-01")]
    assert days_in("Officials said on Monday that it grew.", date(2026, 8, 3)) == []  # when it was said
    assert resolve_what_about("How many homes burned? What about residents?") == "How many residents?"
    assert is_follow_up("What did Russia do in response?") and is_follow_up("What about Iran?")
    assert not is_follow_up("How many people died in the Syrian conflict since 2011?")
