"""A data folder written by the release before the SQL layer moved to SQLAlchemy + Alembic (tests/fixtures/
legacy-sqlite, made by tests/fixtures/make_legacy.py) is upgraded in place, then read and written through the new
layer. The PostgreSQL twin of this test is in tests/test_postgres.py (it needs the server)."""

from __future__ import annotations

import shutil
from pathlib import Path

from qa.conversations import ConversationStore, Turn
from qa.conversations.feedback import Feedback, FeedbackStore
from qa.db import Database
from qa.db.database import head_revision
from qa.db.schema import CONVERSATIONS, JOBS, SHARED, VALIDATORS
from qa.jobs import JobStore
from qa.service import databases
from qa.sources.article import Article
from qa.sources.web import SqlValidatorCache
from qa.store import AlsoAt, ChunkRow, Copy
from qa.store.documents import SqlStore
from qa.store.keys import CLIENT_KEY, SharedKeys
from qa.store.layout import DataLayout
from tests.conftest import make_settings
from tests.support import ROOT, sql_rows

LEGACY = ROOT / "tests" / "fixtures" / "legacy-sqlite"


def check_documents(docs: SqlStore) -> None:
    """What the legacy fixture holds reads back, and the store takes writes (shared with the PostgreSQL test)."""
    assert docs.count() == (2, 2)
    assert [d.doc_id for d in docs.list_documents()] == ["bridge", "harbour"]
    harbour = docs.get_document("harbour")
    assert harbour is not None and "eleven ships" in harbour.text
    assert harbour.also_at == [AlsoAt("https://example.org/harbour", "Wire", "2017-05-02")]
    assert set(docs.signature_rows()) == {"bridge", "harbour"} and docs.spans_in("sentence", "harbour", 0, 10_000)
    assert [c.split(":")[0] for c, _ in docs.keyword_search("ships waiting harbour", 3)] == ["harbour"]
    generation, seq = docs.keyword_head()
    text = "The ferry to Quellstadt was cancelled on Tuesday. Twelve passengers waited."
    docs.put(Article("ferry", "Ferry", text), "f", [ChunkRow("ferry:0", "ferry", 0, 0, len(text))], {}, "m", b"sig")
    assert docs.delete("bridge") and not docs.delete("bridge")
    assert docs.count() == (2, 2) and docs.keyword_head() == (generation, seq + 2)
    assert [c for c, _ in docs.keyword_search("ferry passengers", 3)] == ["ferry:0"]
    assert docs.add_copies([Copy("ferry", "https://example.org/ferry", None, None, "web:x")]) == 1
    assert docs.copies_of(["ferry", "harbour"])["ferry"] == [AlsoAt("https://example.org/ferry", None, None)]


def check_roles(found: dict[str, Database], key: bytes | None, validators: object) -> None:
    """The legacy fixture's conversation, rating, job, key and validators read back; each role takes writes."""
    conversations = ConversationStore(found[CONVERSATIONS], 5)
    [listed] = conversations.list_for("alice")
    assert listed.title == "How many ships waited?" and listed.created.endswith("Z")
    conversations.add(listed.id, Turn("And then?", "And then?", "Nothing."), "alice")
    assert [t.question for t in conversations.history(listed.id)] == ["How many ships waited?", "And then?"]
    assert [t.answer_text for t in conversations.get(listed.id, "alice").turns] == ["Eleven.", "Nothing."]
    ratings = FeedbackStore(found[CONVERSATIONS])
    assert [(r.rating, r.evidence) for r in ratings.all()] == [("up", ["eleven ships were waiting"])]
    assert ratings.add(Feedback("down", "Why?", "Because.", client="bob")) > ratings.all()[0].id
    jobs = JobStore(found[JOBS])
    started = jobs.create("ingest-url")
    assert jobs.get(started).status == "running"  # type: ignore[union-attr]
    assert sorted(r[0] for r in sql_rows(ConversationStore(found[JOBS], 1), "SELECT status FROM jobs")) == [
        "done", "running"]
    kept = SharedKeys(found[SHARED]).get(CLIENT_KEY)
    assert len(kept) == 32 and (key is None or kept == key)  # tokens issued before the upgrade stay valid
    cache = SqlValidatorCache(found[VALIDATORS])
    assert cache.get("https://example.org/harbour") == validators
    cache.put("https://example.org/ferry", '"e2"', None, "ferry")
    assert cache.get("https://example.org/ferry") == ('"e2"', None, "ferry", None)


def test_a_data_folder_of_the_previous_release_upgrades_in_place(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(LEGACY, data)
    settings = make_settings(data)
    found = databases(settings, DataLayout(data), upgrade=False)
    assert {d.revision() for d in found.values()} == {None}  # never migrated by Alembic
    applied = {database.engine.url.database: database.upgrade() for database in dict.fromkeys(found.values())}
    assert len(applied) == 4 and all(revisions == ["0001", "0002"] for revisions in applied.values()), applied
    reopened = databases(settings, DataLayout(data))
    assert {d.revision() for d in reopened.values()} == {head_revision()}
    assert all(d.upgrade() == [] for d in reopened.values())  # nothing left to do
    docs = SqlStore(reopened["documents"], data / "keyword-index")
    check_documents(docs)
    check_roles(reopened, (LEGACY / "client.key").read_bytes(), ('"e1"', None, "harbour", None))
    assert sql_rows(docs, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
