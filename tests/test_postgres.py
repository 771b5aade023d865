"""The PostgreSQL store (QA_DATABASE_URL) against a real PostgreSQL started here (Debian's package, one server
for the session, a database per test copied from a migrated template): the same store tests as the SQLite store
(parametrized over both: documents, keyword ranking, copies, crash repair, conversations with owners, jobs,
ingest progress, the client-token key), migrations and the writer lock; then three stateless `qa serve` replicas
on PostgreSQL + a `chroma run` server, each with its own empty data folder: ingest, ask, upload, list, delete,
a conversation and an ingest job across them; two replicas writing one document id at once; `kill -9` mid
ingest; PostgreSQL stopped and restarted under them (last: it stops the session's server)."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pytest

from api.clients import ClientTokens
from qa.conversations import ConversationStore, Limits, Turn
from qa.conversations.feedback import Feedback
from qa.db import Database
from qa.db.schema import EVERY_GROUP
from qa.errors import NotFound, StoreUnavailable
from qa.retrieval.filters import Filters
from qa.service import Service, build_service
from qa.store import AlsoAt, Copy
from tests.conftest import make_settings
from tests.reliability_support import assert_consistent, write_corpus
from tests.support import (
    ROOT,
    PostgresServer,
    api_server,
    chroma_server,
    postgres_available,
    qa_env,
    sql_rows,
    wait_until,
)
from tests.web_server import WebServer

pytestmark = [pytest.mark.server, pytest.mark.timeout(600),
              pytest.mark.skipif(not postgres_available(), reason="PostgreSQL server binaries are not installed")]

MISSILES = "How many Tomahawk missiles did the US fire at the Shayrat Airbase?"
MISSILES_DOC = "000_9a3c7f577db017be"
EVAL_DATA = ROOT / "eval" / "data"
TEMPLATE = "qa_template"
_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One server for the session, with a template database already migrated (copied per test)."""
    server = PostgresServer()
    server.start()
    try:
        Database(server.create_database(TEMPLATE), EVERY_GROUP).close()  # a template may have no open connections
        yield server
    finally:
        server.close()


def fresh_database(postgres: PostgresServer, template: str = TEMPLATE) -> str:
    return postgres.create_database(f"qa_test_{next(_databases)}", template)


@pytest.fixture(scope="module")
def seeded_pair(pipeline: Service, tmp_path_factory: pytest.TempPathFactory,
                postgres: PostgresServer) -> dict[str, Service]:
    """The seeds indexed in each store (read-only): the session's SQLite pipeline, and one on PostgreSQL."""
    data_dir = tmp_path_factory.mktemp("seeded-postgres") / "data"
    service = build_service(make_settings(data_dir, database_url=fresh_database(postgres)))
    report = service.ingest_paths([ROOT / "seeds"])
    assert len(report.added) == 5 and not report.failed
    assert service.fill is not None and service.fill.run() > 0  # the sentence vectors, as seeded_dir's
    return {"sqlite": pipeline, "postgres": service}


