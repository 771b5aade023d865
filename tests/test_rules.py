"""The answering rules on their own: a question and a sentence in, a verdict out (no index, no model)."""

from __future__ import annotations

import pytest

from qa.answering.news import numbers_in
from qa.answering.question import Question, entities_of
from qa.answering.refusal import ENTITY_NOT_FOUND, NOT_ENGLISH, RefusalPolicy, missing_entity
from qa.answering.rules import disagreement, yes_no
from qa.retrieval import Passage, Retrieval
from qa.text.figures import figures
from qa.text.language import language_of


def _retrieval(*texts: str) -> Retrieval:
    import numpy as np

    passages = [Passage(f"c{i}", f"d{i}", "A title", "Outlet", "2026-10-01", t, 0, len(t)) for i, t in enumerate(texts)]
    return Retrieval(passages, np.zeros(3, dtype=np.float32), "q")


@pytest.mark.parametrize(("question", "sentence", "expected"), [
    ("Did Ana Ferreira meet Omar Haddad?", "Ana Ferreira met Omar Haddad in Lisbon on Monday.", "Yes."),
    ("Did Ana Ferreira meet Omar Haddad?", "Ana Ferreira did not meet Omar Haddad.", "No."),
    ("Has the port of Velden reopened?", "The port of Velden reopened on Thursday.", "Yes."),
    # speaks of the meeting but not of who is asked about: evidence without a verdict
    ("Did Ana Ferreira meet Omar Haddad?", "Ana Ferreira met the prime minister in Lisbon.", None),
    # the names, but not what is asked
    ("Did Lavrov invite Trump to visit Moscow?", "Lavrov said Trump would decide on Moscow later.", None),
    ("Did Lavrov invite Trump to visit Moscow?", "Lavrov invited Trump to visit Moscow.", "Yes."),
    # said plainly or not at all: a comparison, a hedge or a modal the question does not use leaves the reading
    # open; a negation of something else is no "No."; a "Yes." needs every asked word
    ("Did BA's profit fall short of forecasts?", "BA's profit was better than forecasts of £59m.", None),
    ("Is the Stuff list dearer than last year?", "The Stuff list is £1,000 cheaper than last year's.", None),
    ("Will fuel duty rise with inflation?", "He said fuel duty should rise with inflation.", None),
    ("Does Michael Howard support stem cell research?",
     "Michael Howard backed stem cell research, saying people must not be frightened.", None),
    ("Does Michael Howard support stem cell research?", "Michael Howard has backed stem cell research.", "Yes."),
    ("Is Sumitomo pressing its bid for UFJ?", "UFJ has been at the centre of a fierce bid battle.", None),
    ("Will Tony Blair hold a news conference every day?",
     "There are no plans for Mr Blair to hold a daily news conference.", "No."),
])
def test_yes_no_verdict_only_when_the_sentence_asserts_what_is_asked(question: str, sentence: str,
                                                                    expected: str | None) -> None:
    assert yes_no.verdict(Question.parse(question), sentence) == expected


def test_yes_no_names_may_stand_in_the_sentence_before() -> None:
    question = Question.parse("Did Ana Ferreira meet Omar Haddad?")
    assert yes_no.verdict(question, "She met him in Lisbon.", "Ana Ferreira flew to see Omar Haddad.") == "Yes."


def test_figures_keep_units_and_qualifiers() -> None:
    shown = [(f.shown, f.measure) for f in figures("Ask Jeeves made no less than $17m; Time Warner rose 76%; "
                                                   "she cleared 4.89m; 40 million euros")]
    assert shown == [("no less than $17m", "money:USD"), ("76%", "percent"), ("4.89m", "length"),
                     ("40 million euros", "money:EUR")]
    assert numbers_in("Profits jumped 76% to $1.13bn.", set()) == [("76%", "percent:76"),
                                                                   ("$1.13bn", "money:USD:1.13e+09")]


