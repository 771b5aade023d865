"""Prototypes of two changes proposed for qa/index.py, so `bench.ingest --variant` can measure them.

- BatchedIndexer: the Chroma writes of an embedding group (~25 articles) in one upsert instead of a delete
  and an upsert per article (deletes only for articles that were indexed before). Same crash-safety order
  per article: marked pending -> vectors in Chroma -> docstore row (which clears the mark).
- PipelinedIndexer: the above, with a group's writes done by a background thread while the next group is
  read, chunked and embedded (onnxruntime and SQLite release the GIL), at most one group in flight.

Not used by the service; the lead decides whether qa/index.py adopts them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from qa.docstore import ChunkRow
from qa.documents import Article
from qa.index import Indexer, IngestReport, _metadata

Group = list[tuple[Article, list[ChunkRow], list[tuple[int, int]]]]


class BatchedIndexer(Indexer):
    def _embed(self, group: Group) -> np.ndarray:
        texts: list[str] = []
        for article, chunks, sentences in group:
            texts.extend(article.text[c.start : c.end] for c in chunks)
            texts.extend(article.text[s:e] for s, e in sentences)
        return self.embedder.embed(texts)

    def _write(self, group: Group, vectors: np.ndarray, report: IngestReport,
               progress: Callable[[str], None] | None) -> None:
        existed = {a.doc_id for a, _, _ in group if self.docs.content_hash(a.doc_id) is not None}
        ids: list[str] = []
        metas: list[dict] = []
        rows: list[np.ndarray] = []
        sentence_rows: list[np.ndarray] = []
        at = 0
        for article, chunks, sentences in group:
            self.docs.mark_pending(article.doc_id)
            rows.append(vectors[at : at + len(chunks)])
            sentence_rows.append(vectors[at + len(chunks) : at + len(chunks) + len(sentences)])
            at += len(chunks) + len(sentences)
            metadata = _metadata(article.doc_id, article.source, article.published)
            ids.extend(c.chunk_id for c in chunks)
            metas.extend({**metadata, "idx": c.idx} for c in chunks)
        for doc_id in existed:
            self.store.delete_doc(doc_id)
        self.store.upsert(ids, np.concatenate(rows), metas)
        for (article, chunks, sentences), sentence_vectors in zip(group, sentence_rows, strict=True):
            self.docs.put(article, self.fingerprint(article), chunks, sentences, sentence_vectors, self.embed_model)
            (report.replaced if article.doc_id in existed else report.added).append(article.doc_id)
            report.chunks_written += len(chunks)
            if progress:
                progress(article.doc_id)

    def _write_group(self, group: Group, report: IngestReport, progress: Callable[[str], None] | None) -> None:
        if group:
            self._write(group, self._embed(group), report, progress)


class PipelinedIndexer(BatchedIndexer):
    _pool: ThreadPoolExecutor | None = None
    _inflight: Future | None = None

    def _drain(self) -> None:
        if self._inflight is not None:
            inflight, self._inflight = self._inflight, None
            inflight.result()

    def _write_group(self, group: Group, report: IngestReport, progress: Callable[[str], None] | None) -> None:
        if not group:
            return
        vectors = self._embed(group)
        self._drain()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-writer")
        self._inflight = self._pool.submit(self._write, group, vectors, report, progress)

    def sync_keyword_index(self) -> bool:
        self._drain()
        return super().sync_keyword_index()


VARIANTS: dict[str, type[Indexer]] = {"current": Indexer, "batched": BatchedIndexer, "pipelined": PipelinedIndexer}


def with_variant(indexer: Indexer, name: str) -> Indexer:
    """The same parts (store, docstore, keyword index, embedder, chunker, lock) in another Indexer class."""
    cls = VARIANTS[name]
    if cls is type(indexer):
        return indexer
    return cls(indexer.store, indexer.docs, indexer.keyword, indexer.embedder, indexer.chunker, indexer.lock_path)