@pytest.fixture(params=["sqlite", "postgres"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Service]:
    """A new empty store of each kind: call (with setting overrides) for a service on it; call again for a
    second process's view of the same stores. Both share one data folder, for the embedded Chroma (the
    replicas below have folders of their own and a Chroma server); on PostgreSQL nothing else may land there."""
    url = fresh_database(request.getfixturevalue("postgres")) if request.param == "postgres" else None

    def make(**overrides: object) -> Service:
        if url:
            overrides["database_url"] = url
        return build_service(make_settings(tmp_path / "data", **overrides))

    return make


def _questions() -> list[str]:
    rows = [json.loads(line) for path in sorted(EVAL_DATA.glob("*.jsonl")) for line in path.read_text().splitlines()
            if line.strip()]
    return [q for row in rows for q in ([row["question"]] if "question" in row else
                                        [t["question"] for t in row["turns"]])]


# ---- the store, against both implementations -------------------------------------------------------------


def test_keyword_search_ranks_exactly_as_the_embedded_store(seeded_pair: dict[str, Service]) -> None:
    sqlite, postgres = seeded_pair["sqlite"].docs, seeded_pair["postgres"].docs
    questions = _questions()
    assert len(questions) >= 50
    for question in [*questions, "Syria", "the of and", "Trump's", "O'Brien \\ 'quoted' | & ! :*"]:
        expected, got = sqlite.keyword_search(question, 10), postgres.keyword_search(question, 10)
        assert [c for c, _ in got] == [c for c, _ in expected], question
        assert np.allclose([s for _, s in got], [s for _, s in expected], rtol=1e-9), question
    filters = [Filters(source="BBC"), Filters(published_from=date(2017, 4, 7)),
               Filters(published_to=date(2017, 4, 30), source="reuters")]
    for f in filters:
        where = f.compiled()
        for question in questions[:10]:
            expected, got = sqlite.keyword_search(question, 10, where), postgres.keyword_search(question, 10, where)
            assert [c for c, _ in got] == [c for c, _ in expected], (question, f)
            assert np.allclose([s for _, s in got], [s for _, s in expected], rtol=1e-9), question
    assert postgres.keyword_search("", 10) == [] and postgres.keyword_search("zzzyqx", 10) == []


def test_same_documents_chunks_and_reads(seeded_pair: dict[str, Service]) -> None:
    sqlite, postgres = seeded_pair["sqlite"].docs, seeded_pair["postgres"].docs
    assert postgres.count() == sqlite.count()

    def without_time(rows: list) -> list[dict]:
        return [{k: v for k, v in asdict(d).items() if k != "indexed_at"} for d in rows]

    assert without_time(postgres.list_documents()) == without_time(sqlite.list_documents())
    assert without_time([postgres.get_document(MISSILES_DOC)]) == without_time([sqlite.get_document(MISSILES_DOC)])
    ids = sorted(sqlite.chunk_ids(MISSILES_DOC))
    assert sorted(postgres.chunk_ids(MISSILES_DOC)) == ids
    assert postgres.get_chunks(ids) == sqlite.get_chunks(ids)
    spans = sqlite.spans_in("sentence", MISSILES_DOC, 0, 10_000)
    got = postgres.spans_in("sentence", MISSILES_DOC, 0, 10_000)
    assert [(s.start, s.end) for s in got] == [(s.start, s.end) for s in spans] and spans
    assert all(a.vector.size == 384 and np.allclose(a.vector, b.vector, atol=2e-3)  # type: ignore[union-attr]
               for a, b in zip(got, spans, strict=True))
    assert set(postgres.signature_rows()) == set(sqlite.signature_rows()) == {d.doc_id for d in
                                                                              sqlite.list_documents()}
    assert postgres.signatures() == sqlite.signatures()
    answer = seeded_pair["postgres"].ask(MISSILES)
    assert not answer.refused and "59" in answer.answer and answer.citations[0].doc_id == MISSILES_DOC


def _upload(name: str, text: str) -> list[tuple[str, bytes]]:
    return [(name, text.encode())]


ARTICLE = ("Title: Harbour {n}\nSource: Gazette\nDate: 2017-05-0{n}\n\nThe harbour of Quellstadt {n} reopened on "
           "Monday after the storm. Officials said {fact} ships were waiting outside. The mayor thanked the crews.")


def _harbours(service: Service, facts: dict[int, object]) -> None:
    report = service.ingest_files([f for n, fact in facts.items()
                                   for f in _upload(f"harbour{n}.txt", ARTICLE.format(n=n, fact=fact))])
    assert not report.failed, report.failed


def test_put_replace_delete_copies_keep_counts_and_index_in_step(fresh: Callable[..., Service]) -> None:
    service = fresh()
    _harbours(service, {1: 11, 2: 12, 3: 13})
    docs, chunks = service.docs.count()
    assert docs == 3 and chunks >= 3
    assert_consistent(service)
    assert len(service.docs.keyword_search("harbour Quellstadt ships", 5)) == 3
    copy = Copy("harbour2", "https://example.org/harbour", "Courier", "2017-05-03", "courier-harbour")
    assert service.docs.add_copies([copy, Copy("gone", "https://x.org/", None, None, "x")]) == 1
    assert service.docs.copies_of(["harbour2", "harbour1"]) == {
        "harbour2": [AlsoAt(copy.url, "Courier", "2017-05-03")]}

    old, rows = service.docs.chunk_ids("harbour2"), service.docs.signature_rows()
    _harbours(service, {2: "sevenhundred"})
    assert not old & service.docs.chunk_ids("harbour2")
    assert service.docs.count()[0] == 3
    assert service.docs.signature_rows()["harbour2"] != rows["harbour2"]  # a rewrite is seen as a change
    assert service.docs.signature_rows()["harbour1"] == rows["harbour1"]
    assert service.docs.get_document("harbour2").also_at[0].url == copy.url  # copies survive a replace
    assert {c for c, _ in service.docs.keyword_search("sevenhundred", 5)} == service.docs.chunk_ids("harbour2")
    assert_consistent(service)

    other = fresh()  # another process on the same store sees the same
    assert other.docs.count() == service.docs.count()
    other.delete("harbour2")
    assert service.docs.count()[0] == 2 and service.docs.get_document("harbour2") is None
    assert service.docs.copies_of(["harbour2"]) == {} and "harbour2" not in service.docs.signature_rows()
    assert not any(c.startswith("harbour2:") for c, _ in service.docs.keyword_search("harbour", 10))
    assert_consistent(service)
    if service.docs.db.is_postgres:  # no keyword index is kept in PostgreSQL any more, only its change feed
        columns = {r[0] for r in sql_rows(service.docs, "SELECT column_name FROM information_schema.columns"
                                                        " WHERE table_name='chunks'")}
        tables = {r[0] for r in sql_rows(service.docs, "SELECT tablename FROM pg_tables WHERE schemaname='public'")}
        assert "terms" not in columns and "term_df" not in tables and "keyword_changes" in tables
    service.docs.reset()
    assert service.docs.count() == (0, 0) and service.docs.keyword_search("harbour", 5) == []


def test_span_vectors_filled_after_ingest_never_stale(fresh: Callable[..., Service]) -> None:
    """fill_span_vectors, on both stores: spans stored without vectors (lazy/background) get each sentence's own
    vector, float16 as put() stores them; a re-ingest and a delete that land while a batch is being embedded get
    nothing written (their rows changed or went), and the next fill stores the new version's spans; another
    process holding the fill gets None."""
    service = fresh(sentence_vectors="lazy")
    _harbours(service, {1: 1, 2: 2, 3: 3})
    docs, embed = service.docs, service.indexer.embedder.embed

    def vectors(doc_id: str) -> dict[tuple[int, int], np.ndarray]:
        return {(s.start, s.end): s.vector for s in docs.spans_in("sentence", doc_id, 0, 10_000)}

    assert docs.spans_waiting("sentence") == sum(len(vectors(f"harbour{n}")) for n in (1, 2, 3)) > 0
    old_text = docs.get_document("harbour2").text

    def racing(texts: list[str]) -> np.ndarray:
        made = embed(texts)
        _harbours(service, {2: 9})  # the same spans ("2 ships" -> "9 ships"): a vector of the old text is stale
        service.delete("harbour3")
        return made

    assert docs.fill_span_vectors("sentence", racing, 100) == len(vectors("harbour1"))
    assert all(v.size == 384 for v in vectors("harbour1").values())
    assert all(v.size == 0 for v in vectors("harbour2").values()) and vectors("harbour3") == {}
    assert docs.spans_waiting("sentence") == len(vectors("harbour2"))
    assert docs.get_document("harbour2").text != old_text
    from qa.store.locks import fill_turn

    with fill_turn(docs.db) as mine:  # another process filling: this one gets None
        assert mine and fresh().docs.fill_span_vectors("sentence", embed, 100) is None
    assert docs.fill_span_vectors("sentence", embed, 1) == 1  # small batches
    assert docs.fill_span_vectors("sentence", embed, 100) == len(vectors("harbour2")) - 1
    assert docs.fill_span_vectors("sentence", embed, 100) == 0 and docs.spans_waiting("sentence") == 0
    text = docs.get_document("harbour2").text
    for (start, end), vector in vectors("harbour2").items():
        np.testing.assert_array_equal(vector, embed([text[start:end]])[0].astype(np.float16).astype(np.float32))


def test_crash_between_chroma_delete_and_sql_commit_is_repaired(fresh: Callable[..., Service]) -> None:
    """The crash window of tests/test_crash.py, on both stores: Chroma lost the vectors of an article being
    replaced (harbour2, a stray new vector written) and of one being deleted (harbour3)."""
    service = fresh()
    _harbours(service, {1: 1, 2: 2, 3: 3})
    before = assert_consistent(service)
    for doc_id in ("harbour2", "harbour3"):
        service.docs.mark_pending(doc_id)
        service.indexer.store.delete_doc(doc_id)
    vector = np.ones((1, 384), dtype=np.float32) / np.sqrt(384)
    service.indexer.store.upsert(["harbour2:0123456789:0"], vector, [{"doc_id": "harbour2", "idx": 0}])
    restarted = fresh()
    assert sorted(restarted.docs.pending()) == ["harbour2", "harbour3"]
    restarted.startup()
    after = assert_consistent(restarted)
    assert set(after.chroma_chunks) == set(before.chroma_chunks)


def test_close_releases_the_database_pool_and_the_embedder_threads(fresh: Callable[..., Service]) -> None:
    """A service that is closed (the HTTP app's shutdown) leaves no pool connections or worker threads behind."""
    import threading

    service = fresh()
    service.indexer.embedder.embed(["one text", "another text", "a third one"])  # starts the worker threads
    assert any(t.name.startswith("embed") for t in threading.enumerate())
    service.close()
    if service.settings.database_url:  # PostgreSQL: its pools are closed, so its connections are gone
        import psycopg

        with psycopg.connect(service.settings.database_url.get_secret_value()) as conn:
            assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                " AND pid <> pg_backend_pid()").fetchone()[0] == 0
    assert service.indexer.embedder.embed(["still answers"]).shape == (1, 384)  # in the caller's thread now


