"""The SQL store on SQLite: cleaned articles, their chunks and enrichment rows, and the change feed of the
keyword index.

It is the source of truth for passage text and offsets; Chroma holds only vectors and the keyword index
(qa.store.keyword, tantivy, in the data folder's `keyword-index/`) only what it derives from these rows. An
article's document row, chunk rows, enrichment rows and its `keyword_changes` row (the article's id with a
new sequence number from `meta`) are replaced in one transaction, so a reader (in any process) sees either the
old or the new version, and the keyword index replays exactly what it has not applied yet.

A data folder written before the keyword index moved to tantivy holds FTS5 tables (`chunk_terms` and its
fts5vocab views): they are dropped when the store opens, and the index is built from the stored chunks on
first use (the index folder is missing).
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from qa.sources.article import Article
from qa.sqlite_local import ThreadLocalSQLite
from qa.store import ChunkRow, SpanRows, StoredChunk
from qa.store.keyword import KeywordFilter, KeywordIndex, KeywordRow, new_generation

DOCUMENTS_TABLE = """CREATE TABLE IF NOT EXISTS documents (
  doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT, published TEXT, url TEXT, path TEXT,
  text TEXT NOT NULL, content_hash TEXT NOT NULL, n_chunks INTEGER NOT NULL, embed_model TEXT NOT NULL,
  indexed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, author TEXT
)"""
# MinHash signature of each article's text, for recognising syndicated copies (qa.sources.dedupe)
# (`seq` grows with every write and is never reused, so a process can tell which signatures changed)
SIGNATURES_TABLE = """CREATE TABLE IF NOT EXISTS signatures (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL UNIQUE, signature BLOB NOT NULL
)"""
# Copies of an indexed article found elsewhere and not indexed themselves: its `also_at` list
COPIES_TABLE = """CREATE TABLE IF NOT EXISTS copies (
  doc_id TEXT NOT NULL, url TEXT NOT NULL, source TEXT, published TEXT, copy_id TEXT NOT NULL,
  PRIMARY KEY (doc_id, url)
)"""
CHUNKS_TABLE = """CREATE TABLE IF NOT EXISTS chunks (
  id INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL, idx INTEGER NOT NULL,
  start INTEGER NOT NULL, "end" INTEGER NOT NULL, source_key TEXT NOT NULL DEFAULT '', day INTEGER NOT NULL DEFAULT 0,
  n_terms INTEGER NOT NULL DEFAULT 0
)"""
SPANS_TABLE = """CREATE TABLE IF NOT EXISTS spans (
  kind TEXT NOT NULL, doc_id TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, vector BLOB NOT NULL,
  PRIMARY KEY (kind, doc_id, start)
)"""
SCHEMA = ";\n".join([
    DOCUMENTS_TABLE,
    CHUNKS_TABLE,
    "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id)",
    SPANS_TABLE,
    # put() and delete() remove an article's spans by doc_id; the primary key starts with kind, so without
    # this index that DELETE scans every span row (3 per chunk: a full read of the table per article at 1M)
    "CREATE INDEX IF NOT EXISTS spans_doc ON spans(doc_id)",
    # spans stored without a vector (QA_SENTENCE_VECTORS=lazy or background), for the background fill to find
    # and count without reading every span row; a filled span leaves it
    "CREATE INDEX IF NOT EXISTS spans_waiting ON spans(kind, doc_id, start) WHERE length(vector) = 0",
    SIGNATURES_TABLE,
    COPIES_TABLE,
    "CREATE INDEX IF NOT EXISTS copies_copy ON copies(copy_id)",
    "CREATE TABLE IF NOT EXISTS pending (doc_id TEXT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # the keyword index's change feed: the latest change of each article (a delete too), by sequence number
    "CREATE TABLE IF NOT EXISTS keyword_changes (doc_id TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS keyword_changes_seq ON keyword_changes(seq)",
]) + ";"


def day_number(published: str | None) -> int:
    """A date as yyyymmdd (0 when unknown): the form date filters compare, here and in Chroma's metadata."""
    if not published:
        return 0
    return int(str(published)[:10].replace("-", ""))


LEGACY_KEYWORD_TABLES = ("chunk_terms_df", "chunk_terms_postings", "chunk_terms")  # FTS5, before tantivy


