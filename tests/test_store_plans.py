"""The SQL store's per-article statements use an index: adding or deleting one article must not read a
whole table (their cost would grow with the store; see docs/benchmarks.md, issue 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.store.documents import sqlite_store
from tests.support import sql_rows

PER_ARTICLE = [
    "SELECT text FROM documents WHERE doc_id=?",
    'SELECT id, start, "end" FROM chunks WHERE doc_id=?',
    "DELETE FROM documents WHERE doc_id=?",
    "DELETE FROM chunks WHERE doc_id=?",
    "DELETE FROM spans WHERE doc_id=?",
    "DELETE FROM pending WHERE doc_id=?",
    'SELECT start, "end", vector FROM spans WHERE kind=? AND doc_id=? AND start>=? AND "end"<=? ORDER BY start',
    # the keyword index's change feed: what changed since a sequence number, and those articles' chunks
    "SELECT doc_id, seq FROM keyword_changes WHERE seq > ?",
    'SELECT c.chunk_id, c.doc_id, c.source_key, c.day, substr(d.text, c.start + 1, c."end" - c.start)'
    " FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE c.doc_id IN (?, ?)",
]


@pytest.mark.parametrize("statement", PER_ARTICLE)
def test_per_article_statement_uses_an_index(tmp_path: Path, statement: str) -> None:
    store = sqlite_store(tmp_path / "docstore.sqlite")
    params = tuple([None] * statement.count("?"))
    plan = [row[-1] for row in sql_rows(store, f"EXPLAIN QUERY PLAN {statement}", params)]
    assert not any(step.startswith("SCAN") for step in plan), plan