def test_conversations_jobs_progress_and_token_key_are_shared(fresh: Callable[..., Service]) -> None:
    """What a second process on the same stores must see of the first's: conversations (owners, reopen,
    rename, delete), feedback, jobs, the running ingest's progress, the client-token key."""
    a, b = fresh(history_turns=2), fresh(history_turns=2)
    # conversations: ids issued by the store, owned by the client that started them
    first = a.conversations.resolve_id(None, "alice")
    a.conversations.add(first, Turn("Who did  Trump\nfire?", "Who did Trump fire?", "Comey."), "alice")
    assert b.conversations.resolve_id(first, "alice") == first
    for conversation_id, client in ((first, "bob"), ("no-such-id", "alice")):
        with pytest.raises(NotFound, match="no such conversation"):
            b.conversations.resolve_id(conversation_id, client)
    for n in range(3):
        b.conversations.add(first, Turn(f"q{n}", f"s{n}", f"a{n}"), "alice")
    assert [t.question for t in a.conversations.history(first)] == ["q1", "q2"]  # bounded to history_turns
    second = b.conversations.resolve_id(None, "alice")
    b.conversations.add(second, Turn("Later", "Later", "x"), "alice")
    listed = a.conversations.list_for("alice")
    assert [(c.id, c.title) for c in listed] == [(second, "Later"), (first, "Who did Trump fire?")]
    assert listed[0].created >= listed[1].created and a.conversations.list_for("bob") == []
    b.conversations.add(second, Turn("Again", "Again", "y", json.dumps({"answer": "y", "passages": []})), "alice")
    reopened = a.conversations.get(second, "alice")
    assert [(t.question, t.answer) for t in reopened.turns] == [("Later", None),
                                                                         ("Again", {"answer": "y", "passages": []})]
    assert b.conversations.rename(second, "alice", "  Renamed\n ").title == "Renamed"
    assert a.conversations.list_for("alice")[0].title == "Renamed"
    for call in (lambda: a.conversations.get(second, "bob"), lambda: a.conversations.delete(second, "bob")):
        with pytest.raises(NotFound):
            call()
    b.conversations.delete(second, "alice")
    with pytest.raises(NotFound):
        a.conversations.resolve_id(second, "alice")
    assert [c.id for c in a.conversations.list_for("alice")] == [first]
    # retention: a conversation idle for 3 days is swept by a store keeping them 2 days, a live one stays
    live = b.conversations.resolve_id(None, "bob")
    b.conversations.add(live, Turn("Now", "Now", "z"), "bob")
    kept = Limits(retention_days=2)
    assert isinstance(a.conversations, ConversationStore)
    with a.conversations.db.write() as conn:
        if a.conversations.db.is_postgres:
            for table, column in (("turns", "conversation_id"), ("conversations", "id")):
                conn.exec_driver_sql(f"UPDATE {table} SET created = now() - interval '3 days' WHERE {column}=%s",
                                     (first,))
        else:
            conn.exec_driver_sql("UPDATE turns SET created = datetime('now', '-3 days') WHERE conversation_id=?",
                                 (first,))
            conn.exec_driver_sql("UPDATE conversations SET created = '2000-01-01T00:00:00.000Z' WHERE id=?", (first,))
    assert ConversationStore(a.conversations.db, 2, limits=kept).sweep() == 1
    assert a.conversations.list_for("alice") == [] and [c.id for c in a.conversations.list_for("bob")] == [live]

    # readers' feedback: given through one, exported from the other
    a.feedback.add(Feedback("up", "Who did Trump fire?", "Comey.", conversation_id=first, client="alice",
                            evidence=("fired FBI Director James Comey",), doc_ids=("d1",)))
    [rating] = b.feedback.all()
    assert (rating.rating, rating.question, rating.evidence, rating.refused) == (
        "up", "Who did Trump fire?", ["fired FBI Director James Comey"], False)

    # jobs: started by one process, polled through the other
    release = threading.Event()

    def work(update: Callable[[int, int | None], None]) -> dict:
        update(1, 2)
        assert release.wait(30)
        return {"added": ["x"]}

    job_id = a.jobs.create("ingest-url")
    thread = a.jobs.run(job_id, work, str)
    running = wait_until(lambda: (j := b.jobs.get(job_id)) and j.progress.done == 1 and j, 10,
                         "ingest progress on the other replica")
    assert running.status == "running" and (running.progress.done, running.progress.total) == (1, 2)
    release.set()
    thread.join(30)
    assert b.jobs.get(job_id).status == "done" and b.jobs.get(job_id).report == {"added": ["x"]}
    failing = b.jobs.create("ingest-url")
    b.jobs.run(failing, lambda _update: 1 / 0, lambda exc: "it failed").join(30)
    assert a.jobs.get(failing).status == "failed" and a.jobs.get(failing).error == "it failed"
    assert a.jobs.get("nope") is None

    # the running ingest's progress, shown by the other's /health
    assert b.health().ingest is None
    with a.indexer._writer():
        a.indexer.progress.update("harbour9", 3, 10, force=True)
        shown = b.health().ingest
        assert shown is not None and (shown.document, shown.done, shown.total) == ("harbour9", 3, 10)
    assert b.health().ingest is None

    # the client-token key: a token one process issued is valid at the other
    key = a.client_key()
    assert len(key) == 32 and b.client_key() == key
    assert ClientTokens(b.client_key()).valid(ClientTokens(key).issue())
    if a.settings.database_url:  # all of it lives in the database; the data folder has only rebuildable caches
        assert sorted(p.name for p in a.settings.data_dir.iterdir()) == ["chroma", "keyword-index-pg"]


