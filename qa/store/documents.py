"""The SQL store: cleaned articles, their chunks and enrichment rows, their text signatures and recorded copies,
and the change feed of the keyword index; one class on either database of the SQL layer (qa.db: a SQLite file in
the data folder, or PostgreSQL so that API processes on any number of hosts serve one corpus).

It is the source of truth for passage text and offsets; Chroma holds only vectors and the keyword index
(qa.store.keyword, tantivy) only what it derives from these rows. An article's document row, chunk rows,
enrichment rows and its `keyword_changes` row (the article's id with a new sequence number from `meta`) are
replaced in one transaction, so a reader (in any process) sees either the old or the new version, and the keyword
index replays exactly what it has not applied yet. The sequence number comes from one `meta` row updated first in
that transaction: on PostgreSQL its row lock orders writers, so numbers are given in commit order and a replica
never skips a change committed late (SQLite's write transactions are serial already).

On PostgreSQL each API process (replica) keeps its own tantivy index, in its data folder
(`keyword-index-pg/<database>/`), and catches up from the change feed before each search, so a write through
one replica is searchable through every other at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Connection, Text, cast, delete, exists, func, select, update

from qa.db import Database
from qa.db.schema import chunks, copies, documents, keyword_changes, meta, pending, signatures, spans
from qa.sources.article import Article
from qa.store import AlsoAt, ChunkRow, Copy, DocumentRow, Span, SpanRows, StoredChunk, StoredDocument
from qa.store.filters import ChunkFilter
from qa.store.keyword import KeywordIndex, KeywordRow, new_generation
from qa.store.locks import fill_turn

BATCH = 500  # ids per IN (...) list


def day_number(published: str | None) -> int:
    """A date as yyyymmdd (0 when unknown): the form date filters compare, here and in Chroma's metadata."""
    if not published:
        return 0
    return int(str(published)[:10].replace("-", ""))


def _batches(ids: list[str]) -> Iterator[list[str]]:
    for at in range(0, len(ids), BATCH):
        yield ids[at : at + BATCH]


def _text_of_chunk() -> Any:
    return func.substr(documents.c.text, chunks.c.start + 1, chunks.c.end - chunks.c.start)


