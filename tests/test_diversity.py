"""Diversity in the fused list: near-identical chunks collapsed, at most QA_MAX_PER_ARTICLE passages of one
article ahead of the others, and the long-article flood of issue 22 answered through the HTTP app."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from qa.retrieval import Passage
from qa.retrieval.fusion import diversify, near_identical, shingles
from tests.conftest import make_settings


def _passage(doc_id: str, text: str, start: int = 0) -> Passage:
    return Passage(f"{doc_id}:{start}", doc_id, doc_id, "", None, text, start, start + len(text))


def test_at_most_n_per_article_ahead_and_the_rest_behind() -> None:
    ranked = [_passage("long", f"harbour note {i} about the quay and the ships", i * 100) for i in range(6)]
    ranked.insert(4, _passage("tokyo", "The Tokyo harbour master said 14 cranes were repaired in March."))
    ranked.append(_passage("osaka", "Osaka opened a second ferry terminal on Monday."))
    top = diversify(ranked, 5, max_per_article=2, overlap=0.8)
    assert [p.doc_id for p in top] == ["long", "long", "tokyo", "osaka", "long"]
    assert [p.doc_id for p in diversify(ranked, 5, max_per_article=0, overlap=0.8)] == ["long"] * 4 + ["tokyo"]
    only_one = [p for p in ranked if p.doc_id == "long"]
    assert len(diversify(only_one, 5, max_per_article=2, overlap=0.8)) == 5  # one article still fills k


def test_near_identical_chunks_collapse_and_different_figures_do_not() -> None:
    same = "harbour " * 40
    ranked = [_passage("a", same), _passage("a", same.strip() + " harbour", 500), _passage("b", same),
              _passage("c", "The port said 14 cranes were repaired in March after the storm hit the quay."),
              _passage("d", "The port said 15 cranes were repaired in April after the storm hit the quay.")]
    assert [p.doc_id for p in diversify(ranked, 5, max_per_article=0, overlap=0.8)] == ["a", "c", "d"]
    assert len(diversify(ranked, 5, max_per_article=0, overlap=0)) == 5  # 0: collapsing off
    assert near_identical(shingles("A b c d."), shingles("a B c d"), 0.8)
    assert not near_identical(shingles("one two"), frozenset(), 0.8)


def test_a_flooding_article_does_not_crowd_out_the_answer(tmp_path: Path) -> None:
    """Issue 22's flood: a long article of one repeated word (250 identical chunks, small chunks so it indexes in
    seconds) uploaded after a short one holding the answer; the dense index then returns only the long article's
    chunks (its HNSW graph is full of identical vectors), and before this change all k passages were its."""
    settings = make_settings(tmp_path / "data", chunk_size=32, chunk_overlap=8)
    tokyo = b"Tokyo cranes\n\nThe Tokyo harbour master said 14 cranes were repaired in March.\n"
    flood = ("Harbour notes\n\n" + " ".join(["harbour"] * 6000) + "\n").encode()
    with TestClient(create_app(settings)) as client:
        for name, body in (("tokyo.txt", tokyo), ("harbour-notes.txt", flood)):
            response = client.post("/documents", files={"files": (name, body)})
            assert response.status_code == 201, response.text
        body = client.post("/ask", json={"question": "How many cranes did the Tokyo harbour master say were "
                                                     "repaired?"}).json()
    assert not body["refused"] and "14 cranes" in body["answer"], body["answer"]
    assert [c["doc_id"] for c in body["citations"]] == ["tokyo"] and "[1]" in body["answer"]
    assert sum(p["doc_id"] == "harbour-notes" for p in body["passages"]) <= 3  # QA_MAX_PER_ARTICLE
