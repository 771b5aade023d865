"""Keyword ranking: BM25 in the keyword index the SQL store keeps (tantivy, qa.store.keyword)."""

from __future__ import annotations

import numpy as np

from qa.config import Settings
from qa.retrieval.filters import Filters
from qa.store import DocumentStore, VectorIndex


class KeywordRanker:
    """Chunks by BM25 score of the question's terms (the analysis in qa.lexicon)."""

    name = "bm25"

    def __init__(self, docs: DocumentStore, weight: float = 1.0) -> None:
        self.docs = docs
        self.weight = weight

    def rank(self, query: str, vector: np.ndarray, n: int, filters: Filters) -> list[tuple[str, float]]:
        return self.docs.keyword_search(query, n, filters.compiled())


def build(settings: Settings, index: VectorIndex, docs: DocumentStore) -> KeywordRanker:
    """The RANKERS factory: weighted by QA_BM25_WEIGHT in hybrid fusion."""
    return KeywordRanker(docs, settings.bm25_weight)
