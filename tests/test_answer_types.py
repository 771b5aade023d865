"""The answer-type rules the extractive answerer uses to refuse near misses."""

from __future__ import annotations

import pytest

from qa.answering.answer_types import (
    AnswerType,
    Expectation,
    asks_outcome,
    attributed_to,
    counted_nouns,
    counts_the_right_thing,
    duration_of_asked_meeting,
    expected_type,
    reports_outcome,
    same_casualties,
    satisfies,
)
from qa.lexicon import Gazetteer


@pytest.mark.parametrize("question,wanted", [
    ("How much did the US pay for Alaska?", AnswerType.MONEY),
    ("How long did the meeting last?", AnswerType.DURATION),
    ("How many missiles were fired?", AnswerType.NUMBER),
    ("When did the attack happen?", AnswerType.DATE),
    ("Before his May 2017 trip, when had Lavrov last been to Washington?", AnswerType.DATE),
    ("How did Lavrov respond when reporters shouted?", AnswerType.ANY),
    ("Who did Trump fire?", AnswerType.ENTITY),
    ("Which militant group was blamed?", AnswerType.ENTITY),
])
def test_expected_type(question: str, wanted: AnswerType) -> None:
    assert expected_type(question) is wanted


def test_type_checks() -> None:
    assert not satisfies("Washington purchased the US state from Moscow 150 years ago.", AnswerType.MONEY)
    assert satisfies("Alaska was bought for $7.2 million.", AnswerType.MONEY)
    assert satisfies("a long, two-hour meeting with Putin", AnswerType.DURATION)
    assert not satisfies("who last set foot in Washington in August 2013", AnswerType.DURATION)
    assert satisfies("the strike took place on April 7", AnswerType.DATE)


def test_counted_nouns() -> None:
    assert counted_nouns("How many Russian troops are deployed in Syria?") == ["troops"]
    assert counted_nouns("How many safe zones does the deal set up?") == ["safe", "zones"]
    assert counted_nouns("How many children were killed?") == ["children"]
    assert counted_nouns("Who won?") == []
    assert counts_the_right_thing("caused more than 320,000 deaths", ["people"])
    assert not counts_the_right_thing("an attack that killed around 80 people", ["children"])
    assert counts_the_right_thing("four “de-escalation zones”", ["safe", "zones"])


def test_attribution() -> None:
    assert attributed_to("How many died according to the Pentagon?") == "Pentagon"
    assert attributed_to("How many died?") is None


def test_deaths_and_injuries_are_not_interchangeable() -> None:
    killed = "the strike killed at least six people, including civilians"
    assert same_casualties(killed, "How many people died in the strike?")
    assert same_casualties("caused more than 320,000 deaths", "What death toll did officials report?")
    assert not same_casualties(killed, "How many people were injured in the strike?")
    assert same_casualties(killed + ", and wounded several others", "How many were wounded?")
    assert not same_casualties("wounded several others", "How many people were killed?")
    assert same_casualties("four de-escalation zones", "How many safe zones are there?")


def test_a_meeting_length_belongs_to_the_meeting_asked_about() -> None:
    sentence = "we have just had a long, two-hour meeting with Russian President Vladimir Putin,” he said."
    assert duration_of_asked_meeting(sentence, "How long did Tillerson and Lavrov spend with Putin?")
    assert not duration_of_asked_meeting(sentence, "How long did Lavrov's Oval Office meeting with Trump last?")
    assert duration_of_asked_meeting("The talks lasted three hours.", "How long did the talks with Trump last?")
    assert duration_of_asked_meeting("a 40-minute call with Putin’s aide", "How long was Putin’s call?")


def test_an_announced_event_does_not_tell_its_outcome() -> None:
    assert asks_outcome("What was the result of the UN vote?") and asks_outcome("Who won the final?")
    assert asks_outcome("What did they agree on?") and not asks_outcome("Which agreement did Russia suspend?")
    assert not reports_outcome("On Wednesday, the UN Security Council is scheduled to vote on a resolution.")
    assert not reports_outcome("Lavrov met Tillerson ahead of rare Oval Office talks with Donald Trump.")
    assert reports_outcome("The council voted 10 to 2 in favour of the resolution.")
    assert not reports_outcome("Putin met his security council to discuss relations with the US.")  # no outcome


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer()


@pytest.mark.parametrize(("question", "sentence", "answers"), [
    ("Which country vetoed the resolution?", "Russia vetoed the draft resolution on Tuesday.", True),
    ("Which country backed Ukraine?", "On Monday the UK backed the government in Kiev.", True),  # not "uk" in it
    ("Which country did Russia criticise?", "Moscow criticised the US for the strike.", True),  # "us" in "russia"
    ("What did the foreign minister say?", "Lavrov said the strike was illegal.", True),  # asks what, not who
    ("What did the bank say?", "The bank said rates would stay low.", True),
    ("How many people were killed as a result of the strike?", "The strike killed six people.", True),
    ("Who won the election in France?", "Emmanuel Macron won the election and will take office on May 14.", True),
    ("Which senator criticised the plan?", "Senator Elizabeth Warren criticised the plan.", True),  # Warren, a city
    ("Which senator criticised the plan?", "On Monday, Senator Warren criticised the plan.", True),  # title + surname
    ("Which president spoke first?", "President Trump spoke first at the summit.", True),
    ("What was the result of the vote?", "The council is scheduled to vote on Wednesday.", False),
    ("Which Russian ambassador accompanied Lavrov?", "Foreign Minister Sergei Lavrov met Rex Tillerson.", False),
    ("Which oil company did Tillerson run?", "Tillerson arrived in Moscow on Tuesday to visit Russia.", False),
])
def test_what_a_sentence_must_hold(gazetteer: Gazetteer, question: str, sentence: str, answers: bool) -> None:
    assert Expectation.of(question).met_by(sentence, sentence, gazetteer) is answers
