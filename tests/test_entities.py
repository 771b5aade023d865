"""Names and their kinds, and the kind of name a question asks for (what the extractive answerer checks)."""

from __future__ import annotations

import pytest

from qa.answering.entities import asked_kind, names_a_new
from qa.lexicon import Gazetteer, Kind


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer()


def _kinds(gazetteer: Gazetteer, sentence: str) -> dict[str, Kind | None]:
    return {n.text: n.kind for n in gazetteer.names(sentence)}


def test_people_countries_and_places_are_told_apart(gazetteer: Gazetteer) -> None:
    kinds = _kinds(gazetteer, "Russian Foreign Minister Sergei Lavrov met Wednesday with US Secretary of State "
                              "Rex Tillerson ahead of rare Oval Office talks with Donald Trump in Washington.")
    assert kinds == {"Sergei Lavrov": Kind.PERSON, "Wednesday": None, "US": Kind.COUNTRY,
                     "Rex Tillerson": Kind.PERSON, "Oval Office": None, "Donald Trump": Kind.PERSON,
                     "Washington": Kind.PLACE}
    kinds = _kinds(gazetteer, "The attack in Syria’s Idlib province was ordered by Bashar al-Assad, Damascus said.")
    assert kinds == {"Syria": Kind.COUNTRY, "Idlib": Kind.PLACE, "Bashar al-Assad": Kind.PERSON,
                     "Damascus": Kind.PLACE}
    assert _kinds(gazetteer, "It was proposed by the US, Britain, and France.") == {
        "US": Kind.COUNTRY, "Britain": Kind.COUNTRY, "France": Kind.COUNTRY}
    assert _kinds(gazetteer, "Then the Arctic Council met.") == {"Arctic Council": None}
    assert _kinds(gazetteer, "Sergei Lavrov, the Russian foreign minister, said so.") == {
        "Sergei Lavrov": Kind.PERSON, "Russian": None}  # a name may open the sentence
    assert _kinds(gazetteer, "Russia vetoed it.") == {"Russia": Kind.COUNTRY}
    assert _kinds(gazetteer, "Hopes waned after the strike.") == {}  # a capital that only opens the sentence
    assert _kinds(gazetteer, "He met Donald J. Trump and Michael Jordan.") == {
        "Donald J Trump": Kind.PERSON, "Michael Jordan": Kind.PERSON}
    assert _kinds(gazetteer, "On Monday, Senator Warren spoke.")["Warren"] is Kind.PERSON


@pytest.mark.parametrize(("question", "kind", "role_word"), [
    ("Which Russian deputy foreign minister spoke?", Kind.PERSON, "Secretary"),
    ("Who is Vladimir Putin's press spokesman?", Kind.PERSON, "spokesperson"),
    ("Who replaced James Comey as FBI director?", Kind.PERSON, "head"),
    ("Which Ukrainian leader did he call?", Kind.PERSON, "President"),
    ("Which countries put forward the resolution?", Kind.COUNTRY, None),
    ("In which cities did they hold talks?", Kind.PLACE, None),
    ("Which oil company did Tillerson run?", Kind.BODY, None),
    ("Which militant group was blamed?", Kind.BODY, None),
    ("Who did Trump fire?", None, None),
    ("Which agreement did Russia suspend?", None, None),
])
def test_asked_kind(question: str, kind: Kind | None, role_word: str | None) -> None:
    asked = asked_kind(question)
    assert (asked.kind if asked else None) is kind
    if role_word:
        assert asked is not None and asked.role is not None and asked.role.search(role_word)


def test_a_new_name_of_the_asked_kind_and_role(gazetteer: Gazetteer) -> None:
    johnson = "On Monday, UK Foreign Secretary Boris Johnson cancelled a scheduled visit to Russia."
    lead = "Russian Foreign Minister Sergei Lavrov met US Secretary of State Rex Tillerson."
    minister = asked_kind("Which British minister called off a trip to Russia?")
    ambassador = asked_kind("Which Russian ambassador accompanied Lavrov?")
    assert minister and ambassador
    assert names_a_new(gazetteer, johnson, minister, "Which British minister called off a trip to Russia?")
    assert not names_a_new(gazetteer, lead, ambassador, "Which Russian ambassador accompanied Lavrov?")
    director = asked_kind("Who replaced James Comey as FBI director?")
    assert director
    fired = "On Tuesday, Trump dismissed FBI Director James Comey, who was leading a probe."
    assert not names_a_new(gazetteer, fired, director, "Who replaced James Comey as FBI director?")
    countries = asked_kind("Which countries proposed it?")
    assert countries
    assert names_a_new(gazetteer, "It was proposed by the US, Britain, and France.", countries, "Which countries?")
    assert not names_a_new(gazetteer, "The UN Security Council will vote on it.", countries, "Which countries?")
    cities = asked_kind("In which city did the G7 ministers meet?")
    assert cities
    g7 = "European G7 foreign ministers did not support British calls for more sanctions against Russia."
    assert not names_a_new(gazetteer, g7, cities, "In which city did the G7 ministers meet?")
    assert names_a_new(gazetteer, "The G7 ministers met in Lucca on April 11.", cities, "Which city?")
    company = asked_kind("Which oil company did Tillerson run?")
    assert company
    visit = "Tillerson arrived in Moscow on Tuesday for his first visit to Russia as a US secretary of state."
    assert not names_a_new(gazetteer, visit, company, "Which oil company did Tillerson run?")
    assert names_a_new(gazetteer, "Before that he ran ExxonMobil for a decade.", company, "Which oil company?")
    assert names_a_new(gazetteer, "He ran the Exxon Mobil company.", company, "Which oil company?")
    assert names_a_new(gazetteer, "He used to run Gazprom.", company, "Which oil company?")
    lead = "Russian Foreign Minister Sergei Lavrov met Rex Tillerson on Wednesday."
    assert not names_a_new(gazetteer, lead, company, "Which oil company?")  # people, a day, a nationality
    nusra = "It is a fact that the Jabhat al-Nusra terrorists manufactured chemical bombs."
    assert names_a_new(gazetteer, nusra, company, "Which group?")  # called a group by its sentence
