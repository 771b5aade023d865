"""The reranker slot: reorders fused passages before they are cut to k. The default does nothing.

A reranker's factory (a class or function named in qa.retrieval.RERANKERS) is called with the Settings and its
own options from QA_PART_OPTIONS["reranker:<name>"] as keyword arguments (see docs/extending.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qa.config import Settings
    from qa.retrieval import Passage


class NoRerank:
    """Keeps the fused order (there is no offline reranking model to ship; see docs/eval.md)."""

    name = "none"

    def __init__(self, settings: Settings) -> None:
        """Built like every reranker, from the settings (and its QA_PART_OPTIONS: it takes none)."""

    def rerank(self, query: str, passages: list[Passage]) -> list[Passage]:
        return passages