# ---- migrations and the writer lock ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_replaced_turn_drops_the_later_ones_in_both_stores(kind: str, tmp_path: Path,
                                                              request: pytest.FixtureRequest) -> None:
    """An edited question (issue 23): the turn at a position and every later one give way to the new turn, in
    one transaction; the context for it is the turns before; replacing the first retitles the conversation."""
    with ExitStack() as stack:
        if kind == "postgres":
            database = Database(fresh_database(request.getfixturevalue("postgres")), EVERY_GROUP)
        else:
            database = Database(f"sqlite:///{tmp_path / 'c.sqlite'}", frozenset({"conversations"}))
        stack.callback(database.close)
        store = ConversationStore(database, max_turns=2, kept_turns=10)
        cid = store.resolve_id(None, "alice")
        for n in range(4):
            store.add(cid, Turn(f"q{n}", f"s{n}", f"a{n}", title="What q is about" if n == 0 else None), "alice")
        assert store.list_for("alice")[0].title == "What q is about"
        assert [t.question for t in store.history(cid)] == ["q2", "q3"]
        assert [t.question for t in store.history(cid, 3)] == ["q1", "q2"]  # the last max_turns before turn 3
        assert store.history(cid, 0) == []
        store.replace(cid, 1, Turn("e1", "se1", "ea1"), "alice")
        store.add(cid, Turn("q5", "s5", "a5"), "alice")
        assert [t.question for t in store.get(cid, "alice").turns] == ["q0", "e1", "q5"]
        for position, client, error in ((3, "alice", "no turn 3"), (-1, "alice", "no turn -1"),
                                        (0, "bob", "no such conversation")):
            with pytest.raises(NotFound, match=error):
                store.replace(cid, position, Turn("x", "x", "x"), client)
        assert [t.question for t in store.get(cid, "alice").turns] == ["q0", "e1", "q5"]  # unchanged
        store.replace(cid, 0, Turn("e0", "se0", "ea0", title="A new topic"), "alice")
        kept = store.get(cid, "alice")
        assert kept.title == "A new topic" and [t.question for t in kept.turns] == ["e0"]


