"""Retrieval quality on the hand-written questions (evidence containment), for dense, BM25 and hybrid."""

from __future__ import annotations

import json
import re

import pytest

from qa.service import Service
from tests.support import ROOT

QUESTIONS = [json.loads(line) for line in (ROOT / "eval/data/questions.jsonl").read_text("utf-8").splitlines()]
ANSWERABLE = [q for q in QUESTIONS if q["answerable"]]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def hit_rank(pipeline: Service, item: dict, mode: str, k: int = 5) -> int | None:
    passages = pipeline.retriever.retrieve(item["question"], k, mode=mode).passages
    for rank, passage in enumerate(passages, start=1):
        if any(_norm(quote) in _norm(passage.text) for quote in item["evidence"]):
            return rank
    return None


def test_tomahawk_question_top3(pipeline: Service) -> None:
    result = pipeline.ask("How many Tomahawk missiles did the US fire at the Shayrat Airbase?", k=5).model_dump()
    assert any("at least 59 Tomahawk" in p["text"] for p in result["passages"][:3])


@pytest.mark.parametrize("mode,floor", [("hybrid", 0.9), ("dense", 0.8), ("bm25", 0.8)])
def test_hit_at_5(pipeline: Service, mode: str, floor: float) -> None:
    assert len(ANSWERABLE) >= 20
    ranks = [hit_rank(pipeline, item, mode) for item in ANSWERABLE]
    hit1 = sum(r == 1 for r in ranks) / len(ranks)
    hit5 = sum(r is not None for r in ranks) / len(ranks)
    mrr = sum(1 / r for r in ranks if r) / len(ranks)
    print(f"\n{mode}: hit@1={hit1:.3f} hit@5={hit5:.3f} MRR={mrr:.3f} over {len(ranks)} questions")
    assert hit5 >= floor
