"""Find the passages that answer a question: dense (Chroma) + keyword (BM25), fused by weighted RRF."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Literal

import numpy as np

from qa.docstore import DocStore
from qa.embeddings import Embedder
from qa.errors import BadRequest
from qa.keyword import KeywordIndex, day_number
from qa.vectors import VectorStore

Mode = Literal["hybrid", "dense", "bm25"]


@dataclass(frozen=True)
class Filters:
    """Metadata restrictions on which articles may answer."""

    source: str | None = None
    published_from: date | None = None
    published_to: date | None = None

    def __post_init__(self) -> None:
        if self.published_from and self.published_to and self.published_from > self.published_to:
            raise BadRequest("filters.published_from is after filters.published_to")

    def chroma_where(self) -> dict | None:
        clauses: list[dict] = []
        if self.source:
            clauses.append({"source": self.source.casefold()})
        if self.published_from:
            clauses.append({"published_day": {"$gte": day_number(self.published_from)}})
        if self.published_to:
            clauses.append({"published_day": {"$lte": day_number(self.published_to)}})
            clauses.append({"published_day": {"$gt": 0}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


@dataclass
class Passage:
    """A retrieved chunk: exact article text with its offsets, and how it ranked."""

    chunk_id: str
    doc_id: str
    title: str
    source: str | None
    published: str | None
    text: str
    start: int
    end: int
    score: float
    ranks: dict[str, int] = field(default_factory=dict)

    def public(self) -> dict:
        """The passage as the JSON contract shows it."""
        data = asdict(self)
        data["score"] = round(self.score, 4)
        return data


@dataclass
class Retrieval:
    """Ranked passages, and the query they were found for with its vector (reused by the answerer)."""

    passages: list[Passage]
    query_vector: np.ndarray
    query: str = ""


class Retriever:
    """Hybrid retrieval with metadata filters and overlap de-duplication."""

    def __init__(
        self, store: VectorStore, docs: DocStore, keyword: KeywordIndex, embedder: Embedder, *,
        mode: Mode = "hybrid", candidates: int = 30, rrf_k: int = 60, dense_weight: float = 1.0,
        bm25_weight: float = 1.0,
    ) -> None:
        self.store = store
        self.docs = docs
        self.keyword = keyword
        self.embedder = embedder
        self.mode = mode
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.weights = {"dense": dense_weight, "bm25": bm25_weight}

    def retrieve(self, query: str, k: int, filters: Filters | None = None, mode: Mode | None = None) -> Retrieval:
        """The top-k passages for `query`, best first."""
        filters = filters or Filters()
        mode = mode or self.mode
        vector = self.embedder.embed([query])[0]
        pool = max(self.candidates, k * 3)
        rankings: dict[str, list[tuple[str, float]]] = {}
        if mode in ("hybrid", "dense"):
            hits = self.store.query(vector, pool, filters.chroma_where())
            rankings["dense"] = [(h.chunk_id, h.score) for h in hits]
        if mode in ("hybrid", "bm25"):
            hits = self.keyword.search(
                query, pool, source=filters.source,
                day_from=day_number(filters.published_from), day_to=day_number(filters.published_to),
            )
            rankings["bm25"] = [(h.chunk_id, h.score) for h in hits]
        fused: dict[str, float] = {}
        ranks: dict[str, dict[str, int]] = {}
        for name, ranking in rankings.items():
            weight = self.weights[name] if mode == "hybrid" else 1.0
            for rank, (chunk_id, _score) in enumerate(ranking, start=1):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (self.rrf_k + rank)
                ranks.setdefault(chunk_id, {})[name] = rank
        order = sorted(fused, key=lambda c: -fused[c])
        chunks = self.docs.get_chunks(order[: pool * 2])  # ids unknown to the docstore (mid-ingest) drop out
        passages: list[Passage] = []
        for chunk_id in order:
            chunk = chunks.get(chunk_id)
            if chunk is None or any(_overlaps(chunk.doc_id, chunk.start, chunk.end, p) for p in passages):
                continue
            passages.append(Passage(
                chunk_id, chunk.doc_id, chunk.title, chunk.source, chunk.published, chunk.text, chunk.start,
                chunk.end, fused[chunk_id], ranks[chunk_id],
            ))
            if len(passages) == k:
                break
        return Retrieval(passages, vector, query)


def _overlaps(doc_id: str, start: int, end: int, other: Passage) -> bool:
    """True when two chunks of the same article share more than half of the shorter one."""
    if doc_id != other.doc_id:
        return False
    shared = min(end, other.end) - max(start, other.start)
    return shared > 0.5 * min(end - start, other.end - other.start)