def test_a_disagreement_needs_the_same_measure_and_the_same_subject() -> None:
    question = Question.parse("How much did Time Warner's quarterly profit jump?")
    assert not disagreement.same_measure("percent:76", "money:USD:1.7e+07")
    assert disagreement.same_measure(numbers_in("It costs €62m.", set())[0][1],
                                     numbers_in("It costs 40 million euros.", set())[0][1])
    assert disagreement.same_measure("count:212", "count:180")
    assert not disagreement.same_subject(question, "Time Warner's profit jumped 76%.",
                                         "Ask Jeeves made a $17m profit.")
    assert disagreement.same_subject(question, "Time Warner's profit jumped 76%.",
                                     "Quarterly profit at Time Warner rose 70%.")


def test_a_disagreement_needs_the_other_figure_to_say_what_the_lead_says_of_the_question() -> None:
    question = Question.parse("How many people use Skype's paid service?")
    assert not disagreement.same_question(question, "Its paid service has attracted 940,000 users.",
                                          "Almost 83 million people have downloaded Skype.")
    assert not disagreement.same_question(question, "Its paid service has attracted 940,000 users.",
                                          "Almost 83 million people have downloaded the software of the service.")
    ferry = Question.parse("How many passengers were aboard the ferry?")
    assert disagreement.same_question(ferry, "The ferry was carrying 212 passengers and crew.",
                                      "The ferry had 180 passengers and crew on board.")
    bridge = Question.parse("How much will the new Lenby bridge cost?")
    assert disagreement.same_question(bridge, "The new river bridge in Lenby will cost 55 million euros.",
                                      "The Lenby bridge is expected to cost 40 million euros.")


def test_the_question_is_parsed_once_with_its_context_as_a_field() -> None:
    q = Question.parse("How many homes did the fire destroy? What about residents?")
    assert q.context == "How many homes did the fire destroy?" and q.asked == "How many residents?"
    assert q.topic == frozenset({"resid"})
    assert entities_of("How much did Time Warner's quarterly profit jump?") == ("Time Warner",)
    assert Question.parse("Why did the dollar gain?").form == "why"
    assert Question.parse("How many died, and has the port reopened?").parts == ("How many died",
                                                                                 "has the port reopened?")


@pytest.mark.parametrize(("text", "language"), [
    ("Сколько ракет выпустили США?", "Russian"), ("¿Cuántos misiles lanzó Estados Unidos?", "Spanish"),
    ("美国发射了多少枚导弹？", "Chinese"), ("Did Ana Ferreira meet Omar Haddad?", None),
    ("Lavrov Tillerson Moscow?", None),
])
def test_the_language_of_a_question(text: str, language: str | None) -> None:
    assert language_of(text) == language


def test_the_refusal_policy_says_why() -> None:
    policy = RefusalPolicy(0.5)
    empty = policy.before(Question.parse("Who won?"), _retrieval())
    assert empty is not None and empty.reason == "empty_index" and "No articles are indexed" in empty.message
    foreign = policy.before(Question.parse("Сколько ракет выпустили США?"), _retrieval("Some text."))
    assert foreign is not None and foreign.reason == NOT_ENGLISH and "English" in foreign.message
    question = Question.parse("What height did Isinbayeva clear?")
    assert missing_entity(question, _retrieval("Isinbayeva's 4.89m was a record.")) is None
    assert policy.before(question, _retrieval("Feofanova cleared 4.75m.")) is None  # one word: only if weak
    unknown = policy.weak(question, 0.4, _retrieval("Feofanova cleared 4.75m."))
    assert unknown is not None and unknown.reason == ENTITY_NOT_FOUND and "Isinbayeva" in unknown.message
    two = policy.before(Question.parse("When was Boris Johnson's trip?"), _retrieval("Lavrov's trip to Moscow."))
    assert two is not None and two.reason == ENTITY_NOT_FOUND and "“Boris Johnson”" in two.message
    assert policy.weak(question, 0.6) is None
