"""The reranker slot: reorders fused passages before they are cut to k. The default does nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qa.retrieval import Passage


class NoRerank:
    """Keeps the fused order (there is no offline reranking model to ship; see docs/eval.md)."""

    name = "none"

    def rerank(self, query: str, passages: list[Passage]) -> list[Passage]:
        return passages
