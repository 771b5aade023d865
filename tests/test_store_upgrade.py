"""A data folder written by the release before the SQL layer moved to SQLAlchemy + Alembic (tests/fixtures/
legacy-sqlite, made by tests/fixtures/make_legacy.py) is upgraded in place, then read and written through the new
layer. The PostgreSQL twin of this test is in tests/test_postgres.py (it needs the server)."""

from __future__ import annotations

import shutil
from pathlib import Path

from qa.db.database import head_revision
from qa.service import databases
from qa.sources.article import Article
from qa.store import ChunkRow
from qa.store.documents import SqlStore
from qa.store.layout import DataLayout
from tests.conftest import make_settings
from tests.support import ROOT, sql_rows

LEGACY = ROOT / "tests" / "fixtures" / "legacy-sqlite"


def check_documents(docs: SqlStore) -> None:
    """What the legacy fixture holds reads back, and the store takes writes (shared with the PostgreSQL test)."""
    assert docs.count() == (2, 2)
    assert [d["doc_id"] for d in docs.list_documents()] == ["bridge", "harbour"]
    harbour = docs.get_document("harbour")
    assert harbour is not None and "eleven ships" in harbour["text"]
    assert harbour["also_at"] == [{"url": "https://example.org/harbour", "source": "Wire", "published": "2017-05-02"}]
    assert set(docs.signature_rows()) == {"bridge", "harbour"} and docs.spans_in("sentence", "harbour", 0, 10_000)
    assert [c.split(":")[0] for c, _ in docs.keyword_search("ships waiting harbour", 3)] == ["harbour"]
    generation, seq = docs.keyword_head()
    text = "The ferry to Quellstadt was cancelled on Tuesday. Twelve passengers waited."
    docs.put(Article("ferry", "Ferry", text), "f", [ChunkRow("ferry:0", "ferry", 0, 0, len(text))], {}, "m", b"sig")
    assert docs.delete("bridge") and not docs.delete("bridge")
    assert docs.count() == (2, 2) and docs.keyword_head() == (generation, seq + 2)
    assert [c for c, _ in docs.keyword_search("ferry passengers", 3)] == ["ferry:0"]
    assert docs.add_copies([("ferry", "https://example.org/ferry", None, None, "web:x")]) == 1
    assert docs.copies_of(["ferry", "harbour"])["ferry"][0]["url"] == "https://example.org/ferry"


def test_a_data_folder_of_the_previous_release_upgrades_in_place(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(LEGACY, data)
    settings = make_settings(data)
    found = databases(settings, DataLayout(data), upgrade=False)
    assert {d.revision() for d in found.values()} == {None}  # never migrated by Alembic
    applied = {group: database.upgrade() for group, database in found.items()}
    assert all(revisions == ["0001"] for revisions in applied.values()), applied
    reopened = databases(settings, DataLayout(data))
    assert {d.revision() for d in reopened.values()} == {head_revision()}
    assert all(d.upgrade() == [] for d in reopened.values())  # nothing left to do
    docs = SqlStore(reopened["documents"], data / "keyword-index")
    check_documents(docs)
    assert sql_rows(docs, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
