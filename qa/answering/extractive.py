"""The offline default answerer: quotes the best sentences of the retrieved passages, each cited."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from qa.answering import Answer, AnswerContext, Citation, Quote
from qa.answering.answer_types import Expectation
from qa.answering.citations import last_sentence, refusal_text, tokens_of
from qa.answering.enrichments import SENTENCE_VECTORS, LazySentenceVectors, SentenceVectors
from qa.lexicon import Gazetteer, neutralise_citations, question_terms, terms
from qa.retrieval import Retrieval
from qa.store import DocumentStore

MIN_SENTENCE_WORDS = 5


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
        self, docs: DocumentStore, embed: Callable[[list[str]], np.ndarray], refusal_threshold: float,
        gazetteer: Gazetteer, max_sentences: int = 2, keyword_weight: float = 0.35,
        passages_considered: int = 5, margin: float = 0.08, sentences: SentenceVectors | None = None,
    ) -> None:
        self.enrichments = (sentences or SentenceVectors(),)
        self.on_use = None if self.enrichments[0].at_ingest else LazySentenceVectors(embed)
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
        sentences: list[tuple[int, int, int, str, np.ndarray]] = []
        seen: set[tuple[str, int]] = set()
        for index, passage in enumerate(retrieval.passages[: self.passages_considered]):
            for start, end, vector in self.docs.spans_in(SENTENCE_VECTORS, passage.doc_id, passage.start, passage.end):
                if (passage.doc_id, start) in seen:
                    continue
                seen.add((passage.doc_id, start))
                text = passage.text[start - passage.start : end - passage.start]
                if len(text.split()) < MIN_SENTENCE_WORDS or text.strip() == passage.title.strip():
                    continue  # headlines and cross-heads restate topics; they do not answer
                sentences.append((index, start, end, text, vector))
        if self.on_use is not None and sentences:  # vectors made on first use (QA_SENTENCE_VECTORS=lazy)
            made = self.on_use.vectors([text for _, _, _, text, _ in sentences])
            sentences = [(i, s, e, t, v) for (i, s, e, t, _), v in zip(sentences, made, strict=True)]
        found: list[_Candidate] = []
        for index, start, end, text, vector in sentences:
            passage = retrieval.passages[index]
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
                citations.append(Citation(numbers[cand.passage_index], retrieval.passages[cand.passage_index],
                                          Quote(cand.text, cand.start, cand.end)))
            # an article's own "[3]" would read as a citation of passage 3: quoted as "(3)" (same length)
            parts.append(f"{neutralise_citations(cand.text)} [{numbers[cand.passage_index]}]")
        return Answer(" ".join(parts), False, citations, confidence=round(best.score, 4))

    def stream(self, question: str, retrieval: Retrieval) -> Iterator[str | Answer]:
        result = self.answer(question, retrieval)
        yield from tokens_of(result.text)
        yield result


def build(context: AnswerContext) -> ExtractiveAnswerer:
    """The registry's factory: sentence vectors from the SQL store, the question embedded by the embedder."""
    settings = context.settings
    return ExtractiveAnswerer(context.docs, context.embedder.embed, settings.refusal_threshold, Gazetteer(),
                              settings.max_answer_sentences,
                              sentences=SentenceVectors(in_chunk=settings.sentence_vectors == "pooled",
                                                        at_ingest=settings.sentence_vectors != "lazy"))
