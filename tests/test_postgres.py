"""The PostgreSQL store (QA_DATABASE_URL) against a real PostgreSQL 15 started here: the same store tests as
the SQLite store (parametrized over both), its migrations and writer lock, and three stateless `qa serve`
replicas on PostgreSQL + a `chroma run` server: ingest, ask, upload, list, delete and a conversation across
them; PostgreSQL stopped and restarted under them; two replicas writing one document id at once."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pytest

from qa.errors import StoreUnavailable
from qa.retrieval.filters import Filters, sql_where
from qa.service import Service, build_service
from tests.conftest import make_settings
from tests.reliability_support import assert_consistent, write_corpus
from tests.support import ROOT, SEEDS, PostgresServer, api_server, chroma_server, postgres_available, qa_env

pytestmark = [pytest.mark.server, pytest.mark.timeout(1800),
              pytest.mark.skipif(not postgres_available(), reason="PostgreSQL 15 binaries are not installed")]

MISSILES = "How many Tomahawk missiles did the US fire at the Shayrat Airbase?"
MISSILES_DOC = "000_9a3c7f577db017be"
EVAL_DATA = ROOT / "eval" / "data"
_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


def fresh_database(postgres: PostgresServer) -> str:
    return postgres.create_database(f"qa_test_{next(_databases)}")


def _settings(backend: str, data_dir: Path, request: pytest.FixtureRequest, **overrides: object):
    if backend == "postgres":
        overrides["database_url"] = fresh_database(request.getfixturevalue("postgres"))
    return make_settings(data_dir, **overrides)


@pytest.fixture(scope="module")
def seeded_pair(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer) -> dict[str, Service]:
    """The seeds indexed once in each store (read-only)."""
    services = {}
    for backend in ("sqlite", "postgres"):
        data_dir = tmp_path_factory.mktemp(f"seeded-{backend}") / "data"
        overrides = {"database_url": fresh_database(postgres)} if backend == "postgres" else {}
        service = build_service(make_settings(data_dir, **overrides))
        report = service.ingest_paths([SEEDS])
        assert len(report.added) == 5 and not report.failed
        services[backend] = service
    return services


@pytest.fixture(params=["sqlite", "postgres"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Service]:
    """A new empty store of each kind: call (with setting overrides) for a service on it; call again for a
    second process's view of the same store."""
    backend = request.param
    url = fresh_database(request.getfixturevalue("postgres")) if backend == "postgres" else None

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
        where = sql_where(f)
        for question in questions[:10]:
            expected, got = sqlite.keyword_search(question, 10, where), postgres.keyword_search(question, 10, where)
            assert [c for c, _ in got] == [c for c, _ in expected], (question, f)
            assert np.allclose([s for _, s in got], [s for _, s in expected], rtol=1e-9), question
    assert postgres.keyword_search("", 10) == [] and postgres.keyword_search("zzzyqx", 10) == []


def test_same_documents_chunks_and_reads(seeded_pair: dict[str, Service]) -> None:
    sqlite, postgres = seeded_pair["sqlite"].docs, seeded_pair["postgres"].docs
    assert postgres.count() == sqlite.count()
    strip = [{k: v for k, v in d.items() if k != "indexed_at"} for d in sqlite.list_documents()]
    assert [{k: v for k, v in d.items() if k != "indexed_at"} for d in postgres.list_documents()] == strip
    ids = sorted(sqlite.chunk_ids(MISSILES_DOC))
    assert sorted(postgres.chunk_ids(MISSILES_DOC)) == ids
    assert postgres.get_chunks(ids) == sqlite.get_chunks(ids)
    document = postgres.get_document(MISSILES_DOC)
    assert document is not None and document["text"] == sqlite.get_document(MISSILES_DOC)["text"]
    spans = sqlite.spans_in("sentence", MISSILES_DOC, 0, 10_000)
    got = postgres.spans_in("sentence", MISSILES_DOC, 0, 10_000)
    assert [(s, e) for s, e, _ in got] == [(s, e) for s, e, _ in spans] and spans
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(got, spans, strict=True))
    answer = seeded_pair["postgres"].ask(MISSILES)
    assert not answer.refused and "59" in answer.answer and answer.citations[0].doc_id == MISSILES_DOC


def _upload(name: str, text: str) -> list[tuple[str, bytes]]:
    return [(name, text.encode())]


