"""Answers with citations. The offline default quotes the best sentences of the retrieved passages."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from qa.answer_types import Expectation
from qa.docstore import DocStore
from qa.entities import Gazetteer
from qa.keyword import question_terms, terms
from qa.retrieve import Passage, Retrieval

CITATION = re.compile(r"\[(\d{1,3})\]")
REFUSAL_PREFIX = "The articles don't say"
MIN_SENTENCE_WORDS = 5


@dataclass
class Citation:
    """A numbered source: the passage exactly as it stands in the article, with its offsets."""

    n: int
    doc_id: str
    title: str
    source: str | None
    published: str | None
    text: str
    start: int
    end: int
    score: float
    quote: dict | None = None  # the sentence(s) the answer took from this passage, when known

    @classmethod
    def from_passage(cls, n: int, passage: Passage) -> Citation:
        return cls(n, passage.doc_id, passage.title, passage.source, passage.published, passage.text,
                   passage.start, passage.end, round(passage.score, 4))


@dataclass
class Answer:
    """The answer text, whether it is a refusal, and the citations its [n] markers point to."""

    text: str
    refused: bool
    citations: list[Citation] = field(default_factory=list)
    notice: str | None = None
    confidence: float | None = None

    def public_citations(self) -> list[dict]:
        return [asdict(c) for c in self.citations]


class Answerer(Protocol):
    """Turns a question and its retrieved passages into an Answer, whole or as a token stream."""

    name: str

    def answer(self, question: str, retrieval: Retrieval) -> Answer: ...

    def stream(self, question: str, retrieval: Retrieval) -> Iterator[str | Answer]: ...


def last_sentence(question: str) -> str:
    """The question actually being asked (a conversation's standalone question ends with it)."""
    return re.split(r"(?<=[?.!])\s+", question.strip())[-1]


def refusal_text(question: str) -> str:
    """The plain statement shown when the articles hold no answer."""
    topic = last_sentence(question).rstrip("?").strip()
    return f"{REFUSAL_PREFIX} — no passage in the indexed articles answers “{topic}”."


def tokens_of(text: str) -> Iterator[str]:
    """Split an answer into word-sized stream tokens that join back to the exact text."""
    yield from re.findall(r"\S+\s*|\s+", text)


@dataclass
class _Candidate:
    passage_index: int
    start: int
    end: int
    text: str
    score: float
    typed: bool


class ExtractiveAnswerer:
    """Picks the sentences that best match the question (embedding + keyword overlap), cites their passages.

    Sentence vectors are computed at ingest time, so a query costs one embedding (the question's) plus a dot
    product per candidate sentence. Deterministic for a given index. The expected answer type comes from the
    last sentence of the question, which in a conversation is the follow-up actually asked.
    """

    name = "extractive"

    def __init__(
        self, docs: DocStore, embed: Callable[[list[str]], np.ndarray], refusal_threshold: float,
        gazetteer: Gazetteer, max_sentences: int = 2, keyword_weight: float = 0.35,
        passages_considered: int = 5, margin: float = 0.08,
    ) -> None:
        self.docs = docs
        self.embed = embed
        self.threshold = refusal_threshold
        self.gazetteer = gazetteer
        self.max_sentences = max_sentences
        self.keyword_weight = keyword_weight
        self.passages_considered = passages_considered
        self.margin = margin

    def candidates(self, question: str, retrieval: Retrieval, expect: Expectation) -> list[_Candidate]:
        """Every sentence of the top passages, scored against the question, best first."""
        q_terms = question_terms(question)
        query_vector = retrieval.query_vector if question == retrieval.query else self.embed([question])[0]
        found: list[_Candidate] = []
        seen: set[tuple[str, int]] = set()
        for index, passage in enumerate(retrieval.passages[: self.passages_considered]):
            for start, end, vector in self.docs.sentences_in(passage.doc_id, passage.start, passage.end):
                if (passage.doc_id, start) in seen:
                    continue
                seen.add((passage.doc_id, start))
                text = passage.text[start - passage.start : end - passage.start]
                if len(text.split()) < MIN_SENTENCE_WORDS or text.strip() == passage.title.strip():
                    continue  # headlines and cross-heads restate topics; they do not answer
                overlap = len(q_terms & set(terms(text))) / len(q_terms) if q_terms else 0.0
                dense = float(np.dot(vector, query_vector))
                typed = expect.met_by(text, passage.text, self.gazetteer)
                score = dense + self.keyword_weight * overlap - (0.0 if typed else 0.25)
                found.append(_Candidate(index, start, end, text, score, typed))
        found.sort(key=lambda c: (-c.score, c.passage_index, c.start))
        return found

    def answer(self, question: str, retrieval: Retrieval) -> Answer:
        expect = Expectation.of(last_sentence(question))  # in a conversation: the follow-up actually asked
        ranked = self.candidates(question, retrieval, expect)
        if expect.strict:
            ranked = [c for c in ranked if c.typed]  # only a sentence with the asked kind of answer can answer
        best = ranked[0] if ranked else None
        if best is None or best.score < self.threshold:
            return Answer(refusal_text(question), True, confidence=round(best.score, 4) if best else None)
        chosen = [best]
        for cand in ranked[1:]:
            if len(chosen) >= self.max_sentences or cand.score < best.score - self.margin:
                break
            if cand.typed:
                chosen.append(cand)
        numbers: dict[int, int] = {}
        citations: list[Citation] = []
        parts: list[str] = []
        for cand in chosen:
            if cand.passage_index not in numbers:
                numbers[cand.passage_index] = len(numbers) + 1
                citation = Citation.from_passage(numbers[cand.passage_index], retrieval.passages[cand.passage_index])
                citation.quote = {"text": cand.text, "start": cand.start, "end": cand.end}
                citations.append(citation)
            parts.append(f"{cand.text} [{numbers[cand.passage_index]}]")
        return Answer(" ".join(parts), False, citations, confidence=round(best.score, 4))

    def stream(self, question: str, retrieval: Retrieval) -> Iterator[str | Answer]:
        result = self.answer(question, retrieval)
        yield from tokens_of(result.text)
        yield result


def check_citations(text: str, passages: list[Passage]) -> tuple[str, list[Citation], list[int]]:
    """Keep only [n] markers that name a given passage; return (clean text, citations, phantom numbers)."""
    phantoms: list[int] = []

    def keep(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if 1 <= n <= len(passages):
            return match.group(0)
        phantoms.append(n)
        return ""

    cleaned = CITATION.sub(keep, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    cited = sorted({int(n) for n in CITATION.findall(cleaned)})
    citations = [Citation.from_passage(n, passages[n - 1]) for n in cited]
    return cleaned, citations, phantoms
