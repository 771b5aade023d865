"""Yes/no questions: "Yes." or "No." is said only when the cited sentence asserts or negates what is asked,
i.e. it speaks of what the question asks (predicate_terms, with their synonyms and irregular forms) and
of every name the question asks about (in the sentence or the one before it, for "He met Putin"); otherwise
the evidence is quoted without a verdict. Whether it says "no" is news.says_no (negation, reversed states)."""

from __future__ import annotations

import re

from qa.answering.news import says_no
from qa.answering.question import Question
from qa.lexicon import speaks_of, terms

_WORD = re.compile(r"\w+")
_ACRONYM = re.compile(r"^[A-Z0-9]{1,4}$")
PREFIX = 5  # as the refusal policy matches names: "Putin's" mentions "Putin"


def mentioned(names: tuple[str, ...], text: str) -> list[bool]:
    """For each name, whether a word of it (acronyms aside) opens a word of `text`."""
    seen = {w.lower()[:PREFIX] for w in _WORD.findall(text)}
    found = []
    for name in names:
        words = [w for w in _WORD.findall(name) if len(w) >= 3 and not _ACRONYM.match(w)]
        found.append(not words or any(w.lower()[:PREFIX] in seen for w in words))
    return found


def names_mentioned(question: Question, text: str) -> bool:
    """Whether every name the question asks about is mentioned in `text`."""
    return all(mentioned(question.entities, text))


def asserts(question: Question, sentence: str, before: str = "") -> bool:
    """Whether the sentence says (or denies) what a yes/no question asks: it speaks of what is asked (more
    than half of the asked words, or half with the first: lexicon.speaks_of, synonyms and irregular forms
    included) and of every name the question asks about."""
    return speaks_of(question.predicate, set(terms(sentence)), strict=True) and names_mentioned(
        question, f"{before} {sentence}")


def verdict(question: Question, sentence: str, before: str = "") -> str | None:
    """"Yes." / "No." when the sentence asserts or negates what is asked, else None (quote, no verdict)."""
    if not asserts(question, sentence, before):
        return None
    return "No." if says_no(question.asked, sentence) else "Yes."
