"""Yes/no questions: "Yes." or "No." is said only when the cited sentence asserts or negates what is asked,
i.e. it speaks of what the question asks (predicate_terms, with their synonyms and irregular forms) and
of every name the question asks about (in the sentence or the one before it, for "He met Putin"), and
says it plainly: every asked word is met, a negation stands right before an asked word (not elsewhere in
the sentence: "backed it, saying people are not frightened"), and no comparison, hedge or modal that the
question does not use reverses the reading ("better than expected" for "did it fall short?"; the list is
yes_no_unsure.txt beside this file); otherwise
the evidence is quoted without a verdict. Whether it says "no" is news.says_no (negation, reversed states)."""

from __future__ import annotations

import re
from pathlib import Path

from qa.answering.news import says_no
from qa.answering.question import Question
from qa.lexicon import speaks_of, terms

_WORD = re.compile(r"\w+")
_ACRONYM = re.compile(r"^[A-Z0-9]{1,4}$")
PREFIX = 5  # as the refusal policy matches names: "Putin's" mentions "Putin"
NEGATION_REACH = 3  # content words after a negation among which the asked word it negates stands
_UNSURE = frozenset(
    w for line in (Path(__file__).with_name("yes_no_unsure.txt")).read_text("utf-8").splitlines()
    if not line.startswith("#") for w in line.split())
_NEGATION = re.compile(r"^(?:not|no|never|neither|nor|none|without|denied|declined|refused|rejected|\w+n[’']t)$")


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


def plain(question: Question, sentence: str, no: bool) -> bool:
    """Whether the sentence says what is asked plainly enough for a verdict: it holds no comparison, hedge or
    modal (yes_no_unsure.txt) that the question does not use, each negation stands within NEGATION_REACH words
    before an asked word, and for a "Yes." every asked word is met (a "No." negates one of them)."""
    tokens = _WORD.findall(sentence)
    said = [t.lower() for t in tokens]
    asked_words = set(_WORD.findall(question.asked.lower()))
    if any(w in _UNSURE and w not in asked_words for w in said):
        return False
    stems = [set(terms(w)) for w in said]
    if not no and not all(any(forms & s for s in stems) for forms in question.predicate):
        return False
    for at, word in enumerate(said):
        if _NEGATION.match(word) and word not in asked_words:
            # the next few content words (names and stopwords aside: "no plans for Mr Blair to hold")
            ahead = [stems[k] for k in range(at + 1, len(said)) if stems[k] and not tokens[k][:1].isupper()]
            if not any(forms & s for forms in question.predicate for s in ahead[:NEGATION_REACH]):
                return False  # a negation of something else than what is asked
    return True


def verdict(question: Question, sentence: str, before: str = "") -> str | None:
    """"Yes." / "No." when the sentence asserts or negates what is asked, plainly; else None (the evidence is
    quoted without a verdict)."""
    if not asserts(question, sentence, before):
        return None
    no = says_no(question.asked, sentence)
    if not plain(question, sentence, no):
        return None
    return "No." if no else "Yes."