def restore_legacy(postgres: PostgresServer) -> str:
    """A new database holding tests/fixtures/legacy-postgres.sql: what the release before Alembic made."""
    from tests.support import PG_BIN

    url = fresh_database(postgres, "template0")
    subprocess.run([str(PG_BIN / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f",
                    str(ROOT / "tests" / "fixtures" / "legacy-postgres.sql")], check=True, capture_output=True)
    return url


def test_a_database_of_the_previous_release_upgrades_in_place_once_and_a_newer_one_is_refused(
        postgres: PostgresServer) -> None:
    """The pg_dump of a database made by the release before Alembic, upgraded while that release still has
    it open, by four processes starting at once (one migrates); then read and written through the new layer."""
    import psycopg

    from qa.db.database import head_revision
    from qa.store.documents import SqlStore
    from tests.test_store_upgrade import check_documents, check_roles

    url = restore_legacy(postgres)
    applied: list[list[str]] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            database = Database(url, EVERY_GROUP, upgrade=False)
            applied.append(database.upgrade())
            database.close()
        except BaseException as exc:
            errors.append(exc)

    with psycopg.connect(url) as old:  # the previous release, still running
        assert old.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 4
        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and sorted(applied) == [[], [], [], ["0001", "0002"]]  # one process migrated
        assert old.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 1
    database = Database(url, EVERY_GROUP)
    assert database.revision() == head_revision()
    check_documents(SqlStore(database))
    check_roles(dict.fromkeys(EVERY_GROUP, database), None, None)
    from typer.testing import CliRunner

    from qa.cli import app

    result = CliRunner().invoke(app, ["db", "upgrade"], env={"QA_DATABASE_URL": url})
    assert result.exit_code == 0 and "already up to date" in result.output, result.output
    with database.write() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreUnavailable, match="newer than this release"):
        Database(url, EVERY_GROUP)
    result = CliRunner().invoke(app, ["db", "upgrade"], env={"QA_DATABASE_URL": url})
    assert result.exit_code == 1 and "newer than this release" in result.output
    database.close()


