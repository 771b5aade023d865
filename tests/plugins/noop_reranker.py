"""A reranker that keeps the fused order and counts its calls: what adding a reranker takes is this module
and one line in qa.retrieval.RERANKERS; its options (`label`) come from QA_PART_OPTIONS["reranker:noop"]."""

from __future__ import annotations

from qa.config import Settings
from qa.retrieval import Passage


class NoopReranker:
    name = "noop"
    calls = 0

    def __init__(self, settings: Settings, label: str = "") -> None:
        self.label = label

    def rerank(self, query: str, passages: list[Passage]) -> list[Passage]:
        NoopReranker.calls += 1
        return passages