class SQLiteStore:
    """Thread-safe access to the SQLite store (one connection per thread, WAL for many readers)."""

    def __init__(self, path: Path, keyword_dir: Path | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = ThreadLocalSQLite(path, rows=True)
        self._migrate_legacy()
        self._conn().executescript(SCHEMA)
        self._add_columns()
        self._init_meta()
        self.keyword = KeywordIndex(keyword_dir or path.parent / "keyword-index", self)

    # ---- connection and transactions --------------------------------------------------------------------

    def close_thread(self) -> None:
        """Close the calling thread's connection (a worker thread about to end: its own would linger until GC)."""
        self._conn.close_thread()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # ---- schema -------------------------------------------------------------------------------------------

    def _migrate_legacy(self) -> None:
        """Bring a store written before the keyword index moved into SQLite up to this schema: chunks get an
        integer key (the FTS rowid) and filter columns, sentence vectors become `sentence` span rows."""
        conn = self._conn()
        legacy = [t for t in LEGACY_KEYWORD_TABLES
                  if conn.execute("SELECT 1 FROM sqlite_master WHERE name=?", (t,)).fetchone()]
        if legacy:  # the keyword index lives in tantivy now, built from the chunks on first use
            with self._tx() as db:
                for table in legacy:
                    db.execute(f"DROP TABLE {table}")
                db.execute("DELETE FROM meta WHERE key IN ('analyzer', 'terms')")
        columns = {r[1] for r in conn.execute("PRAGMA table_info(chunks)")}
        if "id" in columns and "n_terms" not in columns:
            conn.execute("ALTER TABLE chunks ADD COLUMN n_terms INTEGER NOT NULL DEFAULT 0")
        if not columns or "id" in columns:
            return
        with self._tx() as db:
            db.execute("ALTER TABLE chunks RENAME TO chunks_legacy")
            db.execute("DROP INDEX IF EXISTS chunks_doc")
            db.execute(CHUNKS_TABLE)
            db.execute(
                'INSERT INTO chunks (chunk_id, doc_id, idx, start, "end", source_key, day)'
                " SELECT c.chunk_id, c.doc_id, c.idx, c.start, c.\"end\", lower(COALESCE(d.source, '')),"
                " COALESCE(CAST(replace(substr(d.published, 1, 10), '-', '') AS INTEGER), 0)"
                " FROM chunks_legacy c JOIN documents d ON d.doc_id = c.doc_id ORDER BY c.chunk_id"
            )
            db.execute("DROP TABLE chunks_legacy")
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name='sentences'").fetchone():
                db.execute(SPANS_TABLE)
                db.execute('INSERT INTO spans SELECT \'sentence\', doc_id, start, "end", vector FROM sentences')
                db.execute("DROP TABLE sentences")
            db.execute("DELETE FROM meta WHERE key IN ('generation', 'analyzer')")

    def _add_columns(self) -> None:
        """Columns added since a store was created: `author` (web articles and HTML pages name one)."""
        conn = self._conn()
        if "author" not in {r[1] for r in conn.execute("PRAGMA table_info(documents)")}:
            conn.execute("ALTER TABLE documents ADD COLUMN author TEXT")

    def _init_meta(self) -> None:
        """Row counts kept in `meta` (count() is asked on every /health; COUNT(*) reads the whole table), and
        the keyword change feed's sequence and generation."""
        conn = self._conn()
        if conn.execute("SELECT COUNT(*) FROM meta WHERE key IN ('documents', 'chunks', 'keyword_seq',"
                        " 'keyword_generation')").fetchone()[0] != 4:
            with self._tx() as db:
                db.execute("INSERT OR IGNORE INTO meta SELECT 'documents', COUNT(*) FROM documents")
                db.execute("INSERT OR IGNORE INTO meta SELECT 'chunks', COUNT(*) FROM chunks")
                db.execute("INSERT OR IGNORE INTO meta VALUES ('keyword_seq', '0')")
                db.execute("INSERT OR IGNORE INTO meta VALUES ('keyword_generation', ?)", (new_generation(),))

    @staticmethod
    def _record_change(db: sqlite3.Connection, doc_id: str) -> None:
        """Tell the keyword index, in the article's own transaction, that the article changed."""
        seq = db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='keyword_seq'"
                         " RETURNING value").fetchone()[0]
        db.execute("INSERT OR REPLACE INTO keyword_changes VALUES (?, ?)", (doc_id, int(seq)))

    # ---- the keyword index's change feed (qa.store.keyword.ChangeFeed) --------------------------------------

    def keyword_head(self) -> tuple[str, int]:
        meta = dict(self._conn().execute(
            "SELECT key, value FROM meta WHERE key IN ('keyword_generation', 'keyword_seq')").fetchall())
        return meta["keyword_generation"], int(meta["keyword_seq"])

    def keyword_changes(self, after: int) -> tuple[list[str], int]:
        rows = self._conn().execute("SELECT doc_id, seq FROM keyword_changes WHERE seq > ?", (after,)).fetchall()
        return [r[0] for r in rows], max((r[1] for r in rows), default=after)

    def keyword_rows(self, doc_ids: list[str] | None) -> Iterator[KeywordRow]:
        conn = self._conn()
        if doc_ids is None:
            doc_ids = [r[0] for r in conn.execute("SELECT doc_id FROM documents")]
        for at in range(0, len(doc_ids), 200):
            part = doc_ids[at : at + 200]
            marks = ",".join("?" * len(part))
            rows = conn.execute(
                'SELECT c.chunk_id, c.doc_id, c.source_key, c.day, substr(d.text, c.start + 1, c."end" - c.start)'
                f" FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE c.doc_id IN ({marks})",
                part,
            ).fetchall()
            yield from (KeywordRow(*r) for r in rows)

    def keyword_catch_up(self) -> None:
        """Bring the keyword index up to the store (after an ingest batch, at start-up)."""
        self.keyword.catch_up()

    # ---- ingest bookkeeping -------------------------------------------------------------------------------

    def content_hash(self, doc_id: str) -> str | None:
        row = self._conn().execute("SELECT content_hash FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def origin(self, doc_id: str) -> str | None:
        """The file name (or path) an indexed article came from, None when unknown."""
        row = self._conn().execute("SELECT path FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def embed_models(self) -> set[str]:
        return {r[0] for r in self._conn().execute("SELECT DISTINCT embed_model FROM documents")}

    def mark_pending(self, doc_id: str) -> None:
        """Record that Chroma is about to change for this doc, before it does (crash repair needs it)."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO pending VALUES (?)", (doc_id,))

    def pending(self) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT doc_id FROM pending")]

    def clear_pending(self, doc_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM pending WHERE doc_id=?", (doc_id,))

    # ---- writes -------------------------------------------------------------------------------------------

    def put(
        self, article: Article, fingerprint: str, chunks: list[ChunkRow], enrichments: dict[str, SpanRows],
        embed_model: str, signature: bytes | None = None,
    ) -> None:
        """Replace one article: its document row, chunks, enrichment rows and text signature, in one
        transaction that also records the change for the keyword index and clears its pending mark (its
        recorded copies stay)."""
        published = article.published.isoformat() if article.published else None
        source_key, day = (article.source or "").casefold(), day_number(published)
        with self._tx() as db:
            docs_removed, chunks_removed = self._delete(db, article.doc_id)
            self._add_counts(db, 1 - docs_removed, len(chunks) - chunks_removed)
            self._record_change(db, article.doc_id)
            db.execute(
                "INSERT INTO documents (doc_id, title, source, published, url, path, text, content_hash, n_chunks,"
                " embed_model, author) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (article.doc_id, article.title, article.source, published, article.url, article.path,
                 article.text, fingerprint, len(chunks), embed_model, article.author),
            )
            if signature is not None:
                db.execute("INSERT INTO signatures (doc_id, signature) VALUES (?, ?)", (article.doc_id, signature))
            db.executemany(
                'INSERT INTO chunks (chunk_id, doc_id, idx, start, "end", source_key, day) VALUES (?,?,?,?,?,?,?)',
                [(c.chunk_id, c.doc_id, c.idx, c.start, c.end, source_key, day) for c in chunks],
            )
            for kind, rows in enrichments.items():
                vectors = rows.vectors.astype(np.float16)
                db.executemany(
                    'INSERT INTO spans (kind, doc_id, start, "end", vector) VALUES (?,?,?,?,?)',
                    [(kind, article.doc_id, s, e, vectors[i].tobytes()) for i, (s, e) in enumerate(rows.spans)],
                )
            db.execute("DELETE FROM pending WHERE doc_id=?", (article.doc_id,))

    def delete(self, doc_id: str) -> bool:
        """Remove an article and everything derived from it, the copies recorded for it included; False when
        it was not there."""
        with self._tx() as db:
            docs_removed, chunks_removed = self._delete(db, doc_id)
            db.execute("DELETE FROM copies WHERE doc_id=?", (doc_id,))
            db.execute("DELETE FROM pending WHERE doc_id=?", (doc_id,))
            if docs_removed:
                self._add_counts(db, -docs_removed, -chunks_removed)
                self._record_change(db, doc_id)
        return bool(docs_removed)

    @staticmethod
    def _delete(db: sqlite3.Connection, doc_id: str) -> tuple[int, int]:
        """Remove an article's rows; returns (documents, chunks) removed."""
        docs = db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,)).rowcount
        removed = db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,)).rowcount
        db.execute("DELETE FROM spans WHERE doc_id=?", (doc_id,))
        db.execute("DELETE FROM signatures WHERE doc_id=?", (doc_id,))
        return docs, removed

    @staticmethod
    def _add_counts(db: sqlite3.Connection, documents: int, chunks: int) -> None:
        for key, delta in (("documents", documents), ("chunks", chunks)):
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key=?", (delta, key))

    def reset(self) -> None:
        """Delete every article (the index is being rebuilt, e.g. for another embedding model)."""
        with self._tx() as db:
            for table in ("documents", "chunks", "spans", "pending", "signatures", "copies", "keyword_changes"):
                db.execute(f"DELETE FROM {table}")
            db.execute("UPDATE meta SET value='0' WHERE key IN ('documents', 'chunks')")
            db.execute("UPDATE meta SET value=? WHERE key='keyword_generation'", (new_generation(),))

    # ---- reads --------------------------------------------------------------------------------------------

    def chunk_ids(self, doc_id: str) -> set[str]:
        return {r[0] for r in self._conn().execute("SELECT chunk_id FROM chunks WHERE doc_id=?", (doc_id,))}

    def count(self) -> tuple[int, int]:
        """(documents, chunks) in the index."""
        counts = dict(self._conn().execute("SELECT key, value FROM meta WHERE key IN ('documents', 'chunks')"))
        return int(counts["documents"]), int(counts["chunks"])

    def list_documents(self) -> list[dict]:
        rows = self._conn().execute(
            "SELECT doc_id, title, source, published, url, n_chunks, length(text) AS chars, indexed_at"
            " FROM documents ORDER BY doc_id"
        )
        return [dict(r) for r in rows]

    def get_document(self, doc_id: str) -> dict | None:
        """One article with its metadata and `also_at`, the copies recorded for it (oldest first)."""
        conn = self._conn()
        row = conn.execute(
            "SELECT doc_id, title, source, published, url, author, text, n_chunks, indexed_at FROM documents"
            " WHERE doc_id=?", (doc_id,),
        ).fetchone()
        if row is None:
            return None
        copies = conn.execute("SELECT url, source, published FROM copies WHERE doc_id=? ORDER BY rowid", (doc_id,))
        return {**dict(row), "also_at": [dict(c) for c in copies]}

    # ---- syndicated copies --------------------------------------------------------------------------------

    def signatures(self) -> list[tuple[str, bytes]]:
        """Every indexed article's text signature."""
        return [(r[0], r[1]) for r in self._conn().execute("SELECT doc_id, signature FROM signatures")]

    def signature_rows(self) -> dict[str, int]:
        """Each signature's sequence number, new whenever the article is written again (to reload only those)."""
        return {r[0]: r[1] for r in self._conn().execute("SELECT doc_id, seq FROM signatures")}

    def get_signatures(self, doc_ids: Iterable[str]) -> dict[str, bytes]:
        ids = list(doc_ids)
        found: dict[str, bytes] = {}
        for at in range(0, len(ids), 500):
            part = ids[at : at + 500]
            marks = ",".join("?" * len(part))
            found.update((r[0], r[1]) for r in self._conn().execute(
                f"SELECT doc_id, signature FROM signatures WHERE doc_id IN ({marks})", part))
        return found

    def put_signature(self, doc_id: str, data: bytes) -> None:
        """Store the signature of an article indexed before signatures were kept."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM documents WHERE doc_id=?", (doc_id,)).fetchone():
                db.execute("INSERT OR REPLACE INTO signatures (doc_id, signature) VALUES (?, ?)", (doc_id, data))

    def add_copies(self, copies: list[tuple[str, str, str | None, str | None, str]]) -> int:
        """Record copies as (kept doc id, url, source, published, copy's doc id), for kept articles that are
        still indexed (one transaction); returns how many were recorded."""
        recorded = 0
        with self._tx() as db:
            for kept, url, source, published, copy_id in copies:
                if db.execute("SELECT 1 FROM documents WHERE doc_id=?", (kept,)).fetchone():
                    db.execute("INSERT OR REPLACE INTO copies VALUES (?,?,?,?,?)",
                               (kept, url, source, published, copy_id))
                    recorded += 1
        return recorded

    def copies_of(self, doc_ids: Iterable[str]) -> dict[str, list[dict]]:
        """`also_at` of several articles at once (for citations)."""
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        found: dict[str, list[dict]] = {}
        for r in self._conn().execute(
            f"SELECT doc_id, url, source, published FROM copies WHERE doc_id IN ({marks}) ORDER BY rowid", ids
        ):
            found.setdefault(r[0], []).append({"url": r[1], "source": r[2], "published": r[3]})
        return found

    def get_chunks(self, chunk_ids: Iterable[str]) -> dict[str, StoredChunk]:
        """Chunks with their text and article metadata, for the ids that still exist."""
        ids = list(dict.fromkeys(chunk_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._conn().execute(
            f'SELECT c.chunk_id, c.doc_id, c.start, c."end", d.title, d.source, d.published,'
            f' substr(d.text, c.start + 1, c."end" - c.start) AS text'
            f" FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE c.chunk_id IN ({marks})",
            ids,
        )
        return {
            r["chunk_id"]: StoredChunk(r["chunk_id"], r["doc_id"], r["title"], r["source"], r["published"],
                                       r["text"], r["start"], r["end"])
            for r in rows
        }

    def keyword_search(self, query: str, n: int, where: KeywordFilter | None = None) -> list[tuple[str, float]]:
        """The n chunks that best match the query's terms (BM25 in the keyword index, caught up first)."""
        return self.keyword.search(query, n, where)

    def spans_in(self, kind: str, doc_id: str, start: int, end: int) -> list[tuple[int, int, np.ndarray]]:
        """An enrichment's spans (and vectors) lying inside [start, end) of an article."""
        rows = self._conn().execute(
            'SELECT start, "end", vector FROM spans WHERE kind=? AND doc_id=? AND start>=? AND "end"<=?'
            " ORDER BY start",
            (kind, doc_id, start, end),
        )
        return [(s, e, np.frombuffer(v, dtype=np.float16).astype(np.float32)) for s, e, v in rows]

    # ---- vectors filled after ingest (QA_SENTENCE_VECTORS=background, qa.indexing.fill) ------------------------

    def spans_waiting(self, kind: str) -> int:
        """How many `kind` spans are stored without a vector (counted in the partial index `spans_waiting`)."""
        return self._conn().execute("SELECT COUNT(*) FROM spans WHERE kind=? AND length(vector)=0",
                                    (kind,)).fetchone()[0]

    def fill_span_vectors(self, kind: str, embed: Callable[[list[str]], np.ndarray], limit: int) -> int | None:
        """Embed up to `limit` spans stored without a vector and store each vector only where its row is still
        there, unchanged (the same article version) and still without one: a re-ingest or delete meanwhile loses
        nothing and gets nothing stale. Embedding runs outside any transaction. Returns how many were stored;
        None while another process on this data folder is filling (a non-blocking file lock)."""
        with open(self.path.with_name(self.path.name + ".fill-lock"), "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            rows = self._conn().execute(
                'SELECT s.doc_id, s.start, s."end", d.content_hash, substr(d.text, s.start + 1, s."end" - s.start)'
                " FROM spans s JOIN documents d ON d.doc_id = s.doc_id WHERE s.kind=? AND length(s.vector)=0"
                " LIMIT ?", (kind, limit)).fetchall()
            if not rows:
                return 0
            vectors = embed([r[4] for r in rows]).astype(np.float16)  # as put() stores them
            stored = 0
            with self._tx() as db:
                for (doc_id, start, end, fingerprint, _), vector in zip(rows, vectors, strict=True):
                    stored += db.execute(
                        'UPDATE spans SET vector=? WHERE kind=? AND doc_id=? AND start=? AND "end"=?'
                        " AND length(vector)=0 AND EXISTS (SELECT 1 FROM documents d WHERE d.doc_id=spans.doc_id"
                        " AND d.content_hash=?)", (vector.tobytes(), kind, doc_id, start, end, fingerprint)).rowcount
            return stored
