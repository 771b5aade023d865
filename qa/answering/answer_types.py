"""What kind of answer a question expects (a number, an amount of money, a date), read from its wording.

Used by the extractive answerer: a sentence cannot answer "how much did X pay" unless it names an amount,
which is how near-miss passages (right topic, no answer) are refused instead of quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from qa.answering.entities import Asked, asked_kind, names_a_new
from qa.lexicon import (
    COUNT_CHANGE_PATTERN,
    MONTH_PATTERN,
    NUMBER_WORDS_PATTERN,
    REPORTED_ON_PATTERN,
    TIME_PATTERN,
    WEEKDAY_PATTERN,
    Gazetteer,
    capitalised_words,
    question_words,
)


class AnswerType(Enum):
    MONEY = "money"
    DURATION = "duration"
    NUMBER = "number"
    DATE = "date"
    TIME = "time"
    ENTITY = "entity"
    ANY = "any"


_MONEY_Q = re.compile(r"\bhow much\b.*\b(pa(y|id)|cost|price|spen[dt]|worth|sell|sold|buy|bought|charge)", re.I)
_DURATION_Q = re.compile(r"\bhow long\b", re.I)
_TIME_Q = re.compile(r"\b(at )?what time\b(?! of (the )?(year|month))|\bat what hour\b", re.I)
_NUMBER_Q = re.compile(r"\b(how (many|much|old|far)|what (number|percentage|share)|death toll)\b", re.I)
_ENTITY_Q = re.compile(r"^\W*(who|whom|which (\w+ )?(group|country|countries|minister|official|leader|chief|"
                       r"company|agreement|city|cities|town|province|organi[sz]ation|outlet|agency|person))\b", re.I)
_DATE_Q = re.compile(
    r"(^|[,;:—–-]\s*)\W*((on|in|since|by|until|from|at)\s+)?(when|what (date|day|year|month|time)|"
    r"which (date|day|year|month))\b", re.I,
)

_NUMBER_WORDS = NUMBER_WORDS_PATTERN
_MONEY = re.compile(r"[$€£¥₽]\s?\d|(?<![\w,.])[.,]?\d[\d,.]*+\s?(dollars?|euros?|pounds|roubles?|rubles?|yuan)\b|"
                    r"\b(million|billion|trillion) (dollars?|euros?|pounds|roubles?|rubles?)\b", re.I)
_DURATION = re.compile(
    rf"\b(\d+|{_NUMBER_WORDS}|a|an)[ -](seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?)\b|"
    r"\b(all day|overnight)\b", re.I,
)
_TIME = re.compile(TIME_PATTERN, re.I)
_REPORTED_ON = re.compile(REPORTED_ON_PATTERN)
_NUMBER = re.compile(rf"\d|\b({_NUMBER_WORDS})\b", re.I)
_DATE = re.compile(
    rf"\b({MONTH_PATTERN}|{WEEKDAY_PATTERN}|yesterday|today|"
    r"(19|20)\d\d|last (week|month|year)|earlier this (week|month|year))\b"
)


def expected_type(question: str) -> AnswerType:
    """The answer type a question asks for (ANY when the wording does not pin one down)."""
    if _MONEY_Q.search(question):
        return AnswerType.MONEY
    if _DURATION_Q.search(question):
        return AnswerType.DURATION
    if _TIME_Q.search(question):
        return AnswerType.TIME
    if _DATE_Q.search(question):
        return AnswerType.DATE
    if _NUMBER_Q.search(question):
        return AnswerType.NUMBER
    if _ENTITY_Q.search(question):
        return AnswerType.ENTITY
    return AnswerType.ANY


def names_beyond(sentence: str, question: str) -> bool:
    """Whether a sentence names someone or something (a capitalised word) that the question does not."""
    asked = question_words(question)
    return any(w.lower().removesuffix("’s").removesuffix("'s") not in asked for w in capitalised_words(sentence))


def without_reporting_days(sentence: str) -> str:
    """The sentence without the day its statement was made ("officials said on Monday"): that is when it
    was said, not when the thing asked about happened."""
    return _REPORTED_ON.sub("", sentence)


def satisfies(sentence: str, wanted: AnswerType) -> bool:
    """Whether a sentence contains something of the wanted type."""
    if wanted is AnswerType.MONEY:
        return bool(_MONEY.search(sentence))
    if wanted is AnswerType.DURATION:
        return bool(_DURATION.search(sentence))
    if wanted is AnswerType.NUMBER:
        return bool(_NUMBER.search(sentence))
    if wanted is AnswerType.DATE:
        return bool(_DATE.search(without_reporting_days(sentence)))
    if wanted is AnswerType.TIME:
        return bool(_TIME.search(sentence))
    return True


def soft_types() -> frozenset[AnswerType]:
    """Types a sentence is penalised for missing but not refused for (names are too varied to be strict)."""
    return frozenset({AnswerType.ANY, AnswerType.ENTITY})


_WHERE_Q = re.compile(r"^\W*where\b", re.I)
_ATTRIBUTION = re.compile(r"\baccording to (?:the )?((?:[A-Z][\w’'-]*\s?)+)")


def attributed_to(question: str) -> str | None:
    """The source a question asks about ("according to the Pentagon" -> "Pentagon"), if any."""
    match = _ATTRIBUTION.search(question)
    return match.group(1).strip() if match else None


_COUNTED = re.compile(r"\bhow many ([a-z][\w-]*(?: [a-z][\w-]*)?)", re.I)
_HEAD_SKIP = {"and", "or", "of", "the", "did", "do", "does", "were", "was", "are", "is", "have", "has", "had", "will",
              "would"}
# A count of people is often reported as a count of what happened to them.
_PEOPLE = {"people", "persons", "civilians", "individuals", "died", "killed", "dead", "deaths"}
_PEOPLE_UNITS = re.compile(r"\b(people|persons|civilians|deaths?|dead|killed|died|casualties|victims|refugees|"
                           r"injured|wounded)\b", re.I)


_INJURED = re.compile(r"\b(injur\w*|wound\w*|hurt)\b", re.I)
_KILLED = re.compile(r"\b(kill\w*|di(ed|e|es)|dead|deaths?|death toll|fatalit\w*)\b", re.I)


def same_casualties(sentence: str, question: str) -> bool:
    """A count of the dead does not answer how many were injured, nor the other way round."""
    return all(wanted.search(sentence) or not wanted.search(question) for wanted in (_INJURED, _KILLED))


_DURATION_OF_MEETING = re.compile(
    rf"\b(?:\d+|{_NUMBER_WORDS}|a|an)[ -](?:minutes?|hours?|days?)[\w ,-]{{0,20}}?\b"
    r"(?:meeting|talks|call|conversation|session|visit)\s+with\s+((?:[A-Z][\w’'-]*\s?)+)"
)


def duration_of_asked_meeting(sentence: str, question: str) -> bool:
    """"A two-hour meeting with Putin" does not say how long a meeting with someone else lasted."""
    asked = question_words(question)
    matches = [m.group(1).split()[-1].lower().removesuffix("’s").removesuffix("'s")
               for m in _DURATION_OF_MEETING.finditer(sentence)]
    return not matches or any(name in asked for name in matches)


_OUTCOME_Q = re.compile(
    r"(?<!as a )\b(result|outcome|verdict|decided|decide|decisions?|agreed?|concluded?|won|win)\b", re.I
)
_OUTCOME_DONE = re.compile(
    r"\b(won|voted|decided|agreed|approved|rejected|adopted|passed|vetoed|concluded|elected|ruled|signed)\b", re.I
)


def asks_outcome(question: str) -> bool:
    """Whether a question asks how something turned out (a result, a decision, an agreement, a winner)."""
    return bool(_OUTCOME_Q.search(question))


def reports_outcome(sentence: str) -> bool:
    """Only a sentence reporting an outcome (won, voted, decided, agreed, approved, ...) tells how something
    turned out; one announcing the event (scheduled to vote, ahead of talks) or describing it does not."""
    return bool(_OUTCOME_DONE.search(sentence))


def counted_nouns(question: str) -> list[str]:
    """What a "how many" question counts: the one or two words after it ("Russian troops", "safe zones")."""
    match = _COUNTED.search(question)
    if not match:
        return []
    words: list[str] = []
    for word in match.group(1).split():
        if word.lower() in _HEAD_SKIP:
            break
        words.append(word)
    if len(words) == 2 and words[0][0].isupper():  # "Russian troops", "Tomahawk missiles": count the noun
        words = words[1:]
    return [w.lower() for w in words]


def counts_the_right_thing(sentence: str, nouns: list[str]) -> bool:
    """A count only answers "how many X" if the sentence is about X (people may be counted as deaths)."""
    if not nouns:
        return True
    if any(n in _PEOPLE for n in nouns) and _PEOPLE_UNITS.search(sentence):
        return True
    stems = [n[:-1] if n.endswith("s") and len(n) > 3 else n for n in nouns]
    # the count stands by the thing counted ("212 passengers", "59 Tomahawk cruise missiles"), not anywhere
    # in the sentence ("20 people were killed when the passenger ferry ..."), or a count of it changes ("the
    # number of homes destroyed rose to 112")
    return any(re.search(rf"(?:\d|\b(?:{_NUMBER_WORDS})\b)[\d,.]*(?:\s+\S+){{0,3}}?\s+\W?{re.escape(stem)}",
                         sentence, re.I)
               or re.search(rf"\b{re.escape(stem)}\w*\b.*{COUNT_CHANGE_PATTERN}(?: to| at)? \D{{0,12}}\d",
                            sentence, re.I)
               for stem in stems)



@dataclass(frozen=True)
class Expectation:
    """What a sentence must hold to answer a question, read once from the question's wording."""

    question: str
    wanted: AnswerType
    source: str | None
    counted: list[str]
    kind: Asked | None
    outcome: bool
    where: bool = False  # "where ...?" needs a place the question does not name

    @classmethod
    def of(cls, question: str) -> Expectation:
        return cls(question, expected_type(question), attributed_to(question), counted_nouns(question),
                   asked_kind(question), asks_outcome(question), bool(_WHERE_Q.search(question)))

    @property
    def strict(self) -> bool:
        """Whether only a sentence that meets the expectation may answer (else it is only ranked lower)."""
        return self.wanted not in soft_types() or self.kind is not None or self.outcome or self.where

    def met_by(self, sentence: str, passage: str, gazetteer: Gazetteer, outlet: str | None = None) -> bool:
        """Whether the sentence (from this passage, published by `outlet`) holds the kind of answer the question
        asks for. "According to the AFP piece" is met by the passage's text or by its outlet."""
        asked = self.question
        return (
            satisfies(sentence, self.wanted)
            and counts_the_right_thing(sentence, self.counted)
            and same_casualties(sentence, asked)
            and (self.wanted is not AnswerType.DURATION or duration_of_asked_meeting(sentence, asked))
            and (not self.outcome or reports_outcome(sentence))
            and (self.source is None or self.source.lower() in passage.lower()
                 or (outlet is not None and self.source.lower() in outlet.lower()))
            and (not self.where or names_beyond(sentence, asked))
            and (  # a specific kind of name is checked by kind; any other "who/which" by any new name
                names_a_new(gazetteer, sentence, self.kind, asked) if self.kind is not None
                else self.wanted is not AnswerType.ENTITY or names_beyond(sentence, asked)
            )
        )
