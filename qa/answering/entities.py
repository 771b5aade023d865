"""What kind of name a question asks for (a person in a role, a country, a city, a body), and whether a
sentence names a new one of that kind. The word lists and the name finder live in qa.lexicon.

"Which British minister ..." is not answered by a sentence that names only Russia and Syria, nor "which
countries ..." by one that names only a council.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.lexicon import CALENDAR_WORDS, DEMONYM, ROLE_SYNONYMS, Gazetteer, Kind, Name, question_words

_ROLE = "|".join(sorted(ROLE_SYNONYMS, key=len, reverse=True))
# A word inside the noun phrase after "which": not an auxiliary or article ("what did the minister say" asks
# for what was said, not for a minister).
_MODIFIER = r"(?:(?!(?:did|does|do|is|was|were|are|has|have|had|will|would|can|could|the|a|an)\b)[\w’'-]+\s+)"
_PERSON_Q = re.compile(  # "which Russian minister", "who is Putin's spokesman", "who replaced X as FBI director"
    rf"^\W*(?:(?:which|what(?: (?:is|was) the name of(?: the)?)?)\s+|who (?:is|was|are|were)\s+(?:the\s+)?|"
    rf"who\b.*?\bas\s+(?:the\s+|an?\s+)?){_MODIFIER}{{0,4}}?({_ROLE})\b", re.I,
)
_COUNTRY_Q = re.compile(rf"^\W*(?:which|what)\s+{_MODIFIER}{{0,2}}?(?:country|countries|nations?)\b", re.I)
_CITY_Q = re.compile(
    rf"^\W*(?:(?:in|at|to|from)\s+)?(?:which|what)\s+{_MODIFIER}{{0,2}}?(?:city|cities|capital)\b", re.I
)
_BODY_Q = re.compile(
    rf"^\W*(?:which|what)\s+{_MODIFIER}{{0,2}}?(?:group|company|firm|corporation|organi[sz]ation|agency|outlet|"
    r"newspaper|network|channel|party|militia|bank)\b", re.I,
)
_BODY_NOUN = re.compile(
    r"\W*(?:\w+\s+)?(?:group|company|firm|corporation|agency|terrorists?|militants?|rebels?|fighters|militia|"
    r"party|network|channel|newspaper|bank|organi[sz]ation)\b", re.I,
)


@dataclass(frozen=True)
class Asked:
    """The kind of name a question asks for and, for a person, the role words that must stand near the name."""

    kind: Kind
    role: re.Pattern[str] | None = None


def asked_kind(question: str) -> Asked | None:
    """What a "which minister" / "who is the spokesman" / "which country" / "in which city" question asks for."""
    if match := _PERSON_Q.search(question):
        return Asked(Kind.PERSON, re.compile(rf"\b({ROLE_SYNONYMS[match.group(1).lower()]})\b", re.I))
    if _COUNTRY_Q.search(question):
        return Asked(Kind.COUNTRY)
    if _CITY_Q.search(question):
        return Asked(Kind.PLACE)
    if _BODY_Q.search(question):
        return Asked(Kind.BODY)
    return None


def names_a_new(gazetteer: Gazetteer, sentence: str, wanted: Asked, question: str) -> bool:
    """Whether the sentence names a person (with the asked role nearby), country or city the question does not."""
    asked = question_words(question)
    names = gazetteer.names(sentence)
    surnames = {n.text.split()[-1] for n in names if n.kind is Kind.PERSON}
    for name in names:
        at = sentence.find(name.text)  # -1 when titles were stripped from inside the name
        after = "" if at < 0 else sentence[at + len(name.text) : at + len(name.text) + 30]
        if not _is(name, wanted.kind, surnames, after) or name.text.split()[-1].lower() in asked:
            continue
        window = sentence if at < 0 else sentence[max(0, at - 40) : at + len(name.text) + 40]
        if wanted.role is None or wanted.role.search(window):
            return True
    return False


def _is(name: Name, kind: Kind, surnames: set[str], after: str) -> bool:
    """Whether a name can be of the asked kind. A body is a name that is no person, place, day or nationality,
    or any name its sentence calls a group ("the Jabhat al-Nusra terrorists", "RIA Novosti news agency")."""
    if kind is not Kind.BODY:
        return name.kind is kind
    if _BODY_NOUN.match(after):
        return True
    single = " " not in name.text
    return name.kind is None and name.text.lower() not in CALENDAR_WORDS and not (
        single and (name.text in surnames or DEMONYM.search(name.text.lower()))
    )
