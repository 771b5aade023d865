"""The SQL store's per-article statements use an index: adding or deleting one article must not read a
whole table (their cost would grow with the store; see docs/benchmarks.md, issue 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.store.sqlite import SQLiteStore

PER_ARTICLE = [
    "SELECT text FROM documents WHERE doc_id=?",
    'SELECT id, start, "end" FROM chunks WHERE doc_id=?',
    "DELETE FROM documents WHERE doc_id=?",
    "DELETE FROM chunks WHERE doc_id=?",
    "DELETE FROM spans WHERE doc_id=?",
    "DELETE FROM pending WHERE doc_id=?",
    'SELECT start, "end", vector FROM spans WHERE kind=? AND doc_id=? AND start>=? AND "end"<=? ORDER BY start',
]


@pytest.mark.parametrize("statement", PER_ARTICLE)
def test_per_article_statement_uses_an_index(tmp_path: Path, statement: str) -> None:
    store = SQLiteStore(tmp_path / "docstore.sqlite")
    params = [None] * statement.count("?")
    plan = [row[-1] for row in store._conn().execute(f"EXPLAIN QUERY PLAN {statement}", params)]
    assert not any(step.startswith("SCAN") for step in plan), plan


def test_keyword_postings_are_read_by_term(tmp_path: Path) -> None:
    """The keyword search reads each query term's postings through the FTS5 index, never the whole vocabulary."""
    store = SQLiteStore(tmp_path / "docstore.sqlite")
    for statement in ("SELECT doc, term FROM chunk_terms_postings WHERE term = ?",
                      "SELECT term, doc FROM chunk_terms_df WHERE term IN (?, ?)"):
        plan = [row[-1] for row in store._conn().execute(f"EXPLAIN QUERY PLAN {statement}", [None] * 2
                                                          if "IN" in statement else [None])]
        assert all("INDEX" in step for step in plan), plan