HOLDER = """
import sys
from qa.db import Database
from qa.db.schema import EVERY_GROUP
from qa.indexing.progress import IngestProgress
from qa.store.locks import AdvisoryLock
lock = AdvisoryLock(sys.argv[1])
with lock.hold():
    IngestProgress(Database(sys.argv[1], EVERY_GROUP), lock).update("held-doc", 1, 9, force=True)
    print("held", flush=True)
    sys.stdin.read()
"""


def test_writer_lock_is_held_across_processes_and_freed_by_kill_9(postgres: PostgresServer) -> None:
    import psycopg

    from qa.indexing.progress import IngestProgress
    from qa.store.locks import INGEST_LOCK, AdvisoryLock

    url = fresh_database(postgres)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    database = Database(url, EVERY_GROUP)
    progress = IngestProgress(database, AdvisoryLock(url))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert progress.read()["document"] == "held-doc"  # type: ignore[index]
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT pg_try_advisory_lock(%s)", (INGEST_LOCK,)).fetchone()[0] is False
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            wait_until(lambda: conn.execute("SELECT pg_try_advisory_lock(%s)", (INGEST_LOCK,)).fetchone()[0], 10,
                       "the killed holder's lock being released")
            conn.execute("SELECT pg_advisory_unlock(%s)", (INGEST_LOCK,))
        assert progress.read() is None  # the dead holder's row no longer shows
        lock = AdvisoryLock(url)
        entered = threading.Event()

        def second() -> None:
            with lock.hold():
                entered.set()

        with lock.hold():
            waiter = threading.Thread(target=second)
            waiter.start()
            assert not entered.wait(0.3)  # blocked while this thread holds it
        assert entered.wait(10)
        waiter.join()
    finally:
        database.close()
        if holder.poll() is None:
            holder.kill()


def test_unreachable_database_is_a_clear_503(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="PostgreSQL server"):
        build_service(make_settings(tmp_path / "data", database_url="postgresql://qa@127.0.0.1:9/qa"))


# ---- three stateless replicas ----------------------------------------------------------------------------


class Replicas:
    """`chroma run` + three `qa serve` on one PostgreSQL database, each with its own empty data folder, and
    a web server on 127.0.0.1 for URL ingests."""

    def __init__(self, root: Path, postgres: PostgresServer) -> None:
        self.root, self.postgres = root, postgres
        self.database = fresh_database(postgres)
        self._stack = ExitStack()
        self.urls: list[str] = []
        self.chroma = ""
        self.web = self._stack.enter_context(WebServer())

    def start(self) -> None:
        self.chroma, _ = self._stack.enter_context(chroma_server(self.root / "chroma"))
        env = {"QA_CHROMA_URL": self.chroma, "QA_DATABASE_URL": self.database, "QA_FETCH_ALLOW_PRIVATE": "true"}
        servers = []
        for name in "abc":
            folder = self.root / name / "data"
            folder.mkdir(parents=True)
            servers.append(api_server(folder, startup_timeout=300, **env))
        with ThreadPoolExecutor(3) as pool:  # started together, as replicas are
            self.urls = list(pool.map(lambda server: server.__enter__(), servers))
        for server in servers:
            self._stack.push(server)

    def stop(self) -> None:
        self._stack.close()

    def chroma_ids(self, doc_id: str) -> set[str]:
        import chromadb

        host, port = self.chroma.rsplit("//", 1)[1].split(":")
        collection = chromadb.HttpClient(host=host, port=int(port)).get_collection("news")
        return set(collection.get(where={"doc_id": doc_id}, include=[])["ids"])

    def sql_ids(self, doc_id: str) -> set[str]:
        import psycopg

        with psycopg.connect(self.database) as conn:
            return {r[0] for r in conn.execute("SELECT chunk_id FROM chunks WHERE doc_id=%s", (doc_id,))}


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer) -> Iterator[Replicas]:
    servers = Replicas(tmp_path_factory.mktemp("replicas"), postgres)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


