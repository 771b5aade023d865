"""Stage 2, store: what is indexed. Two stores and no more: the SQL store (documents, chunks, ingest-time
enrichment rows and the keyword index's change feed, written in one transaction per article) and the vector
index (Chroma, embedded or server). Crash repair only ever reconciles these two; the keyword index (tantivy,
qa.store.keyword) is derived from the SQL store and replays its change feed by itself.

May import: qa.errors, qa.lexicon, qa.sources.article, qa.config. Filters arrive already translated for the
backend by the stores themselves (qa.store.filters.ChunkFilter: to_chroma, matches, to_sql, the keyword index's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from qa.sources.article import Article
from qa.store.filters import ChunkFilter


@dataclass(frozen=True)
class ChunkRow:
    """A chunk's place in its article; text is sliced from the article on demand."""

    chunk_id: str
    doc_id: str
    idx: int
    start: int
    end: int


@dataclass
class StoredChunk:
    """A chunk joined with its article's metadata: the record retrieval hands on (as a Passage)."""

    chunk_id: str
    doc_id: str
    title: str
    source: str | None
    published: str | None
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class SpanRows:
    """Spans of an article computed at ingest for an enrichment (e.g. sentence vectors), with one vector each."""

    spans: list[tuple[int, int]]
    vectors: np.ndarray


@dataclass(frozen=True)
class Span:
    """An enrichment's span of an article (e.g. a sentence) with its vector (empty when stored without one yet;
    None when split at answer time)."""

    start: int
    end: int
    vector: np.ndarray | None


@dataclass(frozen=True)
class AlsoAt:
    """Where else an indexed article was found (a copy recorded for it): what `also_at` lists."""

    url: str
    source: str | None
    published: str | None


@dataclass(frozen=True)
class DocumentRow:
    """An indexed article as GET /documents lists it."""

    doc_id: str
    title: str
    source: str | None
    published: str | None
    url: str | None
    n_chunks: int
    chars: int
    indexed_at: str


@dataclass(frozen=True)
class StoredDocument:
    """One indexed article with its cleaned text and `also_at`, the copies recorded for it (oldest first)."""

    doc_id: str
    title: str
    source: str | None
    published: str | None
    url: str | None
    author: str | None
    text: str
    n_chunks: int
    indexed_at: str
    also_at: list[AlsoAt]


@dataclass(frozen=True)
class Copy:
    """A syndicated copy of an indexed article, found elsewhere and not indexed itself: one entry of its
    `also_at`."""

    kept: str  # the indexed article's id
    url: str
    source: str | None
    published: str | None
    copy_id: str  # the id the copy would have had


@dataclass(frozen=True)
class DenseHit:
    """A chunk id with its cosine similarity to the query."""

    chunk_id: str
    score: float


class DocumentStore(Protocol):
    """Documents, chunks, enrichment rows and the keyword change feed; each article replaced in one transaction.
    keyword_search() asks the keyword index derived from them, caught up first."""

    def content_hash(self, doc_id: str) -> str | None: ...
    def origin(self, doc_id: str) -> str | None: ...
    def embed_models(self) -> set[str]: ...
    def mark_pending(self, doc_id: str) -> None: ...
    def pending(self) -> list[str]: ...
    def clear_pending(self, doc_id: str) -> None: ...
    def put(self, article: Article, fingerprint: str, chunks: list[ChunkRow], enrichments: dict[str, SpanRows],
            embed_model: str, signature: bytes | None = None) -> None: ...
    def delete(self, doc_id: str) -> bool: ...
    def chunk_ids(self, doc_id: str) -> set[str]: ...
    def count(self) -> tuple[int, int]: ...
    def list_documents(self) -> list[DocumentRow]: ...
    def get_document(self, doc_id: str) -> StoredDocument | None: ...
    def get_chunks(self, chunk_ids: Iterable[str]) -> dict[str, StoredChunk]: ...
    def keyword_search(self, query: str, n: int, where: ChunkFilter | None = None) -> list[tuple[str, float]]: ...
    def keyword_catch_up(self) -> None: ...
    def spans_in(self, kind: str, doc_id: str, start: int, end: int) -> list[Span]: ...
    def spans_waiting(self, kind: str) -> int: ...
    def fill_span_vectors(self, kind: str, embed: Callable[[list[str]], np.ndarray], limit: int) -> int | None: ...
    def close_thread(self) -> None: ...
    def reset(self) -> None: ...
    def signatures(self) -> dict[str, bytes]: ...
    def signature_rows(self) -> dict[str, int]: ...
    def get_signatures(self, doc_ids: Iterable[str]) -> dict[str, bytes]: ...
    def put_signature(self, doc_id: str, data: bytes) -> None: ...
    def add_copies(self, copies: list[Copy]) -> int: ...
    def copies_of(self, doc_ids: Iterable[str]) -> dict[str, list[AlsoAt]]: ...


class WriterLock(Protocol):
    """One ingest or delete at a time across every process writing the same stores (a file lock for the
    embedded store, an advisory lock for PostgreSQL); held while both stores change."""

    def hold(self) -> AbstractContextManager[None]: ...
    def held(self, conn: Any) -> bool: ...


class VectorIndex(Protocol):
    """Chunk vectors with `doc_id`/`source`/`published_day` metadata, tagged with the model that made them."""

    embed_model: str
    is_server: bool

    def check(self) -> int: ...
    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict]) -> None: ...
    def delete_doc(self, doc_id: str, keep: set[str] | None = None) -> None: ...
    def ids_for(self, doc_id: str) -> list[str]: ...
    def query(self, vector: np.ndarray, n: int, where: ChunkFilter | None = None) -> list[DenseHit]: ...
    def reset(self) -> None: ...
