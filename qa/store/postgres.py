"""The SQL store on PostgreSQL (QA_DATABASE_URL): the same tables as the SQLite store, so API processes on
any number of hosts serve one corpus and keep nothing on local disk.

- Connections come from a psycopg pool; a lost server surfaces as StoreUnavailable (503 JSON, /health
  degraded), and the pool reconnects by itself once the server is back.
- The schema is versioned SQL (MIGRATIONS), applied automatically when a process starts (or by `qa db
  upgrade`), in one transaction under an advisory lock, so replicas starting together migrate once and a new
  release upgrades a running database. A database newer than this code is refused.
- The same database holds what every replica must share beside the store: conversations and their owners
  (qa.conversations.postgres), ingest jobs (qa.jobs), the running ingest's progress (qa.indexing.progress)
  and the key that signs client tokens (PostgresDatabase.shared_key).
- Keyword search: each API process (replica) keeps its own tantivy index (qa.store.keyword), in its data
  folder (`keyword-index-pg/<database>/`), fed from the `keyword_changes` table that every put and delete
  writes in its transaction. Sequence numbers come from one `meta` row updated in that transaction, whose row
  lock orders writers, so they are assigned in commit order and a replica never skips a change committed
  late. Before each search a replica reads the head (one indexed row) and catches up, so a write through one
  replica is searchable through every other at once; a new or wiped replica rebuilds its index from the
  chunks. PostgreSQL full text (a tsvector per chunk, GIN, BM25 in SQL) was measured against it and dropped
  (docs/benchmarks.md): it scores every posting of every query term.
- The writer lock is a session advisory lock (AdvisoryLock), held on its own connection: it is released when
  the holder ends, even by `kill -9`, since the server drops the session.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from qa.errors import StoreUnavailable
from qa.sources.article import Article
from qa.store import ChunkRow, SpanRows, StoredChunk
from qa.store.keyword import KeywordFilter, KeywordIndex, KeywordRow
from qa.store.sqlite import day_number

UNAVAILABLE = "document store unavailable: the PostgreSQL server (QA_DATABASE_URL) does not answer"
MIGRATION_LOCK = 7_161_760_001  # advisory lock keys: arbitrary, fixed, used by nothing else
INGEST_LOCK = 7_161_760_002
FILL_LOCK = 7_161_760_003  # one replica at a time embeds the spans an ingest stored without vectors

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "documents, chunks with a tsvector keyword index, spans, pending marks, counts, conversations", """
CREATE TABLE documents (
  doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT, published TEXT, url TEXT, path TEXT,
  text TEXT NOT NULL, content_hash TEXT NOT NULL, n_chunks INTEGER NOT NULL, embed_model TEXT NOT NULL,
  indexed_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
);
CREATE TABLE chunks (
  id BIGSERIAL PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL, idx INTEGER NOT NULL,
  start INTEGER NOT NULL, "end" INTEGER NOT NULL, source_key TEXT NOT NULL DEFAULT '',
  day INTEGER NOT NULL DEFAULT 0, n_terms INTEGER NOT NULL DEFAULT 0, terms TSVECTOR NOT NULL
);
CREATE INDEX chunks_doc ON chunks(doc_id);
CREATE INDEX chunks_terms ON chunks USING GIN (terms);
CREATE TABLE term_df (term TEXT PRIMARY KEY, df INTEGER NOT NULL);
CREATE TABLE spans (
  kind TEXT NOT NULL, doc_id TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
  vector BYTEA NOT NULL, PRIMARY KEY (kind, doc_id, start)
);
CREATE TABLE pending (doc_id TEXT PRIMARY KEY);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('documents', '0'), ('chunks', '0'), ('terms', '0');
CREATE TABLE shared_keys (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE turns (
  conversation_id TEXT NOT NULL, idx INTEGER NOT NULL, question TEXT NOT NULL, standalone TEXT NOT NULL,
  answer TEXT NOT NULL, created TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (conversation_id, idx)
);
"""),
    (2, "author, spans by doc_id, text signatures and copies, conversation owners, jobs, ingest progress", """
ALTER TABLE documents ADD COLUMN author TEXT;
CREATE INDEX spans_doc ON spans(doc_id);
CREATE TABLE signatures (seq BIGSERIAL PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, signature BYTEA NOT NULL);
CREATE TABLE copies (
  doc_id TEXT NOT NULL, url TEXT NOT NULL, source TEXT, published TEXT, copy_id TEXT NOT NULL,
  seq BIGSERIAL NOT NULL, PRIMARY KEY (doc_id, url)
);
CREATE INDEX copies_copy ON copies(copy_id);
CREATE TABLE conversations (
  id TEXT PRIMARY KEY, client TEXT NOT NULL, created TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  title TEXT NOT NULL, seq BIGSERIAL NOT NULL
);
CREATE INDEX conversations_client ON conversations(client, created);
CREATE TABLE jobs (
  job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
  heartbeat DOUBLE PRECISION NOT NULL, done INTEGER NOT NULL DEFAULT 0, total INTEGER, report TEXT, error TEXT
);
CREATE TABLE ingest_progress (
  id INTEGER PRIMARY KEY CHECK (id = 1), document TEXT NOT NULL, done INTEGER NOT NULL, total INTEGER NOT NULL,
  started DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL
);
"""),
    (3, "turns keep their answer object, readers' feedback", """
ALTER TABLE turns ADD COLUMN result TEXT;
CREATE TABLE feedback (
  id BIGSERIAL PRIMARY KEY, rating TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
  refused INTEGER NOT NULL, note TEXT, conversation_id TEXT, client TEXT NOT NULL, evidence TEXT NOT NULL,
  doc_ids TEXT NOT NULL, created TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
"""),
    (4, "keyword index out of PostgreSQL: a change feed for each replica's tantivy index", """
CREATE TABLE keyword_changes (doc_id TEXT PRIMARY KEY, seq BIGINT NOT NULL);
CREATE INDEX keyword_changes_seq ON keyword_changes(seq);
INSERT INTO meta VALUES ('keyword_seq', '0'), ('keyword_generation', md5(random()::text));
DROP INDEX chunks_terms;
ALTER TABLE chunks DROP COLUMN terms;
DROP TABLE term_df;
DELETE FROM meta WHERE key IN ('analyzer', 'terms');
"""),
    (5, "spans stored without a vector, for the background fill", """
CREATE INDEX spans_waiting ON spans (kind, doc_id, start) WHERE octet_length(vector) = 0;
"""),
]


class PostgresDatabase:
    """A connection pool on QA_DATABASE_URL, with the schema brought up to date when it opens."""

    def __init__(self, url: str, max_size: int = 16, timeout: float = 3.0, migrate: bool = True) -> None:
        self.url = url
        self.pool = ConnectionPool(
            url, min_size=1, max_size=max_size, timeout=timeout, open=False,
            check=ConnectionPool.check_connection, kwargs={"connect_timeout": 3},
            name="qa-store",
        )
        self.pool.open(wait=False)
        if migrate:
            try:
                self.migrate()
            except BaseException:
                self.pool.close()  # a process that cannot start leaves no pool threads behind
                raise

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; its block is one transaction (committed on leaving, rolled back on error)."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(UNAVAILABLE) from exc

    def migrate(self, migrations: list[tuple[int, str, str]] = MIGRATIONS) -> list[int]:
        """Apply the migrations this database lacks, under an advisory lock; returns the versions applied."""
        applied: list[int] = []
        with self.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                         " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            newest = max((v for v, _, _ in migrations), default=0)
            if done and max(done) > newest:
                raise StoreUnavailable(f"the database schema is version {max(done)}, newer than this release "
                                       f"knows ({newest}); upgrade the API processes")
            for version, name, sql in migrations:
                if version not in done:
                    conn.execute(sql)  # type: ignore[arg-type]  # fixed text from this module
                    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
                    applied.append(version)
        return applied

    def shared_key(self, name: str) -> bytes:
        """A 32-byte random key every process on this database gets the same of (the first one makes it):
        what a key file in a shared data folder is for in the one-host mode (e.g. signing client tokens)."""
        with self.connection() as conn:
            conn.execute("INSERT INTO shared_keys VALUES (%s, %s) ON CONFLICT DO NOTHING",
                         (name, secrets.token_bytes(32)))
            row = conn.execute("SELECT value FROM shared_keys WHERE name=%s", (name,)).fetchone()
        return bytes(row[0])

    def schema_version(self) -> int:
        with self.connection() as conn:
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.pool.close()


class AdvisoryLock:
    """The writer lock in the database: a session advisory lock on a connection of its own, so every API
    process on every host takes turns; a holder that dies releases it with its session."""

    def __init__(self, url: str, key: int = INGEST_LOCK) -> None:
        self.url = url
        self.key = key

    @contextmanager
    def hold(self) -> Iterator[None]:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(UNAVAILABLE) from exc
        with conn:
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (self.key,))
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(UNAVAILABLE) from exc
            try:
                yield
            finally:
                with suppress(psycopg.Error):  # the session is gone, and the lock with it
                    conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))


class PostgresStore:
    """The DocumentStore on PostgreSQL; each article replaced in one transaction, as in SQLiteStore."""

    def __init__(self, database: PostgresDatabase, keyword_dir: Path | None = None) -> None:
        """keyword_dir: where this replica keeps its keyword index (None: in memory, rebuilt at each start)."""
        self.db = database
        self.keyword = KeywordIndex(keyword_dir, self)

    # ---- the keyword index's change feed (qa.store.keyword.ChangeFeed) --------------------------------------

    def keyword_head(self) -> tuple[str, int]:
        with self.db.connection() as conn:
            meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('keyword_generation',"
                                     " 'keyword_seq')").fetchall())
        return meta["keyword_generation"], int(meta["keyword_seq"])

    def keyword_changes(self, after: int) -> tuple[list[str], int]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT doc_id, seq FROM keyword_changes WHERE seq > %s", (after,)).fetchall()
        return [r[0] for r in rows], max((int(r[1]) for r in rows), default=after)

    def keyword_rows(self, doc_ids: list[str] | None) -> Iterator[KeywordRow]:
        query = ('SELECT c.chunk_id, c.doc_id, c.source_key, c.day, substr(d.text, c.start + 1, c."end" - c.start)'
                 " FROM chunks c JOIN documents d ON d.doc_id = c.doc_id")
        with self.db.connection() as conn:
            if doc_ids is not None:
                rows = conn.execute(query + " WHERE c.doc_id = ANY(%s)", (doc_ids,)).fetchall()
                yield from (KeywordRow(*r) for r in rows)
                return
            with conn.cursor(name="keyword_rows") as cursor:  # server-side: the whole corpus, streamed
                cursor.itersize = 5000
                cursor.execute(query)  # type: ignore[arg-type]
                yield from (KeywordRow(*r) for r in cursor)

    def keyword_catch_up(self) -> None:
        """Bring this replica's keyword index up to the database (after an ingest batch, at start-up)."""
        self.keyword.catch_up()

    @staticmethod
    def _record_change(conn: psycopg.Connection[Any], doc_id: str) -> None:
        """Tell every replica's keyword index, in the article's own transaction, that the article changed (the
        meta row stays locked until commit, so sequence numbers are given in commit order)."""
        row = conn.execute("UPDATE meta SET value = (value::bigint + 1)::text WHERE key='keyword_seq'"
                           " RETURNING value").fetchone()
        assert row is not None
        conn.execute("INSERT INTO keyword_changes VALUES (%s, %s) ON CONFLICT (doc_id) DO UPDATE SET seq=EXCLUDED.seq",
                     (doc_id, int(row[0])))

    # ---- ingest bookkeeping -------------------------------------------------------------------------------

    def _one(self, sql: str, params: tuple = ()) -> Any:
        with self.db.connection() as conn:
            row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None

    def _column(self, sql: str, params: tuple = ()) -> list[Any]:
        with self.db.connection() as conn:
            return [r[0] for r in conn.execute(sql, params)]  # type: ignore[arg-type]

    def content_hash(self, doc_id: str) -> str | None:
        return self._one("SELECT content_hash FROM documents WHERE doc_id=%s", (doc_id,))

    def origin(self, doc_id: str) -> str | None:
        """The file name (or path) an indexed article came from, None when unknown."""
        return self._one("SELECT path FROM documents WHERE doc_id=%s", (doc_id,))

    def embed_models(self) -> set[str]:
        return set(self._column("SELECT DISTINCT embed_model FROM documents"))

    def mark_pending(self, doc_id: str) -> None:
        """Record that Chroma is about to change for this doc, before it does (crash repair needs it)."""
        with self.db.connection() as conn:
            conn.execute("INSERT INTO pending VALUES (%s) ON CONFLICT DO NOTHING", (doc_id,))

    def pending(self) -> list[str]:
        return self._column("SELECT doc_id FROM pending ORDER BY doc_id")

    def clear_pending(self, doc_id: str) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM pending WHERE doc_id=%s", (doc_id,))

    # ---- writes -------------------------------------------------------------------------------------------

    def put(
        self, article: Article, fingerprint: str, chunks: list[ChunkRow], enrichments: dict[str, SpanRows],
        embed_model: str, signature: bytes | None = None,
    ) -> None:
        """Replace one article (document, chunks, enrichment rows, text signature) in one transaction that also
        records the change for the keyword index and clears its pending mark (its recorded copies stay)."""
        published = article.published.isoformat() if article.published else None
        source_key, day = (article.source or "").casefold(), day_number(published)
        with self.db.connection() as conn:
            self._record_change(conn, article.doc_id)  # first: the lock that orders writers
            docs_removed, chunks_removed = self._delete(conn, article.doc_id)
            self._add_counts(conn, 1 - docs_removed, len(chunks) - chunks_removed)
            conn.execute(
                "INSERT INTO documents (doc_id, title, source, published, url, path, text, content_hash, n_chunks,"
                " embed_model, author) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (article.doc_id, article.title, article.source, published, article.url, article.path,
                 article.text, fingerprint, len(chunks), embed_model, article.author),
            )
            if signature is not None:
                conn.execute("INSERT INTO signatures (doc_id, signature) VALUES (%s, %s)", (article.doc_id, signature))
            with conn.cursor() as cur:
                cur.executemany(
                    'INSERT INTO chunks (chunk_id, doc_id, idx, start, "end", source_key, day)'
                    " VALUES (%s,%s,%s,%s,%s,%s,%s)",
                    [(c.chunk_id, c.doc_id, c.idx, c.start, c.end, source_key, day) for c in chunks],
                )
                for kind, rows in enrichments.items():
                    vectors = rows.vectors.astype(np.float16)
                    cur.executemany(
                        'INSERT INTO spans (kind, doc_id, start, "end", vector) VALUES (%s,%s,%s,%s,%s)',
                        [(kind, article.doc_id, s, e, vectors[i].tobytes()) for i, (s, e) in enumerate(rows.spans)],
                    )
            conn.execute("DELETE FROM pending WHERE doc_id=%s", (article.doc_id,))

    def delete(self, doc_id: str) -> bool:
        """Remove an article and everything derived from it, the copies recorded for it included; False when
        it was not there."""
        with self.db.connection() as conn:
            docs_removed, chunks_removed = self._delete(conn, doc_id)
            conn.execute("DELETE FROM copies WHERE doc_id=%s", (doc_id,))
            conn.execute("DELETE FROM pending WHERE doc_id=%s", (doc_id,))
            if docs_removed:
                self._record_change(conn, doc_id)
                self._add_counts(conn, -docs_removed, -chunks_removed)
        return bool(docs_removed)

    @staticmethod
    def _delete(conn: psycopg.Connection[Any], doc_id: str) -> tuple[int, int]:
        """Remove an article's rows; returns (documents, chunks) removed."""
        docs = conn.execute("DELETE FROM documents WHERE doc_id=%s", (doc_id,)).rowcount
        removed = conn.execute("DELETE FROM chunks WHERE doc_id=%s", (doc_id,)).rowcount
        conn.execute("DELETE FROM spans WHERE doc_id=%s", (doc_id,))
        conn.execute("DELETE FROM signatures WHERE doc_id=%s", (doc_id,))
        return docs, removed

    @staticmethod
    def _add_counts(conn: psycopg.Connection[Any], documents: int, chunks: int) -> None:
        for key, delta in (("documents", documents), ("chunks", chunks)):
            conn.execute("UPDATE meta SET value = (value::bigint + %s)::text WHERE key=%s", (delta, key))

    def reset(self) -> None:
        """Delete every article (the index is being rebuilt, e.g. for another embedding model)."""
        with self.db.connection() as conn:
            conn.execute("TRUNCATE documents, chunks, spans, pending, signatures, copies, keyword_changes")
            conn.execute("UPDATE meta SET value='0' WHERE key IN ('documents', 'chunks')")
            conn.execute("UPDATE meta SET value=md5(random()::text) WHERE key='keyword_generation'")

    def close_thread(self) -> None:
        """Nothing to close: connections go back to the pool after each call."""

    # ---- reads --------------------------------------------------------------------------------------------

    def chunk_ids(self, doc_id: str) -> set[str]:
        return set(self._column("SELECT chunk_id FROM chunks WHERE doc_id=%s", (doc_id,)))

    def count(self) -> tuple[int, int]:
        """(documents, chunks) in the index."""
        with self.db.connection() as conn:
            counts = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('documents', 'chunks')").fetchall())
        return int(counts["documents"]), int(counts["chunks"])

    def list_documents(self) -> list[dict]:
        with self.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT doc_id, title, source, published, url, n_chunks, length(text) AS chars, indexed_at"
                " FROM documents ORDER BY doc_id COLLATE \"C\""
            ).fetchall()

    def get_document(self, doc_id: str) -> dict | None:
        """One article with its metadata and `also_at`, the copies recorded for it (oldest first)."""
        with self.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "SELECT doc_id, title, source, published, url, author, text, n_chunks, indexed_at FROM documents"
                " WHERE doc_id=%s", (doc_id,),
            ).fetchone()
            if row is None:
                return None
            copies = cur.execute("SELECT url, source, published FROM copies WHERE doc_id=%s ORDER BY seq",
                                 (doc_id,)).fetchall()
        return {**row, "also_at": copies}

    # ---- syndicated copies --------------------------------------------------------------------------------

    def signatures(self) -> list[tuple[str, bytes]]:
        """Every indexed article's text signature."""
        with self.db.connection() as conn:
            return [(r[0], bytes(r[1])) for r in conn.execute("SELECT doc_id, signature FROM signatures")]

    def signature_rows(self) -> dict[str, int]:
        """Each signature's sequence number, new whenever the article is written again (to reload only those)."""
        with self.db.connection() as conn:
            return dict(conn.execute("SELECT doc_id, seq FROM signatures").fetchall())

    def get_signatures(self, doc_ids: Iterable[str]) -> dict[str, bytes]:
        ids = list(doc_ids)
        if not ids:
            return {}
        with self.db.connection() as conn:
            rows = conn.execute("SELECT doc_id, signature FROM signatures WHERE doc_id = ANY(%s)", (ids,))
            return {r[0]: bytes(r[1]) for r in rows}

    def put_signature(self, doc_id: str, data: bytes) -> None:
        """Store the signature of an article indexed before signatures were kept."""
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO signatures (doc_id, signature) SELECT %s, %s WHERE EXISTS (SELECT 1 FROM documents"
                " WHERE doc_id=%s) ON CONFLICT (doc_id) DO UPDATE SET signature=EXCLUDED.signature, seq=DEFAULT",
                (doc_id, data, doc_id),
            )

    def add_copies(self, copies: list[tuple[str, str, str | None, str | None, str]]) -> int:
        """Record copies as (kept doc id, url, source, published, copy's doc id), for kept articles that are
        still indexed (one transaction); returns how many were recorded."""
        recorded = 0
        with self.db.connection() as conn:
            for kept, url, source, published, copy_id in copies:
                recorded += conn.execute(
                    "INSERT INTO copies (doc_id, url, source, published, copy_id) SELECT %s, %s, %s, %s, %s"
                    " WHERE EXISTS (SELECT 1 FROM documents WHERE doc_id=%s) ON CONFLICT (doc_id, url) DO UPDATE"
                    " SET source=EXCLUDED.source, published=EXCLUDED.published, copy_id=EXCLUDED.copy_id,"
                    " seq=DEFAULT",
                    (kept, url, source, published, copy_id, kept),
                ).rowcount
        return recorded

    def copies_of(self, doc_ids: Iterable[str]) -> dict[str, list[dict]]:
        """`also_at` of several articles at once (for citations)."""
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return {}
        found: dict[str, list[dict]] = {}
        with self.db.connection() as conn:
            for r in conn.execute("SELECT doc_id, url, source, published FROM copies WHERE doc_id = ANY(%s)"
                                  " ORDER BY seq", (ids,)):
                found.setdefault(r[0], []).append({"url": r[1], "source": r[2], "published": r[3]})
        return found

    def get_chunks(self, chunk_ids: Iterable[str]) -> dict[str, StoredChunk]:
        """Chunks with their text and article metadata, for the ids that still exist."""
        ids = list(dict.fromkeys(chunk_ids))
        if not ids:
            return {}
        with self.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                'SELECT c.chunk_id, c.doc_id, c.start, c."end", d.title, d.source, d.published,'
                ' substr(d.text, c.start + 1, c."end" - c.start) AS text'
                " FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE c.chunk_id = ANY(%s)",
                (ids,),
            ).fetchall()
        return {
            r["chunk_id"]: StoredChunk(r["chunk_id"], r["doc_id"], r["title"], r["source"], r["published"],
                                       r["text"], r["start"], r["end"])
            for r in rows
        }

    def keyword_search(self, query: str, n: int, where: KeywordFilter | None = None) -> list[tuple[str, float]]:
        """The n chunks that best match the query's terms (BM25 in this replica's index, caught up first)."""
        return self.keyword.search(query, n, where)

    def spans_in(self, kind: str, doc_id: str, start: int, end: int) -> list[tuple[int, int, np.ndarray]]:
        """An enrichment's spans (and vectors) lying inside [start, end) of an article."""
        with self.db.connection() as conn:
            rows = conn.execute(
                'SELECT start, "end", vector FROM spans WHERE kind=%s AND doc_id=%s AND start>=%s AND "end"<=%s'
                " ORDER BY start",
                (kind, doc_id, start, end),
            ).fetchall()
        return [(s, e, np.frombuffer(v, dtype=np.float16).astype(np.float32)) for s, e, v in rows]

    # ---- vectors filled after ingest (QA_SENTENCE_VECTORS=background, qa.indexing.fill) ------------------------

    def spans_waiting(self, kind: str) -> int:
        """How many `kind` spans are stored without a vector (counted in the partial index `spans_waiting`)."""
        return int(self._one("SELECT COUNT(*) FROM spans WHERE kind=%s AND octet_length(vector)=0", (kind,)))

    def fill_span_vectors(self, kind: str, embed: Callable[[list[str]], np.ndarray], limit: int) -> int | None:
        """Embed up to `limit` spans stored without a vector and store each vector only where its row is still
        there, unchanged (the same article version) and still without one: a re-ingest or delete meanwhile loses
        nothing and gets nothing stale. One replica fills at a time (a transaction advisory lock; None for the
        others); no row is locked while embedding, then the articles' document rows are locked (shared, in
        doc_id order: put and delete take them before any span row, so the two never deadlock) for the
        conditional updates. Returns how many were stored."""
        with self.db.connection() as conn:
            if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (FILL_LOCK,)).fetchone()[0]:  # type: ignore[index]
                return None
            rows = conn.execute(
                'SELECT s.doc_id, s.start, s."end", d.content_hash, substr(d.text, s.start + 1, s."end" - s.start)'
                " FROM spans s JOIN documents d ON d.doc_id = s.doc_id WHERE s.kind=%s AND octet_length(s.vector)=0"
                " LIMIT %s", (kind, limit)).fetchall()
            if not rows:
                return 0
            vectors = embed([r[4] for r in rows]).astype(np.float16)  # as put() stores them
            conn.execute("SELECT 1 FROM documents WHERE doc_id = ANY(%s) ORDER BY doc_id FOR SHARE",
                         (sorted({r[0] for r in rows}),))
            stored = 0
            for (doc_id, start, end, fingerprint, _), vector in zip(rows, vectors, strict=True):
                stored += conn.execute(
                    'UPDATE spans SET vector=%s WHERE kind=%s AND doc_id=%s AND start=%s AND "end"=%s'
                    " AND octet_length(vector)=0 AND EXISTS (SELECT 1 FROM documents d WHERE d.doc_id=spans.doc_id"
                    " AND d.content_hash=%s)", (vector.tobytes(), kind, doc_id, start, end, fingerprint)).rowcount
        return stored
