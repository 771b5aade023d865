"""The SQL store on SQLite: cleaned articles, their chunks, the keyword index (FTS5) and enrichment rows.

It is the source of truth for passage text and offsets; Chroma holds only vectors. An article's document
row, chunk rows, keyword-index rows and enrichment rows are replaced in one transaction, so a reader (in
any process) sees either the old or the new version, and crash repair only has Chroma to reconcile.

The keyword index is an FTS5 table without content of its own: each chunk is indexed as the terms
qa.lexicon.terms() makes of it (Snowball stems, no stopwords), joined by spaces, so indexing and querying
share one analysis and the text is stored once (in `documents`). FTS5 ranks with BM25 (k1=1.2, b=0.75).
Removing a chunk from a contentless FTS5 table needs the terms it was indexed with; they are re-derived
from the stored article text in the same transaction (the analyzer version is recorded in `meta`, and a
change rebuilds the index when the store opens).

Ranking is Lucene's BM25 (k1=1.5, b=0.75, idf = ln(1 + (N - df + 0.5) / (df + 0.5))), computed in SQL from
FTS5's own postings (fts5vocab), not FTS5's built-in bm25(): that one fixes k1=1.2 and uses an idf that is
zero for any term in half the chunks or more, which on a small corpus (the 20-chunk seeds) throws away most
query terms. Measured on `qa eval`: with the built-in rank hit@3 fell 0.87 -> 0.82, hit@5 0.95 -> 0.92, gold
0.92 -> 0.89 and refusal precision 0.92 -> 0.86; with this one the keyword top 10 equals the old bm25s index
on all 51 eval questions, and every metric is unchanged.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from qa.lexicon import ANALYZER_VERSION, terms
from qa.sources.article import Article
from qa.sqlite_local import ThreadLocalSQLite
from qa.store import ChunkRow, SpanRows, SqlFilter, StoredChunk

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
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunk_terms"
    " USING fts5(terms, content='', tokenize=\"unicode61 remove_diacritics 0 tokenchars '_'\")",
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunk_terms_df USING fts5vocab(chunk_terms, 'row')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunk_terms_postings USING fts5vocab(chunk_terms, 'instance')",
    SPANS_TABLE,
    # put() and delete() remove an article's spans by doc_id; the primary key starts with kind, so without
    # this index that DELETE scans every span row (3 per chunk: a full read of the table per article at 1M)
    "CREATE INDEX IF NOT EXISTS spans_doc ON spans(doc_id)",
    SIGNATURES_TABLE,
    COPIES_TABLE,
    "CREATE INDEX IF NOT EXISTS copies_copy ON copies(copy_id)",
    "CREATE TABLE IF NOT EXISTS pending (doc_id TEXT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]) + ";"


def day_number(published: str | None) -> int:
    """A date as yyyymmdd (0 when unknown): the form date filters compare, here and in Chroma's metadata."""
    if not published:
        return 0
    return int(str(published)[:10].replace("-", ""))


BM25_K1 = 1.5
BM25_B = 0.75


def indexed_terms(text: str) -> list[str]:
    """What the keyword index stores for a chunk (as space-separated terms)."""
    return terms(text)