ARTICLE = ("Title: Harbour {n}\nSource: Gazette\nDate: 2017-05-0{n}\n\nThe harbour of Quellstadt {n} reopened on "
           "Monday after the storm. Officials said {fact} ships were waiting outside. The mayor thanked the crews.")


def test_put_replace_delete_keep_counts_and_index_in_step(fresh: Callable[..., Service]) -> None:
    service = fresh()
    files = [f for n in (1, 2, 3) for f in _upload(f"harbour{n}.txt", ARTICLE.format(n=n, fact=10 + n))]
    report = service.ingest_files(files)
    assert len(report.added) == 3
    docs, chunks = service.docs.count()
    assert docs == 3 and chunks >= 3
    assert_consistent(service)
    hits = service.docs.keyword_search("harbour Quellstadt ships", 5)
    assert len(hits) == 3

    old = service.docs.chunk_ids("harbour2")
    replaced = service.ingest_files(_upload("harbour2.txt", ARTICLE.format(n=2, fact="sevenhundred")))
    assert replaced.replaced == ["harbour2"]
    assert not old & service.docs.chunk_ids("harbour2")
    assert service.docs.count()[0] == 3
    assert {c for c, _ in service.docs.keyword_search("sevenhundred", 5)} == service.docs.chunk_ids("harbour2")
    assert_consistent(service)

    other = fresh()  # another process on the same store sees the same
    assert other.docs.count() == service.docs.count()
    assert other.delete("harbour1") is None
    assert service.docs.count()[0] == 2 and service.docs.get_document("harbour1") is None
    assert not any(c.startswith("harbour1:") for c, _ in service.docs.keyword_search("harbour", 10))
    assert_consistent(service)
    if hasattr(service.docs, "db"):  # the document frequencies BM25 reads are those of the chunks left
        with service.docs.db.connection() as conn:
            stored = dict(conn.execute("SELECT term, df FROM term_df WHERE df > 0").fetchall())
            counted = dict(conn.execute("SELECT u.lexeme, COUNT(*) FROM chunks c, unnest(c.terms) u"
                                        " GROUP BY u.lexeme").fetchall())
        assert stored == counted
    service.docs.reset()
    assert service.docs.count() == (0, 0) and service.docs.keyword_search("harbour", 5) == []


@pytest.mark.parametrize("operation", ["replace", "delete"])
def test_crash_between_chroma_delete_and_sql_commit_is_repaired(fresh: Callable[..., Service], operation: str) -> None:
    """The crash window of tests/test_crash.py, on both stores: Chroma lost vectors the SQL store still lists."""
    service = fresh()
    service.ingest_files([f for n in (1, 2, 3) for f in _upload(f"harbour{n}.txt", ARTICLE.format(n=n, fact=n))])
    doc_id = "harbour2"
    before = assert_consistent(service)
    service.docs.mark_pending(doc_id)
    service.indexer.store.delete_doc(doc_id)
    if operation == "replace":
        vector = np.ones((1, 384), dtype=np.float32) / np.sqrt(384)
        service.indexer.store.upsert([f"{doc_id}:0123456789:0"], vector, [{"doc_id": doc_id, "idx": 0}])
    restarted = fresh()
    assert restarted.docs.pending() == [doc_id]
    restarted.startup()
    after = assert_consistent(restarted)
    assert set(after.chroma_chunks) == set(before.chroma_chunks)


# ---- migrations and the writer lock ----------------------------------------------------------------------


def test_migrations_run_once_under_concurrent_starts_and_a_newer_schema_is_refused(postgres: PostgresServer) -> None:
    from qa.store.postgres import MIGRATIONS, PostgresDatabase

    url = fresh_database(postgres)
    applied: list[list[int]] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            database = PostgresDatabase(url, migrate=False)
            applied.append(database.migrate())
            database.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(map(len, applied)) == [0, 0, 0, len(MIGRATIONS)]  # one process migrated, three found it done
    database = PostgresDatabase(url)
    assert database.schema_version() == MIGRATIONS[-1][0]
    with database.connection() as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'from a newer release')")
    with pytest.raises(StoreUnavailable, match="newer than this release"):
        PostgresDatabase(url)
    database.close()


