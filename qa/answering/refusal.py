"""When not to answer, and why: one policy for every answerer. Each refusal carries a reason (the
`refusal_reason` of the contract) and its own message, so "nothing is indexed", "ask in English", "no article
mentions X" and "the evidence is too weak" read differently."""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.answering.citations import REFUSAL_PREFIX, refusal_text
from qa.answering.question import Question
from qa.retrieval import Retrieval

EMPTY_INDEX = "empty_index"
NOT_ENGLISH = "not_english"
ENTITY_NOT_FOUND = "entity_not_found"
WEAK_EVIDENCE = "weak_evidence"
REASONS = (EMPTY_INDEX, NOT_ENGLISH, ENTITY_NOT_FOUND, WEAK_EVIDENCE)
_WORD = re.compile(r"\w+")
_ACRONYM = re.compile(r"^[A-Z0-9]{1,4}$")  # "US", "BA", "G8": written out as often as not ("British Airways")
# Nationality words ("American", "Syrian", "Chinese") stand for a country the articles may name otherwise.
_DEMONYM = re.compile(r"(?:an|ean|ese|ish|ic|ch|i)$")
PREFIX = 5  # a name's word is mentioned when a passage word opens with the same five letters ("Putin's")


@dataclass(frozen=True)
class Refusal:
    """Why an answer is withheld, and what the reader is told."""

    reason: str
    message: str


def missing_entity(question: Question, retrieval: Retrieval, words_at_least: int = 1) -> str | None:
    """A name the question asks about that no retrieved passage (text or title) mentions: no word of the name
    (three letters or more) opens a word of any of them. Acronyms and nationality words are not checked;
    `words_at_least` 2 checks only names of two words or more ("Boris Johnson", not "France" that a passage
    may call "French", nor "Kremlin" that a passage may not need to name)."""
    seen = {w.lower()[:PREFIX] for p in retrieval.passages for w in _WORD.findall(f"{p.title} {p.text}")}
    for name in question.entities:
        if len(name.split()) < words_at_least:
            continue
        words = [w for w in _WORD.findall(name)
                 if len(w) >= 3 and not _ACRONYM.match(w) and not _DEMONYM.search(w.lower())]
        if words and not any(w.lower()[:PREFIX] in seen for w in words):
            return name
    return None


@dataclass(frozen=True)
class RefusalPolicy:
    """The checks made before answering (index, language, the asked names) and the evidence threshold after.

    `threshold` is the minimum score of the best sentence (the learned scorer's probability that it is the
    evidence); QA_REFUSAL_THRESHOLD when set, else the one `python -m eval.fit_scorer` chose on the tune sets
    (docs/eval.md)."""

    threshold: float = 0.5

    @classmethod
    def of(cls, threshold: float | None) -> RefusalPolicy:
        """The policy with this threshold, or with the one fitted with the scorer's weights."""
        from qa.answering.scorer import load

        return cls(load().threshold if threshold is None else threshold)

    def before(self, question: Question, retrieval: Retrieval, filtered: bool = False) -> Refusal | None:
        """A refusal that needs no evidence score: nothing to search, a question not in English, or a name
        the question asks about that no passage mentions."""
        if not retrieval.passages:
            where = "No indexed article matches the filters" if filtered else "No articles are indexed yet"
            return Refusal(EMPTY_INDEX, f"{where}, so there is nothing to answer “{_topic(question)}” from.")
        if question.language is not None:
            return Refusal(NOT_ENGLISH, f"Only questions in English are understood; this one looks like "
                                        f"{question.language}. Please ask it in English.")
        name = missing_entity(question, retrieval, words_at_least=2)
        if name is not None:
            return _not_mentioned(name)
        return None

    def weak(self, question: Question, score: float | None, retrieval: Retrieval | None = None) -> Refusal | None:
        """A refusal for evidence under the threshold (or none of the asked kind: `score` None); when a name
        the question asks about is in no passage, that is the reason given."""
        if score is None or score < self.threshold:
            name = missing_entity(question, retrieval) if retrieval is not None else None
            return _not_mentioned(name) if name else Refusal(WEAK_EVIDENCE, refusal_text(question.text))
        return None

    def unanswered(self, question: Question) -> Refusal:
        """What a refusal says when an answerer found no evidence by its own judgement (the LLM's marker)."""
        return Refusal(WEAK_EVIDENCE, refusal_text(question.text))


def _not_mentioned(name: str) -> Refusal:
    return Refusal(ENTITY_NOT_FOUND, f"{REFUSAL_PREFIX} — no passage in the indexed articles mentions “{name}”.")


def _topic(question: Question) -> str:
    return question.asked.rstrip("?").strip()