class SQLiteStore:
    """Thread-safe access to the SQLite store (one connection per thread, WAL for many readers)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = ThreadLocalSQLite(path, rows=True)
        self._migrate_legacy()
        self._conn().executescript(SCHEMA)
        self._add_columns()
        self._init_meta()

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
        columns = {r[1] for r in conn.execute("PRAGMA table_info(chunks)")}
        if "id" in columns and "n_terms" not in columns:
            with self._tx() as db:
                db.execute("ALTER TABLE chunks ADD COLUMN n_terms INTEGER NOT NULL DEFAULT 0")
                db.execute("DELETE FROM meta WHERE key='analyzer'")  # the rebuild fills n_terms
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
        the keyword index rebuilt when it was made by another analyzer (or never)."""
        conn = self._conn()
        if conn.execute("SELECT COUNT(*) FROM meta WHERE key IN ('documents', 'chunks', 'terms')").fetchone()[0] != 3:
            with self._tx() as db:
                db.execute("INSERT OR IGNORE INTO meta SELECT 'documents', COUNT(*) FROM documents")
                db.execute("INSERT OR IGNORE INTO meta SELECT 'chunks', COUNT(*) FROM chunks")
                db.execute("INSERT OR IGNORE INTO meta SELECT 'terms', COALESCE(SUM(n_terms), 0) FROM chunks")
        row = conn.execute("SELECT value FROM meta WHERE key='analyzer'").fetchone()
        if row is None or row[0] != ANALYZER_VERSION:
            self.rebuild_keyword_index()

    def rebuild_keyword_index(self) -> int:
        """Index every chunk again (a new analyzer, or a store from before the index); returns chunks indexed."""
        count = total = 0
        with self._tx() as db:
            db.execute("INSERT INTO chunk_terms(chunk_terms) VALUES ('delete-all')")
            for doc_id, text in db.execute("SELECT doc_id, text FROM documents").fetchall():
                rows = db.execute('SELECT id, start, "end" FROM chunks WHERE doc_id=?', (doc_id,)).fetchall()
                analysed = [(i, indexed_terms(text[s:e])) for i, s, e in rows]
                db.executemany("INSERT INTO chunk_terms(rowid, terms) VALUES (?, ?)",
                               [(i, " ".join(t)) for i, t in analysed])
                db.executemany("UPDATE chunks SET n_terms=? WHERE id=?", [(len(t), i) for i, t in analysed])
                count += len(rows)
                total += sum(len(t) for _, t in analysed)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('terms', ?)", (str(total),))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('analyzer', ?)", (ANALYZER_VERSION,))
        return count

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
        """Replace one article: its document row, chunks, keyword-index rows, enrichment rows and text
        signature, in one transaction that also clears its pending mark (its recorded copies stay)."""
        published = article.published.isoformat() if article.published else None
        source_key, day = (article.source or "").casefold(), day_number(published)
        with self._tx() as db:
            docs_removed, chunks_removed, terms_removed = self._delete(db, article.doc_id)
            analysed = [indexed_terms(article.text[c.start : c.end]) for c in chunks]
            self._add_counts(db, 1 - docs_removed, len(chunks) - chunks_removed,
                             sum(map(len, analysed)) - terms_removed)
            db.execute(
                "INSERT INTO documents (doc_id, title, source, published, url, path, text, content_hash, n_chunks,"
                " embed_model, author) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (article.doc_id, article.title, article.source, published, article.url, article.path,
                 article.text, fingerprint, len(chunks), embed_model, article.author),
            )
            if signature is not None:
                db.execute("INSERT INTO signatures (doc_id, signature) VALUES (?, ?)", (article.doc_id, signature))
            for c, chunk_terms in zip(chunks, analysed, strict=True):
                cursor = db.execute(
                    'INSERT INTO chunks (chunk_id, doc_id, idx, start, "end", source_key, day, n_terms)'
                    " VALUES (?,?,?,?,?,?,?,?)",
                    (c.chunk_id, c.doc_id, c.idx, c.start, c.end, source_key, day, len(chunk_terms)),
                )
                db.execute("INSERT INTO chunk_terms(rowid, terms) VALUES (?, ?)",
                           (cursor.lastrowid, " ".join(chunk_terms)))
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
            docs_removed, chunks_removed, terms_removed = self._delete(db, doc_id)
            db.execute("DELETE FROM copies WHERE doc_id=?", (doc_id,))
            db.execute("DELETE FROM pending WHERE doc_id=?", (doc_id,))
            if docs_removed:
                self._add_counts(db, -docs_removed, -chunks_removed, -terms_removed)
        return bool(docs_removed)

    @staticmethod
    def _delete(db: sqlite3.Connection, doc_id: str) -> tuple[int, int, int]:
        """Remove an article's rows (keyword-index rows too); returns (documents, chunks, terms) removed."""
        row = db.execute("SELECT text FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        chunks = db.execute('SELECT id, start, "end", n_terms FROM chunks WHERE doc_id=?', (doc_id,)).fetchall()
        if row is not None:
            db.executemany("INSERT INTO chunk_terms(chunk_terms, rowid, terms) VALUES ('delete', ?, ?)",
                           [(i, " ".join(indexed_terms(row[0][s:e]))) for i, s, e, _ in chunks])
        docs = db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,)).rowcount
        removed = db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,)).rowcount
        db.execute("DELETE FROM spans WHERE doc_id=?", (doc_id,))
        db.execute("DELETE FROM signatures WHERE doc_id=?", (doc_id,))
        return docs, removed, sum(n for *_, n in chunks)

    @staticmethod
    def _add_counts(db: sqlite3.Connection, documents: int, chunks: int, terms_added: int) -> None:
        for key, delta in (("documents", documents), ("chunks", chunks), ("terms", terms_added)):
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key=?", (delta, key))

    def reset(self) -> None:
        """Delete every article (the index is being rebuilt, e.g. for another embedding model)."""
        with self._tx() as db:
            for table in ("documents", "chunks", "spans", "pending", "signatures", "copies"):
                db.execute(f"DELETE FROM {table}")
            db.execute("INSERT INTO chunk_terms(chunk_terms) VALUES ('delete-all')")
            db.execute("UPDATE meta SET value='0' WHERE key IN ('documents', 'chunks', 'terms')")

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

    def keyword_search(self, query: str, n: int, where: SqlFilter | None = None) -> list[tuple[str, float]]:
        """The n chunks that best match the query's terms (BM25, higher is better), optionally filtered.

        A query term counts as often as it occurs in the query (as bm25s scored it before). Ties go to the
        smaller chunk id, so results are stable.
        """
        wanted = Counter(terms(query))
        if not wanted:
            return []
        conn = self._conn()
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('chunks', 'terms')"))
        n_chunks, n_terms = int(meta["chunks"]), int(meta["terms"])
        if not n_chunks or not n_terms:
            return []
        marks = ",".join("?" * len(wanted))
        df = dict(conn.execute(f"SELECT term, doc FROM chunk_terms_df WHERE term IN ({marks})", list(wanted)))
        weights = [(t, q * math.log(1 + (n_chunks - df[t] + 0.5) / (df[t] + 0.5))) for t, q in wanted.items()
                   if t in df]
        if not weights:
            return []
        clause, params = where or ("", [])
        postings = " UNION ALL ".join("SELECT doc, term, ? AS weight FROM chunk_terms_postings WHERE term = ?"
                                      for _ in weights)
        rows = conn.execute(
            f"SELECT c.chunk_id, SUM(p.weight * p.tf / (p.tf + ? * (1 - ? + ? * c.n_terms / ?))) AS score"
            f" FROM (SELECT doc, weight, COUNT(*) AS tf FROM ({postings}) GROUP BY doc, term) p"
            f" JOIN chunks c ON c.id = p.doc {'WHERE ' + clause if clause else ''}"
            f" GROUP BY p.doc ORDER BY score DESC, c.chunk_id LIMIT ?",
            [BM25_K1, BM25_B, BM25_B, n_terms / n_chunks, *[v for t, w in weights for v in (w, t)], *params, n],
        )
        return [(chunk_id, float(score)) for chunk_id, score in rows]

    def spans_in(self, kind: str, doc_id: str, start: int, end: int) -> list[tuple[int, int, np.ndarray]]:
        """An enrichment's spans (and vectors) lying inside [start, end) of an article."""
        rows = self._conn().execute(
            'SELECT start, "end", vector FROM spans WHERE kind=? AND doc_id=? AND start>=? AND "end"<=?'
            " ORDER BY start",
            (kind, doc_id, start, end),
        )
        return [(s, e, np.frombuffer(v, dtype=np.float16).astype(np.float32)) for s, e, v in rows]