def test_writer_lock_is_held_across_processes_and_freed_by_kill_9(postgres: PostgresServer) -> None:
    import psycopg

    from qa.store.postgres import INGEST_LOCK, AdvisoryLock

    url = fresh_database(postgres)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom qa.store.postgres import AdvisoryLock\n"
         f"with AdvisoryLock({url!r}).hold():\n    print('held', flush=True)\n    time.sleep(120)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT pg_try_advisory_lock(%s)", (INGEST_LOCK,)).fetchone()[0] is False
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            deadline = time.monotonic() + 10
            while not conn.execute("SELECT pg_try_advisory_lock(%s)", (INGEST_LOCK,)).fetchone()[0]:
                assert time.monotonic() < deadline, "the killed holder's lock was never released"
                time.sleep(0.1)
            conn.execute("SELECT pg_advisory_unlock(%s)", (INGEST_LOCK,))
        order: list[str] = []
        lock = AdvisoryLock(url)

        def writer(name: str) -> None:
            with lock.hold():
                order.append(f"{name} in")
                time.sleep(0.3)
                order.append(f"{name} out")

        threads = [threading.Thread(target=writer, args=(n,)) for n in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_shared_key_is_the_same_for_every_process(postgres: PostgresServer) -> None:
    from qa.store.postgres import PostgresDatabase

    url = fresh_database(postgres)
    first, second = PostgresDatabase(url), PostgresDatabase(url)
    key = first.shared_key("client-tokens")
    assert len(key) == 32 and second.shared_key("client-tokens") == key != first.shared_key("other")
    first.close()
    second.close()


def test_unreachable_database_is_a_clear_503(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="PostgreSQL server"):
        build_service(make_settings(tmp_path / "data", database_url="postgresql://qa@127.0.0.1:9/qa"))


# ---- three stateless replicas ----------------------------------------------------------------------------


class Replicas:
    """`chroma run` + three `qa serve` on one PostgreSQL database, each with its own empty data folder."""

    def __init__(self, root: Path, postgres: PostgresServer) -> None:
        self.root, self.postgres = root, postgres
        self.database = fresh_database(postgres)
        self._stack = ExitStack()
        self.urls: list[str] = []
        self.chroma = ""

    def start(self) -> None:
        self.chroma, _ = self._stack.enter_context(chroma_server(self.root / "chroma"))
        env = {"QA_CHROMA_URL": self.chroma, "QA_DATABASE_URL": self.database}
        servers = []
        for name in "abc":
            folder = self.root / name / "data"
            folder.mkdir(parents=True)
            servers.append(api_server(folder, startup_timeout=900, **env))
        with ThreadPoolExecutor(3) as pool:  # started together, as replicas are: they migrate once between them
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


def _ask(url: str, question: str, conversation_id: str | None = None) -> dict:
    body = {"question": question, **({"conversation_id": conversation_id} if conversation_id else {})}
    response = httpx.post(f"{url}/ask", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_replicas_share_one_corpus_and_conversations(replicas: Replicas) -> None:
    a, b, c = replicas.urls
    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in sorted(SEEDS.glob("*.txt"))]
    response = httpx.post(f"{a}/documents", files=files, timeout=300)
    assert response.status_code == 201, response.text
    for url in (b, c):
        health = httpx.get(f"{url}/health", timeout=30).json()
        assert health["status"] == "ok" and health["documents"] == 5 and health["vectors"] == health["chunks"]
        result = _ask(url, MISSILES)
        assert not result["refused"] and "59" in result["answer"] and result["citations"][0]["doc_id"] == MISSILES_DOC
        assert any("bm25" in p["ranks"] for p in result["passages"])
    for name in "abc":  # nothing of the store lives in a replica's data folder
        assert not list((replicas.root / name / "data").glob("*.sqlite"))

    text = ARTICLE.format(n=4, fact="ninetyseven")
    response = httpx.post(f"{b}/documents", files=[("files", ("harbour.txt", text.encode(), "text/plain"))],
                          timeout=120)
    assert response.status_code == 201, response.text
    listed = httpx.get(f"{a}/documents", timeout=30).json()
    assert "harbour" in {d["doc_id"] for d in listed["documents"]}
    passages = _ask(c, "How many ships were waiting outside the harbour of Quellstadt?")["passages"]
    assert passages[0]["doc_id"] == "harbour" and "ninetyseven" in passages[0]["text"]

    first = _ask(a, "Who did Trump fire?")
    conversation = first["conversation_id"]
    follow_up = _ask(b, "What was he investigating?", conversation)
    assert "Trump" in follow_up["standalone_question"], follow_up["standalone_question"]
    third = _ask(c, "When did that happen?", conversation)
    assert third["standalone_question"] != "When did that happen?"

    assert httpx.delete(f"{c}/documents/{MISSILES_DOC}", timeout=60).status_code == 200
    for url in (a, b):
        assert httpx.get(f"{url}/documents/{MISSILES_DOC}", timeout=30).status_code == 404
        assert MISSILES_DOC not in {p["doc_id"] for p in _ask(url, MISSILES)["passages"]}
    assert replicas.chroma_ids(MISSILES_DOC) == set()


def test_two_replicas_writing_one_document_id_leave_one_version(replicas: Replicas) -> None:
    a, b, _ = replicas.urls
    for round_ in range(3):
        texts = {url: ARTICLE.format(n=5, fact=f"round{round_}{side}") for url, side in ((a, "left"), (b, "right"))}
        results: dict[str, httpx.Response] = {}

        def upload(url: str, text: str, results: dict[str, httpx.Response] = results) -> None:
            files = [("files", ("contested.txt", text.encode(), "text/plain"))]
            results[url] = httpx.post(f"{url}/documents", files=files, timeout=120)

        threads = [threading.Thread(target=upload, args=item) for item in texts.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r.status_code == 201 for r in results.values()), [r.text for r in results.values()]
        stored = httpx.get(f"{a}/documents/contested", timeout=30).json()["text"]
        assert (f"round{round_}left" in stored) != (f"round{round_}right" in stored)  # exactly one version
        sql = replicas.sql_ids("contested")
        assert sql and replicas.chroma_ids("contested") == sql  # no orphan vectors, none missing


def test_kill_9_mid_ingest_leaves_nothing_half_visible(replicas: Replicas, tmp_path: Path) -> None:
    """tests/test_crash.py's audit across PostgreSQL and the Chroma server: a `qa ingest` killed while it
    commits, run again to the end, ends with exactly one version of every article in both stores."""
    import psycopg

    from qa.store.postgres import PostgresStore

    folder = tmp_path / "batch"
    facts = write_corpus(folder, 24)
    database = fresh_database(replicas.postgres)
    env = qa_env(tmp_path / "data", QA_DATABASE_URL=database, QA_CHROMA_URL=replicas.chroma, QA_COLLECTION="crash")
    cli = ("import qa.indexing.indexer; qa.indexing.indexer.EMBED_GROUP_TEXTS = 48; "
           "from qa.cli import app; app(prog_name='qa')")

    def ingest() -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", cli, "ingest", str(folder), "--json"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def committed() -> int:
        try:
            with psycopg.connect(database) as conn:
                return conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        except psycopg.Error:  # the schema is not there yet
            return 0

    proc = ingest()
    deadline = time.monotonic() + 600
    while committed() < 6:
        assert proc.poll() is None, "ingest finished before the kill point; make the batch larger"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = committed()
    assert 6 <= killed_at < 24
    out, err = ingest().communicate(timeout=900)
    assert '"failed": []' in out, err
    service = build_service(make_settings(tmp_path / "data", database_url=database, chroma_url=replicas.chroma,
                                          collection="crash"))
    assert isinstance(service.docs, PostgresStore)
    state = assert_consistent(service, set(facts))
    assert len(state.documents) == 24


def test_postgres_outage_is_a_503_and_replicas_recover_by_themselves(replicas: Replicas) -> None:
    a, b, c = replicas.urls
    _ask(a, "Who did Trump fire?")
    replicas.postgres.stop()
    try:
        for url in (a, b):
            response = httpx.post(f"{url}/ask", json={"question": "Who did Trump fire?"}, timeout=60)
            assert response.status_code == 503, response.text
            assert "PostgreSQL" in response.json()["error"]
            health = httpx.get(f"{url}/health", timeout=60)
            assert health.status_code == 503 and health.json()["status"] == "degraded"
        response = httpx.delete(f"{c}/documents/harbour", timeout=60)
        assert response.status_code == 503 and "error" in response.json()
    finally:
        replicas.postgres.start()
    deadline = time.monotonic() + 30
    for url in (a, b, c):
        while httpx.get(f"{url}/health", timeout=60).status_code != 200:
            assert time.monotonic() < deadline, f"{url} did not recover"
            time.sleep(0.2)
        assert not _ask(url, "Who did Trump fire?")["refused"]
    assert httpx.get(f"{c}/documents/harbour", timeout=30).status_code == 200  # the failed delete left it whole
