"""Dense ranking: nearest chunk vectors in the vector index."""

from __future__ import annotations

import numpy as np

from qa.retrieval.filters import Filters, chroma_where
from qa.store import VectorIndex


class DenseRanker:
    """Chunks by cosine similarity of their vectors to the question's."""

    name = "dense"

    def __init__(self, index: VectorIndex) -> None:
        self.index = index

    def rank(self, query: str, vector: np.ndarray, n: int, filters: Filters) -> list[tuple[str, float]]:
        return [(h.chunk_id, h.score) for h in self.index.query(vector, n, chroma_where(filters))]