class SqlStore:
    """The DocumentStore on a qa.db.Database (SQLite or PostgreSQL); thread-safe."""

    def __init__(self, database: Database, keyword_dir: Path | None = None) -> None:
        """keyword_dir: where this process keeps the keyword index (None: in memory, rebuilt at each start)."""
        self.db = database
        self.keyword = KeywordIndex(keyword_dir, self)

    def close_thread(self) -> None:
        """Nothing to close: connections go back to the pool after each call."""

    # ---- the keyword index's change feed (qa.store.keyword.ChangeFeed) --------------------------------------

    def keyword_head(self) -> tuple[str, int]:
        with self.db.read() as conn:
            found = dict(conn.execute(select(meta.c.key, meta.c.value).where(
                meta.c.key.in_(("keyword_generation", "keyword_seq")))).all())
        return found["keyword_generation"], int(found["keyword_seq"])

    def keyword_changes(self, after: int) -> tuple[list[str], int]:
        with self.db.read() as conn:
            rows = conn.execute(select(keyword_changes.c.doc_id, keyword_changes.c.seq)
                                .where(keyword_changes.c.seq > after)).all()
        return [r[0] for r in rows], max((int(r[1]) for r in rows), default=after)

    def keyword_rows(self, doc_ids: list[str] | None) -> Iterator[KeywordRow]:
        query = select(chunks.c.chunk_id, chunks.c.doc_id, chunks.c.source_key, chunks.c.day,
                       _text_of_chunk()).join_from(chunks, documents, documents.c.doc_id == chunks.c.doc_id)
        if doc_ids is not None:
            for part in _batches(doc_ids):
                with self.db.read() as conn:
                    rows = conn.execute(query.where(chunks.c.doc_id.in_(part))).all()
                yield from (KeywordRow(*r) for r in rows)
            return
        with self.db.read() as conn:  # the whole corpus, streamed (a server-side cursor on PostgreSQL)
            for row in conn.execution_options(yield_per=5000).execute(query):
                yield KeywordRow(*row)

    def keyword_catch_up(self) -> None:
        """Bring the keyword index up to the store (after an ingest batch, at start-up)."""
        self.keyword.catch_up()

    @staticmethod
    def _record_change(conn: Connection, doc_id: str, db: Database) -> None:
        """Tell the keyword index, in the article's own transaction, that the article changed."""
        seq = conn.execute(update(meta).where(meta.c.key == "keyword_seq")
                           .values(value=cast(cast(meta.c.value, BigInteger) + 1, Text))
                           .returning(meta.c.value)).scalar_one()
        upsert = db.insert(keyword_changes).values(doc_id=doc_id, seq=int(seq))
        conn.execute(upsert.on_conflict_do_update(index_elements=["doc_id"], set_={"seq": upsert.excluded.seq}))

    # ---- ingest bookkeeping -------------------------------------------------------------------------------

    def _scalar(self, query: Any) -> Any:
        with self.db.read() as conn:
            return conn.execute(query).scalar()

    def _column(self, query: Any) -> list[Any]:
        with self.db.read() as conn:
            return list(conn.execute(query).scalars())

    def content_hash(self, doc_id: str) -> str | None:
        return self._scalar(select(documents.c.content_hash).where(documents.c.doc_id == doc_id))

    def origin(self, doc_id: str) -> str | None:
        """The file name (or path) an indexed article came from, None when unknown."""
        return self._scalar(select(documents.c.path).where(documents.c.doc_id == doc_id))

    def embed_models(self) -> set[str]:
        return set(self._column(select(documents.c.embed_model).distinct()))

    def mark_pending(self, doc_id: str) -> None:
        """Record that Chroma is about to change for this doc, before it does (crash repair needs it)."""
        with self.db.write() as conn:
            conn.execute(self.db.insert(pending).values(doc_id=doc_id).on_conflict_do_nothing())

    def pending(self) -> list[str]:
        return self._column(select(pending.c.doc_id).order_by(pending.c.doc_id))

    def clear_pending(self, doc_id: str) -> None:
        with self.db.write() as conn:
            conn.execute(delete(pending).where(pending.c.doc_id == doc_id))

    # ---- writes -------------------------------------------------------------------------------------------

    def put(
        self, article: Article, fingerprint: str, chunk_rows: list[ChunkRow], enrichments: dict[str, SpanRows],
        embed_model: str, signature: bytes | None = None,
    ) -> None:
        """Replace one article: its document row, chunks, enrichment rows and text signature, in one
        transaction that also records the change for the keyword index and clears its pending mark (its
        recorded copies stay)."""
        published = article.published.isoformat() if article.published else None
        source_key, day = (article.source or "").casefold(), day_number(published)
        with self.db.write() as conn:
            self._record_change(conn, article.doc_id, self.db)  # first: the lock that orders writers
            docs_removed, chunks_removed = self._delete(conn, article.doc_id)
            self._add_counts(conn, 1 - docs_removed, len(chunk_rows) - chunks_removed)
            conn.execute(documents.insert().values(
                doc_id=article.doc_id, title=article.title, source=article.source, published=published,
                url=article.url, path=article.path, text=article.text, content_hash=fingerprint,
                n_chunks=len(chunk_rows), embed_model=embed_model, author=article.author))
            if signature is not None:
                conn.execute(signatures.insert().values(doc_id=article.doc_id, signature=signature))
            if chunk_rows:
                conn.execute(chunks.insert(), [
                    {"chunk_id": c.chunk_id, "doc_id": c.doc_id, "idx": c.idx, "start": c.start, "end": c.end,
                     "source_key": source_key, "day": day} for c in chunk_rows])
            for kind, rows in enrichments.items():
                vectors = rows.vectors.astype(np.float16)
                if rows.spans:
                    conn.execute(spans.insert(), [
                        {"kind": kind, "doc_id": article.doc_id, "start": s, "end": e, "vector": vectors[i].tobytes()}
                        for i, (s, e) in enumerate(rows.spans)])
            conn.execute(delete(pending).where(pending.c.doc_id == article.doc_id))

    def delete(self, doc_id: str) -> bool:
        """Remove an article and everything derived from it, the copies recorded for it included; False when
        it was not there."""
        with self.db.write() as conn:
            docs_removed, chunks_removed = self._delete(conn, doc_id)
            conn.execute(delete(copies).where(copies.c.doc_id == doc_id))
            conn.execute(delete(pending).where(pending.c.doc_id == doc_id))
            if docs_removed:
                self._record_change(conn, doc_id, self.db)
                self._add_counts(conn, -docs_removed, -chunks_removed)
        return bool(docs_removed)

    @staticmethod
    def _delete(conn: Connection, doc_id: str) -> tuple[int, int]:
        """Remove an article's rows; returns (documents, chunks) removed."""
        docs = conn.execute(delete(documents).where(documents.c.doc_id == doc_id)).rowcount
        removed = conn.execute(delete(chunks).where(chunks.c.doc_id == doc_id)).rowcount
        conn.execute(delete(spans).where(spans.c.doc_id == doc_id))
        conn.execute(delete(signatures).where(signatures.c.doc_id == doc_id))
        return docs, removed

    @staticmethod
    def _add_counts(conn: Connection, n_documents: int, n_chunks: int) -> None:
        for key, delta in (("documents", n_documents), ("chunks", n_chunks)):
            conn.execute(update(meta).where(meta.c.key == key)
                         .values(value=cast(cast(meta.c.value, BigInteger) + delta, Text)))

    def reset(self) -> None:
        """Delete every article (the index is being rebuilt, e.g. for another embedding model)."""
        with self.db.write() as conn:
            for table in (documents, chunks, spans, pending, signatures, copies, keyword_changes):
                conn.execute(delete(table))
            conn.execute(update(meta).where(meta.c.key.in_(("documents", "chunks"))).values(value="0"))
            conn.execute(update(meta).where(meta.c.key == "keyword_generation").values(value=new_generation()))

    # ---- reads --------------------------------------------------------------------------------------------

    def chunk_ids(self, doc_id: str) -> set[str]:
        return set(self._column(select(chunks.c.chunk_id).where(chunks.c.doc_id == doc_id)))

    def count(self) -> tuple[int, int]:
        """(documents, chunks) in the index."""
        with self.db.read() as conn:
            counts = dict(conn.execute(select(meta.c.key, meta.c.value)
                                       .where(meta.c.key.in_(("documents", "chunks")))).all())
        return int(counts["documents"]), int(counts["chunks"])

    def list_documents(self) -> list[DocumentRow]:
        query = select(documents.c.doc_id, documents.c.title, documents.c.source, documents.c.published,
                       documents.c.url, documents.c.n_chunks, func.length(documents.c.text).label("chars"),
                       documents.c.indexed_at).order_by(self.db.binary_order(documents.c.doc_id))
        with self.db.read() as conn:
            return [DocumentRow(**r._mapping) for r in conn.execute(query)]

    def _copies_query(self) -> Any:
        return select(copies.c.doc_id, copies.c.url, copies.c.source, copies.c.published) \
            .order_by(self.db.insertion_order(copies))

    def get_document(self, doc_id: str) -> StoredDocument | None:
        """One article with its metadata and `also_at`, the copies recorded for it (oldest first)."""
        with self.db.read() as conn:
            row = conn.execute(select(
                documents.c.doc_id, documents.c.title, documents.c.source, documents.c.published, documents.c.url,
                documents.c.author, documents.c.text, documents.c.n_chunks, documents.c.indexed_at,
            ).where(documents.c.doc_id == doc_id)).first()
            if row is None:
                return None
            found = conn.execute(self._copies_query().where(copies.c.doc_id == doc_id)).all()
        return StoredDocument(**row._mapping, also_at=[AlsoAt(r.url, r.source, r.published) for r in found])

    # ---- syndicated copies --------------------------------------------------------------------------------

    def signatures(self) -> dict[str, bytes]:
        """Every indexed article's text signature, by doc_id (as get_signatures() gives some)."""
        with self.db.read() as conn:
            return {r[0]: bytes(r[1]) for r in conn.execute(select(signatures.c.doc_id, signatures.c.signature))}

    def signature_rows(self) -> dict[str, int]:
        """Each signature's sequence number, new whenever the article is written again (to reload only those)."""
        with self.db.read() as conn:
            return {r[0]: int(r[1]) for r in conn.execute(select(signatures.c.doc_id, signatures.c.seq))}

    def get_signatures(self, doc_ids: Iterable[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for part in _batches(list(doc_ids)):
            with self.db.read() as conn:
                found.update((r[0], bytes(r[1])) for r in conn.execute(
                    select(signatures.c.doc_id, signatures.c.signature).where(signatures.c.doc_id.in_(part))))
        return found

    def put_signature(self, doc_id: str, data: bytes) -> None:
        """Store the signature of an article indexed before signatures were kept (a new sequence number)."""
        with self.db.write() as conn:
            if conn.execute(select(exists().where(documents.c.doc_id == doc_id))).scalar():
                conn.execute(delete(signatures).where(signatures.c.doc_id == doc_id))
                conn.execute(signatures.insert().values(doc_id=doc_id, signature=data))

    def add_copies(self, found: list[Copy]) -> int:
        """Record copies of kept articles that are still indexed (one transaction; a copy recorded again moves to
        the end); returns how many were recorded."""
        recorded = 0
        with self.db.write() as conn:
            for copy in found:
                if conn.execute(select(exists().where(documents.c.doc_id == copy.kept))).scalar():
                    conn.execute(delete(copies).where(copies.c.doc_id == copy.kept, copies.c.url == copy.url))
                    conn.execute(copies.insert().values(doc_id=copy.kept, url=copy.url, source=copy.source,
                                                        published=copy.published, copy_id=copy.copy_id))
                    recorded += 1
        return recorded

    def copies_of(self, doc_ids: Iterable[str]) -> dict[str, list[AlsoAt]]:
        """`also_at` of several articles at once (for citations)."""
        found: dict[str, list[AlsoAt]] = {}
        for part in _batches(list(dict.fromkeys(doc_ids))):
            with self.db.read() as conn:
                for r in conn.execute(self._copies_query().where(copies.c.doc_id.in_(part))):
                    found.setdefault(r.doc_id, []).append(AlsoAt(r.url, r.source, r.published))
        return found

    def get_chunks(self, chunk_ids: Iterable[str]) -> dict[str, StoredChunk]:
        """Chunks with their text and article metadata, for the ids that still exist."""
        query = select(chunks.c.chunk_id, chunks.c.doc_id, chunks.c.start, chunks.c.end, documents.c.title,
                       documents.c.source, documents.c.published, _text_of_chunk().label("text")) \
            .join_from(chunks, documents, documents.c.doc_id == chunks.c.doc_id)
        found: dict[str, StoredChunk] = {}
        for part in _batches(list(dict.fromkeys(chunk_ids))):
            with self.db.read() as conn:
                for r in conn.execute(query.where(chunks.c.chunk_id.in_(part))):
                    found[r.chunk_id] = StoredChunk(r.chunk_id, r.doc_id, r.title, r.source, r.published, r.text,
                                                    r.start, r.end)
        return found

    def keyword_search(self, query: str, n: int, where: ChunkFilter | None = None) -> list[tuple[str, float]]:
        """The n chunks that best match the query's terms (BM25 in the keyword index, caught up first)."""
        return self.keyword.search(query, n, where)

    def spans_in(self, kind: str, doc_id: str, start: int, end: int) -> list[Span]:
        """An enrichment's spans (and vectors) lying inside [start, end) of an article."""
        with self.db.read() as conn:
            rows = conn.execute(select(spans.c.start, spans.c.end, spans.c.vector).where(
                spans.c.kind == kind, spans.c.doc_id == doc_id, spans.c.start >= start, spans.c.end <= end,
            ).order_by(spans.c.start)).all()
        return [Span(s, e, np.frombuffer(v, dtype=np.float16).astype(np.float32)) for s, e, v in rows]

    # ---- vectors filled after ingest (QA_SENTENCE_VECTORS=background, qa.indexing.fill) ------------------------

    def spans_waiting(self, kind: str) -> int:
        """How many `kind` spans are stored without a vector (counted in the partial index `spans_waiting`)."""
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(spans).where(
                spans.c.kind == kind, self.db.byte_length(spans.c.vector) == 0)).scalar_one())

    def fill_span_vectors(self, kind: str, embed: Callable[[list[str]], np.ndarray], limit: int) -> int | None:
        """Embed up to `limit` spans stored without a vector and store each vector only where its row is still
        there, unchanged (the same article version) and still without one: a re-ingest or delete meanwhile loses
        nothing and gets nothing stale. One process fills at a time (qa.store.locks.fill_turn: None for the
        others); embedding runs outside any transaction, then the articles' document rows are locked (shared,
        in doc_id order on PostgreSQL: put and delete take them before any span row, so the two never
        deadlock) for the conditional updates. Returns how many were stored."""
        with fill_turn(self.db) as mine:
            if not mine:
                return None
            waiting = self.db.byte_length(spans.c.vector) == 0
            with self.db.read() as conn:
                text_of_span = func.substr(documents.c.text, spans.c.start + 1, spans.c.end - spans.c.start)
                rows = conn.execute(select(spans.c.doc_id, spans.c.start, spans.c.end, documents.c.content_hash,
                                           text_of_span)
                                    .join_from(spans, documents, documents.c.doc_id == spans.c.doc_id)
                                    .where(spans.c.kind == kind, waiting).limit(limit)).all()
            if not rows:
                return 0
            vectors = embed([r[4] for r in rows]).astype(np.float16)  # as put() stores them
            stored = 0
            with self.db.write() as conn:
                conn.execute(select(documents.c.doc_id).where(documents.c.doc_id.in_(sorted({r[0] for r in rows})))
                             .order_by(documents.c.doc_id).with_for_update(read=True))
                for (doc_id, start, end, fingerprint, _), vector in zip(rows, vectors, strict=True):
                    same_version = select(documents.c.doc_id).where(
                        documents.c.doc_id == spans.c.doc_id, documents.c.content_hash == fingerprint
                    ).correlate(spans).exists()
                    stored += conn.execute(update(spans).where(
                        spans.c.kind == kind, spans.c.doc_id == doc_id, spans.c.start == start, spans.c.end == end,
                        waiting, same_version).values(vector=vector.tobytes())).rowcount
            return stored


def sqlite_store(path: Path, keyword_dir: Path | None = None) -> SqlStore:
    """The store on a SQLite file (the data folder's docstore.sqlite), its keyword index beside it by default."""
    from qa.db import sqlite_url
    from qa.db.schema import DOCUMENTS

    return SqlStore(Database(sqlite_url(path), frozenset({DOCUMENTS})), keyword_dir or path.parent / "keyword-index")
