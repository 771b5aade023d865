"""Stage 4, retrieval: find the passages that answer a question. Rankers (dense over the vector index,
BM25 over the SQL store's keyword index) are fused by weighted reciprocal rank, then a reranker (none by
default) reorders them. Filters are translated once per backend (filters.py).

May import: qa.store, qa.embedding, qa.errors, qa.config, qa.registry. Never answering.
Adding a reranker = a module with a factory `(settings, **options) -> Reranker`, and a line in RERANKERS;
adding a ranker = a module with a factory `(settings, index, docs, **options) -> Ranker`, and a line in
RANKERS (hybrid retrieval fuses every registered ranker, each with its weight). Options come from
QA_PART_OPTIONS (qa.registry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from qa.config import Settings
from qa.embedding import Embedder
from qa.registry import Registry
from qa.retrieval.filters import Filters
from qa.store import DocumentStore, Span, StoredChunk, VectorIndex

__all__ = ["RANKERS", "RERANKERS", "Filters", "Passage", "Ranker", "Reranker", "Retrieval", "Retriever",
           "build_retriever"]


@dataclass
class Passage(StoredChunk):
    """A retrieved chunk: exact article text with its offsets, and how it ranked."""

    score: float = 0.0
    ranks: dict[str, int] = field(default_factory=dict)
    # the answerer's sentence spans inside the passage, with their vectors, read from the store with the
    # passage so answering never reads the store; None when the retriever was not asked for them
    sentences: list[Span] | None = field(default=None, repr=False, compare=False)


@dataclass
class Retrieval:
    """Ranked passages, and the query they were found for with its vector (reused by the answerer)."""

    passages: list[Passage]
    query_vector: np.ndarray
    query: str = ""
    filtered: bool = False  # filters narrowed the search (no passages then need not mean an empty index)


class Ranker(Protocol):
    """One ranking of chunks for a query (fusion combines several, by weight)."""

    name: str
    weight: float

    def rank(self, query: str, vector: np.ndarray, n: int, filters: Filters) -> list[tuple[str, float]]: ...


class Reranker(Protocol):
    """Reorders the fused passages (a cross-encoder would go here)."""

    name: str

    def rerank(self, query: str, passages: list[Passage]) -> list[Passage]: ...


class Retriever(Protocol):
    """Question -> the k best passages."""

    def retrieve(self, query: str, k: int, filters: Filters | None = None, mode: str | None = None) -> Retrieval:
        """mode: "hybrid" (the default) or one ranker's name ("dense", "bm25")."""
        ...


# name -> "module:factory"; the factory is called with the Settings and the part's QA_PART_OPTIONS.
RERANKERS = Registry("reranker", {
    "none": "qa.retrieval.rerank:NoRerank",
})

# name -> "module:factory"; called with the Settings, the vector index, the document store and its options.
RANKERS = Registry("ranker", {
    "dense": "qa.retrieval.dense:build",
    "bm25": "qa.retrieval.keyword:build",
})


def build_retriever(settings: Settings, index: VectorIndex, docs: DocumentStore, embedder: Embedder,
                    span_kind: str | None = None) -> Retriever:
    """The retriever the settings ask for: hybrid (dense + BM25), dense or BM25 alone; with `span_kind` (the
    answerer's sentence enrichment) each passage comes with its sentence spans and vectors."""
    from qa.retrieval.fusion import FusionRetriever

    rankers: list[Ranker] = [RANKERS.build(name, settings, settings, index, docs) for name in RANKERS]
    reranker: Reranker = RERANKERS.build(settings.reranker, settings, settings)
    return FusionRetriever([(r, r.weight) for r in rankers], docs, embedder, reranker, mode=settings.retriever,
                           candidates=settings.candidates, rrf_k=settings.rrf_k, span_kind=span_kind,
                           max_per_article=settings.max_per_article, duplicate_overlap=settings.duplicate_overlap)