def _ask(url: str, question: str, conversation_id: str | None = None, token: str | None = None) -> httpx.Response:
    body = {"question": question, **({"conversation_id": conversation_id} if conversation_id else {})}
    return httpx.post(f"{url}/ask", json=body, headers={"X-QA-Client": token} if token else {}, timeout=60)


def _answer(url: str, question: str) -> dict:
    response = _ask(url, question)
    assert response.status_code == 200, response.text
    return response.json()


def test_replicas_share_one_corpus_conversations_and_jobs(replicas: Replicas) -> None:
    a, b, c = replicas.urls
    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in sorted((ROOT / "seeds").glob("*.txt"))]
    response = httpx.post(f"{a}/documents", files=files, timeout=300)
    assert response.status_code == 201, response.text
    for url in (b, c):
        health = httpx.get(f"{url}/health", timeout=30).json()
        assert health["status"] == "ok" and health["documents"] == 5 and health["vectors"] == health["chunks"]
        result = _answer(url, MISSILES)
        assert not result["refused"] and "59" in result["answer"] and result["citations"][0]["doc_id"] == MISSILES_DOC
        assert any("bm25" in p["ranks"] for p in result["passages"])

    text = ARTICLE.format(n=4, fact="ninetyseven")
    response = httpx.post(f"{b}/documents", files=[("files", ("harbour.txt", text.encode(), "text/plain"))],
                          timeout=120)
    assert response.status_code == 201, response.text
    listed = httpx.get(f"{a}/documents", timeout=30).json()
    assert "harbour" in {d["doc_id"] for d in listed["documents"]}
    passages = _answer(c, "How many ships were waiting outside the harbour of Quellstadt?")["passages"]
    assert passages[0]["doc_id"] == "harbour" and "ninetyseven" in passages[0]["text"]
    assert "bm25" in passages[0]["ranks"]  # C's own keyword index caught up with B's write before answering

    # a conversation moves between replicas with its client token (issued by A, accepted by B and C)
    first = _ask(a, "Who did Trump fire?")
    token, conversation = first.headers["x-qa-client"], first.json()["conversation_id"]
    follow_up = _ask(b, "What was he investigating?", conversation, token)
    assert follow_up.status_code == 200 and "x-qa-client" not in follow_up.headers  # B took A's token
    assert "Trump" in follow_up.json()["standalone_question"], follow_up.json()["standalone_question"]
    third = _ask(c, "When did that happen?", conversation, token)
    assert third.status_code == 200 and third.json()["standalone_question"] != "When did that happen?"
    stranger = _ask(c, "What was he investigating?", conversation)  # no token: a new client
    assert stranger.status_code == 404 and stranger.json()["error"].startswith("no such conversation")
    owner = {"X-QA-Client": token}
    reopened = httpx.get(f"{b}/conversations/{conversation}", headers=owner, timeout=30).json()
    assert [t["question"] for t in reopened["turns"]] == ["Who did Trump fire?", "What was he investigating?",
                                                          "When did that happen?"]
    assert reopened["turns"][2]["answer"]["conversation_id"] == conversation  # the answer object, as C gave it
    assert httpx.get(f"{a}/conversations/{conversation}", timeout=30).status_code == 404  # not a stranger's
    rating = {"rating": "up", "question": "Who did Trump fire?", "answer": first.json()["answer"],
              "conversation_id": conversation}
    assert httpx.post(f"{c}/feedback", json=rating, headers=owner, timeout=30).status_code == 201
    assert httpx.patch(f"{a}/conversations/{conversation}", json={"title": "Comey"}, headers=owner,
                       timeout=30).json()["title"] == "Comey"
    listed = httpx.get(f"{c}/conversations", headers=owner, timeout=30).json()["conversations"]
    assert [(x["id"], x["title"]) for x in listed] == [(conversation, "Comey")]

    # an ingest job started through A is followed through B
    page = replicas.web.url("/ledger/2026/02/27/council-budget.html")
    started = httpx.post(f"{a}/documents/ingest-url", json={"urls": [page]}, timeout=60)
    assert started.status_code == 202, started.text
    job_url = f"{b}/jobs/{started.json()['job_id']}"
    job = wait_until(lambda: (j := httpx.get(job_url, timeout=30).json())["status"] != "running" and j, 120,
                     "the job finishing", every=0.1)
    assert job["status"] == "done" and len(job["report"]["added"]) == 1, job  # type: ignore[index]
    added = job["report"]["added"][0]  # type: ignore[index]
    assert httpx.get(f"{c}/documents/{added}", timeout=30).status_code == 200

    assert httpx.delete(f"{c}/documents/{MISSILES_DOC}", timeout=60).status_code == 200
    for url in (a, b):
        assert httpx.get(f"{url}/documents/{MISSILES_DOC}", timeout=30).status_code == 404
        assert MISSILES_DOC not in {p["doc_id"] for p in _answer(url, MISSILES)["passages"]}
    assert replicas.chroma_ids(MISSILES_DOC) == set()
    for name in "abc":  # nothing of the stores lives in a replica's data folder, only caches: its keyword
        # index (rebuilt from PostgreSQL when missing) and A's web validators
        assert {p.name for p in (replicas.root / name / "data").iterdir()} <= {
            "web.sqlite", "web.sqlite-wal", "web.sqlite-shm", "keyword-index-pg"}


