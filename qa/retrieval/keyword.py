"""Keyword ranking: BM25 over the SQL store's full-text index."""

from __future__ import annotations

import numpy as np

from qa.retrieval.filters import Filters, sql_where
from qa.store import DocumentStore


class KeywordRanker:
    """Chunks by BM25 score of the question's terms (the analysis in qa.lexicon)."""

    name = "bm25"

    def __init__(self, docs: DocumentStore) -> None:
        self.docs = docs

    def rank(self, query: str, vector: np.ndarray, n: int, filters: Filters) -> list[tuple[str, float]]:
        return self.docs.keyword_search(query, n, sql_where(filters))
