"""Hybrid retrieval: rankers (dense, keyword) fused by weighted reciprocal rank, overlapping chunks of one
article dropped, the reranker applied, then diversified (near-identical chunks collapsed, at most
`max_per_article` passages of one article before every other article has had its turn) and cut to k."""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.embedding import Embedder
from qa.errors import BadRequest
from qa.retrieval import Passage, Ranker, Reranker, Retrieval
from qa.retrieval.filters import Filters
from qa.store import DocumentStore


class FusionRetriever:
    """Weighted RRF over the rankers; each contributes `candidates` (or 3k) chunks. Mode "hybrid" fuses all of
    them, a ranker's name uses that one alone (unweighted)."""

    def __init__(
        self, rankers: Sequence[tuple[Ranker, float]], docs: DocumentStore, embedder: Embedder, reranker: Reranker,
        *, mode: str = "hybrid", candidates: int = 30, rrf_k: int = 60, span_kind: str | None = None,
        max_per_article: int = 0, duplicate_overlap: float = 0.8,
    ) -> None:
        self.span_kind = span_kind
        self.rankers = list(rankers)
        self.mode = mode
        self.docs = docs
        self.embedder = embedder
        self.reranker = reranker
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.max_per_article = max_per_article
        self.duplicate_overlap = duplicate_overlap

    def retrieve(self, query: str, k: int, filters: Filters | None = None, mode: str | None = None) -> Retrieval:
        """The top-k passages for `query`, best first."""
        filters = filters or Filters()
        mode = mode or self.mode
        rankers = [(r, w) for r, w in self.rankers if mode == "hybrid" or r.name == mode]
        if not rankers:
            raise BadRequest(f"unknown retriever '{mode}'")
        vector = self.embedder.embed([query])[0]
        pool = max(self.candidates, k * 3)
        fused: dict[str, float] = {}
        ranks: dict[str, dict[str, int]] = {}
        weighted = len(rankers) > 1
        for ranker, weight in rankers:
            for rank, (chunk_id, _score) in enumerate(ranker.rank(query, vector, pool, filters), start=1):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + (weight if weighted else 1.0) / (self.rrf_k + rank)
                ranks.setdefault(chunk_id, {})[ranker.name] = rank
        order = sorted(fused, key=lambda c: -fused[c])
        chunks = self.docs.get_chunks(order[: pool * 2])  # ids unknown to the SQL store (mid-ingest) drop out
        passages: list[Passage] = []
        for chunk_id in order:
            chunk = chunks.get(chunk_id)
            if chunk is None or any(_overlaps(chunk.doc_id, chunk.start, chunk.end, p) for p in passages):
                continue
            passages.append(Passage(
                chunk.chunk_id, chunk.doc_id, chunk.title, chunk.source, chunk.published, chunk.text, chunk.start,
                chunk.end, fused[chunk_id], ranks[chunk_id],
            ))
        ranked = self.reranker.rerank(query, passages)
        passages = diversify(ranked, k, self.max_per_article, self.duplicate_overlap)
        if self.span_kind is not None:
            for passage in passages:
                passage.sentences = self.docs.spans_in(self.span_kind, passage.doc_id, passage.start, passage.end)
        return Retrieval(passages, vector, query, filters != Filters())


def _overlaps(doc_id: str, start: int, end: int, other: Passage) -> bool:
    """True when two chunks of the same article share more than half of the shorter one."""
    if doc_id != other.doc_id:
        return False
    shared = min(end, other.end) - max(start, other.start)
    return shared > 0.5 * min(end - start, other.end - other.start)


_WORD = re.compile(r"\w+")
SHINGLE_WORDS = 3


def shingles(text: str) -> frozenset[tuple[str, ...]]:
    """The 3-word shingles of a text, case-folded (a text shorter than that: its words)."""
    words = _WORD.findall(text.casefold())
    if len(words) < SHINGLE_WORDS:
        return frozenset((w,) for w in words)
    return frozenset(zip(words, words[1:], words[2:], strict=False))


def near_identical(a: frozenset[tuple[str, ...]], b: frozenset[tuple[str, ...]], overlap: float) -> bool:
    """True when at least `overlap` of the smaller text's shingles are in the other (repeated lines, a copy of
    the same story uploaded twice)."""
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    if not small:
        return not large
    return len(small & large) >= overlap * len(small)


def diversify(passages: list[Passage], k: int, max_per_article: int, overlap: float) -> list[Passage]:
    """The first k passages with near-identical ones dropped (overlap 0: none; the better-ranked copy stays) and at most
    `max_per_article` (0: no limit) from one article ahead of other articles' passages; an article's further
    passages are not dropped but follow the rest, so a corpus of one article still fills k. Scans only until
    k diverse passages are found, so a question costs a few dozen shingle sets at most."""
    kept: list[frozenset[tuple[str, ...]]] = []
    ahead: list[Passage] = []
    behind: list[Passage] = []
    per_article: dict[str, int] = {}
    for passage in passages:
        if len(ahead) >= k:
            break
        if overlap:
            grams = shingles(passage.text)
            if any(near_identical(grams, other, overlap) for other in kept):
                continue
            kept.append(grams)
        taken = per_article.get(passage.doc_id, 0)
        per_article[passage.doc_id] = taken + 1
        (behind if max_per_article and taken >= max_per_article else ahead).append(passage)
    return (ahead + behind)[:k]