def test_two_replicas_writing_one_document_id_leave_one_version(replicas: Replicas) -> None:
    a, b, _ = replicas.urls
    for round_ in range(2):
        texts = {url: ARTICLE.format(n=5, fact=f"round{round_}{side}") for url, side in ((a, "left"), (b, "right"))}

        def upload(item: tuple[str, str]) -> httpx.Response:
            files = [("files", ("contested.txt", item[1].encode(), "text/plain"))]
            return httpx.post(f"{item[0]}/documents", files=files, timeout=120)

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(upload, texts.items()))
        assert all(r.status_code == 201 for r in results), [r.text for r in results]
        stored = httpx.get(f"{a}/documents/contested", timeout=30).json()["text"]
        assert (f"round{round_}left" in stored) != (f"round{round_}right" in stored)  # exactly one version
        sql = replicas.sql_ids("contested")
        assert sql and replicas.chroma_ids("contested") == sql  # no orphan vectors, none missing


def test_kill_9_mid_ingest_leaves_nothing_half_visible(replicas: Replicas, tmp_path: Path) -> None:
    """tests/test_crash.py's audit across PostgreSQL and the Chroma server: a `qa ingest` killed while it
    commits, then the next process on the stores (start-up repair, the same ingest again), ends with exactly
    one version of every article in both stores."""
    import psycopg

    folder = tmp_path / "batch"
    facts = write_corpus(folder, 12)
    database = fresh_database(replicas.postgres)
    env = qa_env(tmp_path / "data", QA_DATABASE_URL=database, QA_CHROMA_URL=replicas.chroma, QA_COLLECTION="crash")
    cli = ("import qa.indexing.indexer; qa.indexing.indexer.EMBED_GROUP_TEXTS = 8; "
           "from qa.cli import app; app(prog_name='qa')")

    def committed() -> int:
        with psycopg.connect(database) as conn:
            return conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]

    proc = subprocess.Popen([sys.executable, "-c", cli, "ingest", str(folder), "--json"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def three_committed() -> bool:
        if committed() >= 3:
            return True
        assert proc.poll() is None, "ingest finished before the kill point; make the batch larger"
        return False

    wait_until(three_committed, 300, "3 articles committed", every=0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = committed()
    assert 3 <= killed_at < 12
    service = build_service(make_settings(tmp_path / "data", database_url=database, chroma_url=replicas.chroma,
                                          collection="crash"))  # the next process on these stores: run it again
    assert service.docs.db.is_postgres
    service.startup()
    report = service.ingest_paths([folder])
    assert not report.failed and len(report.added) + len(report.replaced) + len(report.unchanged) == 12
    state = assert_consistent(service, set(facts))
    assert len(state.documents) == 12


def test_postgres_outage_is_a_503_and_replicas_recover_by_themselves(replicas: Replicas) -> None:
    """Last in the file: it stops the session's PostgreSQL server (and starts it again)."""
    a, b, c = replicas.urls
    assert _ask(a, "Who did Trump fire?").status_code == 200
    replicas.postgres.stop()
    try:
        for url in (a, b):
            response = _ask(url, "Who did Trump fire?")
            assert response.status_code == 503, response.text
            assert "PostgreSQL" in response.json()["error"]
            health = httpx.get(f"{url}/health", timeout=60)
            assert health.status_code == 503 and health.json()["status"] == "degraded"
        response = httpx.delete(f"{c}/documents/harbour", timeout=60)
        assert response.status_code == 503 and "error" in response.json()
    finally:
        replicas.postgres.start()
    for url in (a, b, c):
        wait_until(lambda url=url: httpx.get(f"{url}/health", timeout=60).status_code == 200, 30,
                   f"{url} recovering", every=0.1)
        assert not _answer(url, "Who did Trump fire?")["refused"]
    assert httpx.get(f"{c}/documents/harbour", timeout=30).status_code == 200  # the failed delete left it whole
