"""Stage 4, retrieval: find the passages that answer a question. Rankers (dense over the vector index,
BM25 over the SQL store's keyword index) are fused by weighted reciprocal rank, then a reranker (none by
default) reorders them. Filters are translated once per backend (filters.py).

May import: qa.store, qa.embedding, qa.errors, qa.config. Never answering.
Adding a reranker = a module with a class that follows `Reranker`, and a line in RERANKERS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Protocol

import numpy as np

from qa.config import Settings
from qa.embedding import Embedder
from qa.errors import BadRequest
from qa.retrieval.filters import Filters
from qa.store import DocumentStore, StoredChunk, VectorIndex

__all__ = ["RERANKERS", "Filters", "Passage", "Ranker", "Reranker", "Retrieval", "Retriever", "build_retriever"]


@dataclass
class Passage(StoredChunk):
    """A retrieved chunk: exact article text with its offsets, and how it ranked."""

    score: float = 0.0
    ranks: dict[str, int] = field(default_factory=dict)
    # the answerer's sentence spans inside the passage, with their vectors (start, end, vector), read from the
    # store with the passage so answering never reads the store; None when the retriever was not asked for them
    sentences: list[tuple[int, int, np.ndarray]] | None = field(default=None, repr=False, compare=False)


@dataclass
class Retrieval:
    """Ranked passages, and the query they were found for with its vector (reused by the answerer)."""

    passages: list[Passage]
    query_vector: np.ndarray
    query: str = ""
    filtered: bool = False  # filters narrowed the search (no passages then need not mean an empty index)


class Ranker(Protocol):
    """One ranking of chunks for a query (fusion combines several)."""

    name: str

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


# name -> "module:class"; the class is built with no arguments.
RERANKERS: dict[str, str] = {
    "none": "qa.retrieval.rerank:NoRerank",
}


def load(registry: dict[str, str], name: str, what: str) -> Any:
    """The class a registry names (imported only when used)."""
    if name not in registry:
        raise BadRequest(f"unknown {what} '{name}' (known: {', '.join(sorted(registry))})")
    module, _, attribute = registry[name].partition(":")
    return getattr(import_module(module), attribute)


def build_retriever(settings: Settings, index: VectorIndex, docs: DocumentStore, embedder: Embedder,
                    span_kind: str | None = None) -> Retriever:
    """The retriever the settings ask for: hybrid (dense + BM25), dense or BM25 alone; with `span_kind` (the
    answerer's sentence enrichment) each passage comes with its sentence spans and vectors."""
    from qa.retrieval.dense import DenseRanker
    from qa.retrieval.fusion import FusionRetriever
    from qa.retrieval.keyword import KeywordRanker

    rankers: list[tuple[Ranker, float]] = [(DenseRanker(index), settings.dense_weight),
                                           (KeywordRanker(docs), settings.bm25_weight)]
    reranker = load(RERANKERS, settings.reranker, "reranker")()
    return FusionRetriever(rankers, docs, embedder, reranker, mode=settings.retriever,
                           candidates=settings.candidates, rrf_k=settings.rrf_k, span_kind=span_kind,
                           max_per_article=settings.max_per_article, duplicate_overlap=settings.duplicate_overlap)
