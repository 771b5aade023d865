"""The vector index on Chroma: embedded on disk by default, or a `chroma run` server via QA_CHROMA_URL.

chromadb is used directly rather than through llama-index's ChromaVectorStore because we need exact
control over ids (deterministic upserts), delete-by-doc, and `where` filters, and must never let Chroma
embed text itself (its default embedding function downloads a model).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from qa.errors import NotIndexed, StoreUnavailable
from qa.store import DenseHit
from qa.store.filters import ChunkFilter

UPSERT_BATCH = 2000
OVERFETCH = 10  # a filtered query first looks at this many nearest chunks per wanted result
READ_RETRY_DELAY = 0.25  # seconds before a failed read is tried a second (and last) time
log = logging.getLogger("qa.store")


def _describe(exc: Exception) -> str:
    """The failure's kind for an error message: the exception's class and, from a Chroma server, its HTTP
    status (never the URL, a path or the server's own text: the message reaches API clients)."""
    code = getattr(exc, "code", None)
    status = code() if callable(code) else None
    return f"{type(exc).__name__}, HTTP {status}" if isinstance(status, int) else type(exc).__name__


def chroma_client(chroma_url: str | None, path: Path) -> Any:
    """The Chroma client for a server URL (`chroma run`), or the embedded store in `path`; never telemetry."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if chroma_url:
        url = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
        return chromadb.HttpClient(
            host=url.hostname or "127.0.0.1",
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            settings=settings,
        )
    return chromadb.PersistentClient(path=str(path), settings=settings)


class ChromaIndex:
    """One Chroma collection (cosine space) tagged with the embedding model that filled it."""

    def __init__(self, embed_model: str, collection: str, path: Path, chroma_url: str | None = None) -> None:
        self.embed_model = embed_model
        self.collection_name = collection
        self.path = path
        self.chroma_url = chroma_url
        self._lock = threading.Lock()
        self._col: Any = None

    @property
    def is_server(self) -> bool:
        return self.chroma_url is not None

    def _connect(self) -> Any:
        client = chroma_client(self.chroma_url, self.path)
        col = client.get_or_create_collection(
            self.collection_name,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embed_model": self.embed_model},
            embedding_function=None,
        )
        built_with = (col.metadata or {}).get("embed_model")
        if built_with != self.embed_model:
            raise NotIndexed(
                f"collection '{self.collection_name}' was built with embedding model '{built_with}', but "
                f"'{self.embed_model}' is configured; re-index with `qa ingest --reset` or set QA_COLLECTION"
            )
        return col

    def _where(self) -> str:
        """Which store failed, for error messages (no URL or path: these go to API clients too)."""
        return "the Chroma server (QA_CHROMA_URL) does not answer" if self.chroma_url else "embedded Chroma failed"

    def _collection(self) -> Any:
        with self._lock:
            if self._col is None:
                try:
                    self._col = self._connect()
                except NotIndexed:
                    raise
                except Exception as exc:
                    raise StoreUnavailable(f"vector store unavailable: {self._where()} ({type(exc).__name__})") from exc
            return self._col

    def _call(self, fn: Any, read: bool = False) -> Any:
        """Run a collection call; on a failure drop the handle so the next call reconnects. A read is tried
        once more after READ_RETRY_DELAY s (a Chroma server under concurrent writes can fail one request),
        and the error then says that it was retried."""
        try:
            return self._once(fn)
        except StoreUnavailable as first:
            if not read:
                raise
            time.sleep(READ_RETRY_DELAY)
            try:
                result = self._once(fn)
            except StoreUnavailable as second:
                raise StoreUnavailable(
                    f"{second} - retried once after {READ_RETRY_DELAY:g} s, failed both times"
                ) from second.__cause__
            log.warning("a vector store read failed (%s) and succeeded when retried",
                        type(first.__cause__).__name__)
            return result

    def _once(self, fn: Any) -> Any:
        col = self._collection()
        try:
            return fn(col)
        except (NotIndexed, ValueError, TypeError):
            raise
        except Exception as exc:
            with self._lock:
                self._col = None
            raise StoreUnavailable(f"vector store unavailable: {self._where()} ({_describe(exc)})") from exc

    def reset(self) -> None:
        """Delete the collection (and, embedded, its folder), e.g. before re-indexing with another model."""
        with self._lock:
            self._col = None
        if self.chroma_url:
            client = chroma_client(self.chroma_url, self.path)
            if self.collection_name in [c.name for c in client.list_collections()]:
                client.delete_collection(self.collection_name)
        else:
            shutil.rmtree(self.path, ignore_errors=True)

    def check(self) -> int:
        """Connect (raising a clear error if the store is unusable) and return the vector count."""
        return self._call(lambda col: col.count(), read=True)

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict]) -> None:
        for start in range(0, len(ids), UPSERT_BATCH):
            end = start + UPSERT_BATCH
            self._call(
                lambda col, s=start, e=end: col.upsert(
                    ids=list(ids[s:e]), embeddings=vectors[s:e], metadatas=list(metadatas[s:e])
                )
            )

    def delete_doc(self, doc_id: str, keep: set[str] | None = None) -> None:
        """Delete a document's vectors, except the ids in `keep` (used when repairing after a crash)."""
        if not keep:
            self._call(lambda col: col.delete(where={"doc_id": doc_id}))
            return
        found = self._call(lambda col: col.get(where={"doc_id": doc_id}, include=[]), read=True)["ids"]
        stale = [i for i in found if i not in keep]
        if stale:
            self._call(lambda col: col.delete(ids=stale))

    def ids_for(self, doc_id: str) -> list[str]:
        return self._call(lambda col: col.get(where={"doc_id": doc_id}, include=[]), read=True)["ids"]

    def query(self, vector: np.ndarray, n: int, where: ChunkFilter | None = None) -> list[DenseHit]:
        """Nearest chunks by cosine similarity, optionally restricted by a metadata filter."""
        chroma_where = where.to_chroma() if where is not None else None
        if where is not None and chroma_where:
            hits = self._query_postfiltered(vector, n, where)
            if hits is not None:
                return hits
        result = self._call(
            lambda col: col.query(query_embeddings=[vector], n_results=n, where=chroma_where,
                                  include=["distances"]),
            read=True,
        )
        ids, distances = result["ids"][0], result["distances"][0]
        return [DenseHit(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]

    def _query_postfiltered(self, vector: np.ndarray, n: int, where: ChunkFilter) -> list[DenseHit] | None:
        """The filtered query answered from the unfiltered top n*OVERFETCH, or None to let Chroma filter.

        Chroma evaluates `where` against every record's metadata before searching, which grows with the
        collection (100k chunks: ~70-130 ms a query, against ~1 ms unfiltered). Fetching the nearest
        n*OVERFETCH ids (~3 ms), their metadata (~6 ms) and filtering here gives the same hits whenever at
        least n of them match (any match outside that list is farther than all of it), or whenever the
        list is the whole collection; otherwise (a very selective filter) Chroma filters as before.
        """
        fetch = n * OVERFETCH
        result = self._call(
            lambda col: col.query(query_embeddings=[vector], n_results=fetch, include=["distances"]), read=True
        )
        ids, distances = result["ids"][0], result["distances"][0]
        if not ids:
            return []
        got = self._call(lambda col: col.get(ids=ids, include=["metadatas"]), read=True)
        metadata = dict(zip(got["ids"], got["metadatas"], strict=True))
        hits = [DenseHit(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)
                if where.matches(metadata.get(i))]
        if len(hits) >= n or len(ids) < fetch:
            return hits[:n]
        return None
