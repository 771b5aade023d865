"""The ledger of what is indexed: cleaned articles, their chunks and sentence vectors, in SQLite.

It is the source of truth for passage text and offsets; Chroma holds the vectors and the keyword index is
rebuilt from here, so a crash in the middle of an ingest can always be repaired from this file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.documents import Article

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
  doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT, published TEXT, url TEXT, path TEXT,
  text TEXT NOT NULL, content_hash TEXT NOT NULL, n_chunks INTEGER NOT NULL, embed_model TEXT NOT NULL,
  indexed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS chunks (
  chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, idx INTEGER NOT NULL,
  start INTEGER NOT NULL, "end" INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS sentences (
  doc_id TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, vector BLOB NOT NULL,
  PRIMARY KEY (doc_id, start)
);
CREATE TABLE IF NOT EXISTS pending (doc_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('generation', '0');
"""


@dataclass(frozen=True)
class ChunkRow:
    """A chunk's place in its article; text is sliced from the article on demand."""

    chunk_id: str
    doc_id: str
    idx: int
    start: int
    end: int


@dataclass(frozen=True)
class StoredChunk:
    """A chunk joined with its article's metadata: what retrieval hands on."""

    chunk_id: str
    doc_id: str
    title: str
    source: str | None
    published: str | None
    text: str
    start: int
    end: int


class DocStore:
    """Thread-safe access to the SQLite ledger (one connection per thread, WAL for many readers)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conn().executescript(SCHEMA)
        self._init_counts()

    def _init_counts(self) -> None:
        """Row counts kept in `meta` (count() is asked on every /health; COUNT(*) reads the whole table:
        7 ms warm but 3 s on a cold cache at 1M chunks). Filled once for a ledger that predates them."""
        conn = self._conn()
        if conn.execute("SELECT COUNT(*) FROM meta WHERE key IN ('documents', 'chunks')").fetchone()[0] == 2:
            return
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO meta SELECT 'documents', COUNT(*) FROM documents")
            db.execute("INSERT OR IGNORE INTO meta SELECT 'chunks', COUNT(*) FROM chunks")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def close_thread(self) -> None:
        """Close the calling thread's connection (a worker thread about to end: its own would linger until GC)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()

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

    def generation(self) -> int:
        """A counter bumped by every change, so other processes know when to reload the keyword index."""
        row = self._conn().execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0])

    def content_hash(self, doc_id: str) -> str | None:
        row = self._conn().execute("SELECT content_hash FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
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

    def put(
        self,
        article: Article,
        fingerprint: str,
        chunks: list[ChunkRow],
        sentences: list[tuple[int, int]],
        sentence_vectors: np.ndarray,
        embed_model: str,
    ) -> None:
        """Replace one article, its chunks and sentences in a single transaction."""
        published = article.published.isoformat() if article.published else None
        vectors = sentence_vectors.astype(np.float16)
        with self._tx() as db:
            docs_removed, chunks_removed = self._delete(db, article.doc_id)
            self._add_counts(db, 1 - docs_removed, len(chunks) - chunks_removed)
            db.execute(
                "INSERT INTO documents (doc_id, title, source, published, url, path, text, content_hash, n_chunks,"
                " embed_model) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (article.doc_id, article.title, article.source, published, article.url, article.path,
                 article.text, fingerprint, len(chunks), embed_model),
            )
            db.executemany(
                'INSERT INTO chunks (chunk_id, doc_id, idx, start, "end") VALUES (?,?,?,?,?)',
                [(c.chunk_id, c.doc_id, c.idx, c.start, c.end) for c in chunks],
            )
            db.executemany(
                'INSERT INTO sentences (doc_id, start, "end", vector) VALUES (?,?,?,?)',
                [(article.doc_id, s, e, vectors[i].tobytes()) for i, (s, e) in enumerate(sentences)],
            )
            db.execute("DELETE FROM pending WHERE doc_id=?", (article.doc_id,))
            self._bump(db)

    def delete(self, doc_id: str) -> bool:
        """Remove an article and everything derived from it; False when it was not there."""
        with self._tx() as db:
            docs_removed, chunks_removed = self._delete(db, doc_id)
            db.execute("DELETE FROM pending WHERE doc_id=?", (doc_id,))
            if docs_removed:
                self._add_counts(db, -docs_removed, -chunks_removed)
                self._bump(db)
        return bool(docs_removed)

    @staticmethod
    def _delete(db: sqlite3.Connection, doc_id: str) -> tuple[int, int]:
        """Remove an article's rows; returns (documents, chunks) removed."""
        docs = db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,)).rowcount
        chunks = db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,)).rowcount
        db.execute("DELETE FROM sentences WHERE doc_id=?", (doc_id,))
        return docs, chunks

    @staticmethod
    def _add_counts(db: sqlite3.Connection, documents: int, chunks: int) -> None:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key='documents'", (documents,))
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key='chunks'", (chunks,))

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")

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
        row = self._conn().execute(
            "SELECT doc_id, title, source, published, url, text, n_chunks, indexed_at FROM documents"
            " WHERE doc_id=?", (doc_id,),
        ).fetchone()
        return dict(row) if row else None

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

    def iter_chunks(self) -> Iterator[tuple[str, str, str | None, str | None]]:
        """(chunk_id, text, source, published) for every chunk, in a stable order (keyword index builds).

        Ordered by chunk id. Each article's text is read once and sliced here, not once per chunk with
        substr() in a join: 2.8x faster at 1M chunks (10.5 s -> 3.8 s), and the keyword index is rebuilt
        from this after every ingest batch.
        """
        conn = self._conn()
        current: str | None = None
        text, source, published = "", None, None
        for chunk_id, doc_id, start, end in conn.execute(
            'SELECT chunk_id, doc_id, start, "end" FROM chunks ORDER BY chunk_id'
        ):
            if doc_id != current:
                row = conn.execute("SELECT text, source, published FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
                if row is None:
                    continue
                text, source, published = row
                current = doc_id
            yield chunk_id, text[start:end], source, published

    def sentences_in(self, doc_id: str, start: int, end: int) -> list[tuple[int, int, np.ndarray]]:
        """Sentence spans (and vectors) lying inside [start, end) of an article."""
        rows = self._conn().execute(
            'SELECT start, "end", vector FROM sentences WHERE doc_id=? AND start>=? AND "end"<=? ORDER BY start',
            (doc_id, start, end),
        )
        return [(s, e, np.frombuffer(v, dtype=np.float16).astype(np.float32)) for s, e, v in rows]
