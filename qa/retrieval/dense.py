"""Dense ranking: nearest chunk vectors in the vector index."""

from __future__ import annotations

import numpy as np

from qa.config import Settings
from qa.retrieval.filters import Filters
from qa.store import DocumentStore, VectorIndex


class DenseRanker:
    """Chunks by cosine similarity of their vectors to the question's."""

    name = "dense"

    def __init__(self, index: VectorIndex, weight: float = 1.0) -> None:
        self.index = index
        self.weight = weight

    def rank(self, query: str, vector: np.ndarray, n: int, filters: Filters) -> list[tuple[str, float]]:
        return [(h.chunk_id, h.score) for h in self.index.query(vector, n, filters.compiled())]


def build(settings: Settings, index: VectorIndex, docs: DocumentStore) -> DenseRanker:
    """The RANKERS factory: weighted by QA_DENSE_WEIGHT in hybrid fusion."""
    return DenseRanker(index, settings.dense_weight)
