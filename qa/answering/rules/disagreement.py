"""When two figures from two articles are two values of one thing, so that "the sources disagree" may be
said. They must be the same kind of measure (money in the same currency, a percentage, a count, a length:
the key of qa.answering.news.numbers_in), and both sentences must name the subject the question asks about
(every name of the question, as the yes/no rule reads them, in the sentence or before it in its passage)
and share what it asks about (two content words, one of them a word of the question's predicate:
extractive._same_subject), the other sentence saying at least the asked words the lead says (same_question).
A different company, story or measure is not a disagreement."""

from __future__ import annotations

from qa.answering.question import Question
from qa.answering.rules.yes_no import names_mentioned
from qa.lexicon import predicate_terms, terms


def measure_of(key: str) -> str:
    """"money:USD:1.7e+07" -> "money:USD"; a date, time or name key has no measure ("")."""
    return key.rsplit(":", 1)[0] if ":" in key and key[:1].isalpha() else ""


def same_measure(first_key: str, second_key: str) -> bool:
    return measure_of(first_key) == measure_of(second_key)


def same_subject(question: Question, first: str, second: str) -> bool:
    """Both texts (each a sentence with what its passage says before it) name every name the question asks
    about."""
    return names_mentioned(question, first) and names_mentioned(question, second)


def asked_of(question: Question, sentence: str) -> set[int]:
    """Which of the words the question asks beyond its names (predicate_terms, with their forms) a sentence
    says, by their place in the question."""
    said = set(terms(sentence))
    return {n for n, forms in enumerate(predicate_terms(question.asked)) if forms & said}


def same_question(question: Question, lead: str, other: str) -> bool:
    """The other sentence says what the lead says of the question, one asked word aside when the lead says
    three or more ("the *new* bridge will cost" / "the bridge will cost"): "940,000 users of its *paid
    service*" is not answered otherwise by "83 million people have downloaded the software that powers the
    service"; a figure about less of what is asked is another measure, not a second value."""
    said = asked_of(question, lead)
    return len(said & asked_of(question, other)) >= len(said) - (1 if len(said) >= 3 else 0)
