"""What kind of answer a question expects (a number, an amount of money, a date), read from its wording.

Used by the extractive answerer: a sentence cannot answer "how much did X pay" unless it names an amount,
which is how near-miss passages (right topic, no answer) are refused instead of quoted.
"""

from __future__ import annotations

import re
from enum import Enum


class AnswerType(Enum):
    MONEY = "money"
    NUMBER = "number"
    DATE = "date"
    ANY = "any"


_MONEY_Q = re.compile(r"\bhow much\b.*\b(pa(y|id)|cost|price|spen[dt]|worth|sell|sold|buy|bought|charge)", re.I)
_NUMBER_Q = re.compile(r"\b(how (many|much|long|old|far)|what (number|percentage|share)|death toll)\b", re.I)
_DATE_Q = re.compile(r"\b(when|what (date|day|year|month|time)|which (date|day|year|month))\b", re.I)

_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens?|hundreds?|thousands?|"
    r"millions?|billions?|several|half"
)
_MONEY = re.compile(r"[$€£¥₽]\s?\d|\b\d[\d,.]*\s?(dollars?|euros?|pounds|roubles?|rubles?|yuan)\b|"
                    r"\b(million|billion|trillion) (dollars?|euros?|pounds|roubles?|rubles?)\b", re.I)
_NUMBER = re.compile(rf"\d|\b({_NUMBER_WORDS})\b", re.I)
_MONTHS = r"January|February|March|April|May|June|July|August|September|October|November|December"
_DATE = re.compile(
    rf"\b({_MONTHS}|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|yesterday|today|"
    r"(19|20)\d\d|last (week|month|year)|earlier this (week|month|year))\b"
)


def expected_type(question: str) -> AnswerType:
    """The answer type a question asks for (ANY when the wording does not pin one down)."""
    if _MONEY_Q.search(question):
        return AnswerType.MONEY
    if _DATE_Q.search(question):
        return AnswerType.DATE
    if _NUMBER_Q.search(question):
        return AnswerType.NUMBER
    return AnswerType.ANY


def satisfies(sentence: str, wanted: AnswerType) -> bool:
    """Whether a sentence contains something of the wanted type."""
    if wanted is AnswerType.MONEY:
        return bool(_MONEY.search(sentence))
    if wanted is AnswerType.NUMBER:
        return bool(_NUMBER.search(sentence))
    if wanted is AnswerType.DATE:
        return bool(_DATE.search(sentence))
    return True
