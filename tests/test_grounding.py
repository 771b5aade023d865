"""Grounding rules for a model's answer, on passages written here (no index, no server: milliseconds)."""

from __future__ import annotations

import pytest

from qa.answering.citations import check_citations, normalise_citations
from qa.answering.grounding import ground, split_sentences, strip_debris
from qa.retrieval import Passage

STRIKE = Passage("c1", "d1", "US strikes Syrian airbase", "RT", "2017-04-07",
                 "The US fired at least 59 Tomahawk cruise missiles at the Shayrat Airbase, which is controlled by "
                 "the Syrian Army. Russia called the strike an act of aggression.", 0, 150)
TILLERSON = Passage("c2", "d2", "Tillerson meets Lavrov", "TASS", "2017-04-12",
                    "US Secretary of State Rex Tillerson held talks with Russian Foreign Minister Sergey Lavrov in "
                    "Moscow on Wednesday.", 0, 110)
PASSAGES = [STRIKE, TILLERSON]


def test_a_cited_supported_sentence_is_kept_with_outlet_and_date() -> None:
    grounded = ground("The US fired at least 59 Tomahawk missiles [1] (RT, 7 April 2017). Tillerson met Lavrov "
                      "in Moscow on Wednesday [2].", PASSAGES)
    assert grounded.kept == 2 and not grounded.dropped and grounded.enough
    assert grounded.text.endswith("on Wednesday [2].")


def test_a_sentence_without_citation_is_dropped() -> None:
    grounded = ground("The US fired at least 59 Tomahawk missiles [1]. Russia called it aggression.", PASSAGES)
    assert [d.reason for d in grounded.dropped] == ["cites no passage"]
    assert grounded.text == "The US fired at least 59 Tomahawk missiles [1]."
    assert not ground("The US fired at least 59 Tomahawk missiles.", PASSAGES).enough


@pytest.mark.parametrize(("claim", "missing"), [
    ("The US fired at least 95 Tomahawk missiles [1].", "95"),  # a number the passage does not give
    ("Reuters said the US fired 59 Tomahawk missiles [1].", "Reuters"),  # an outlet in no passage
    ("Tillerson met Putin in Moscow [2].", "Putin"),  # a name the cited passage does not hold
    ("The US fired 59 Tomahawk missiles [2].", "59"),  # true, but not in the passage it cites
    ("The strike killed dozens of civilians and destroyed hospitals [1].", "civilian"),  # content words
])
def test_a_citation_that_does_not_support_its_sentence_drops_it(claim: str, missing: str) -> None:
    grounded = ground(claim, PASSAGES)
    assert grounded.kept == 0 and not grounded.enough
    assert missing in grounded.dropped[0].reason


def test_template_debris_is_removed_and_text_after_the_turn_is_not_answer() -> None:
    text, found = strip_debris("<start_of_turn>model\nThe US fired 59 missiles [1].<end_of_turn>\n"
                               "<start_of_turn>user\nThanks!")
    assert found and "Thanks" not in text and "<" not in text
    tillerson = ("<<SYS>> Tillerson meets Putin in Moscow (Reuters, 2017-04-12) [6] [7]\n"
                 "[INST] US Secretary of State Rex Tillerson held talks with Russian Foreign Minister Sergey "
                 "Lavrov in Moscow on Wednesday. [/INST]")
    grounded = ground(tillerson, PASSAGES)
    assert grounded.debris and grounded.kept == 0 and not grounded.enough
    for marker in ("<|im_start|>assistant", "### Response:", '"""'):
        assert strip_debris(f"{marker}\nThe US fired 59 missiles [1].")[1], marker


def test_passage_text_pasted_back_is_not_an_answer() -> None:
    pasted = f'[1] {STRIKE.title} (RT, 2017-04-07)\n"""\n{STRIKE.text}\n"""'
    grounded = ground(pasted, PASSAGES)
    assert grounded.kept == 0 and not grounded.enough and grounded.debris


def test_sentences_split_at_full_stops_not_abbreviations() -> None:
    assert split_sentences("Mr. Tillerson met Lavrov in the U.S. capital [2]. No. Russia objected [1].") == [
        "Mr. Tillerson met Lavrov in the U.S. capital [2].", "No.", "Russia objected [1]."]
    grounded = ground("Yes. Tillerson held talks with Lavrov [2].", PASSAGES)
    assert grounded.kept == 1 and grounded.text == "Yes. Tillerson held talks with Lavrov [2]."


@pytest.mark.parametrize(("spelling", "normal"), [
    ("[2, 3]", "[2][3]"), ("[2,3]", "[2][3]"), ("[2; 3]", "[2][3]"), ("[2-4]", "[2][3][4]"), ("［１］", "[1]"),
    ("[٣]", "[3]"), ("[۲]", "[2]"), ("【1】", "[1]"), ("[Passage 2]", "[2]"), ("[^1]", "[1]"), ("[9999]", "[9999]"),
    ("[1 and 2]", "[1][2]"),
])
def test_every_bracketed_number_spelling_is_normalised(spelling: str, normal: str) -> None:
    assert normalise_citations(f"The strike happened {spelling}.") == f"The strike happened {normal}."


def test_normalised_citations_are_validated() -> None:
    passages = [STRIKE, TILLERSON, STRIKE]
    text, citations, phantoms = check_citations("Fired [9999]. Met [2, 3]. Again ［１］ and [٣] [12345678].", passages)
    assert text == "Fired. Met [2][3]. Again [1] and [3]."
    assert [c.n for c in citations] == [1, 2, 3] and phantoms == [9999, 12345678]
