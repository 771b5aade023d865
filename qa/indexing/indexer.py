"""Chunk articles, embed them (and their enrichment spans), and keep the SQL store and the vector index in step.

Write order per article: mark pending -> replace its vectors in the vector index -> replace its rows in the
SQL store (one transaction for the document, chunks, keyword-index and enrichment rows, that also clears the
mark). A crash anywhere leaves either the old or the new version in the SQL store, which is what queries
read; the next ingest (or start-up) makes Chroma match it again: vectors
the docstore does not know are dropped, and vectors it knows but Chroma lost (a crash between Chroma's delete
and the docstore commit, in a replace or a delete) are re-embedded from the stored text.

Ingest writes a whole embedding group at once (every article marked, one upsert, the replaced articles' old
vectors deleted, then one SQL transaction per article), on a writer thread while the next group is
read, chunked and embedded; at most one group is in flight. Each article still goes through the order
above, so the repair is the same wherever a crash or an error stops the group.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from qa.embedding import Embedder, SpanEmbedder
from qa.errors import BadDocument, DocumentIdTaken, NotIndexed
from qa.indexing import Enrichment
from qa.indexing.chunking import Chunker
from qa.indexing.progress import IngestProgress
from qa.sources.article import Article, Unchanged
from qa.sources.dedupe import NearDuplicates, Signature, signature
from qa.store import ChunkRow, Copy, DocumentStore, SpanRows, VectorIndex, WriterLock
from qa.store.documents import day_number

EMBED_GROUP_TEXTS = 512  # texts embedded together across articles, so batches stay full
PROGRESS_TEXTS = 64  # texts per embed() call within a group (one batch): progress is reported between them


@dataclass
class IngestReport:
    """What an ingest did, per article outcome."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[BadDocument] = field(default_factory=list)
    duplicate: list[tuple[str, str]] = field(default_factory=list)  # (copy's doc id, the kept article's id)
    chunks_written: int = 0
    chunks_total: int = 0

    def as_dict(self) -> dict:
        """The report as the contract's IngestReportOut shows it."""
        return {
            "added": self.added, "replaced": self.replaced, "unchanged": self.unchanged,
            "failed": [{"file": e.name, "error": e.reason, "status": e.status_code} for e in self.failed],
            "duplicate": [{"doc_id": copy, "of": kept} for copy, kept in self.duplicate],
            "chunks_written": self.chunks_written, "chunks_total": self.chunks_total,
        }


def _file_name(path: str | None) -> str:
    """The file name part of a stored path or upload name, NFC (how two origins are compared)."""
    return unicodedata.normalize("NFC", Path((path or "").replace("\\", "/")).name)


def same_origin(stored: str | None, incoming: str | None) -> bool:
    """Whether an article may replace the one under its id: it comes from a file of the same name (a
    re-upload, or the same folder ingested again), or the stored one's origin is unknown (older index)."""
    return stored is None or incoming is None or _file_name(stored) == _file_name(incoming)


def _in_process(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


@functools.lru_cache(maxsize=4)
def _chunker(chunk_size: int, chunk_overlap: int) -> Chunker:
    return Chunker(chunk_size, chunk_overlap)  # one per worker process and setting, not one per article


def prepare_article(
    article: Article, chunk_size: int, chunk_overlap: int, enrichments: Sequence[Enrichment]
) -> tuple[list[ChunkRow], dict[str, list[tuple[int, int]]]]:
    """An article's chunks and enrichment spans: the CPU-bound part of indexing, run where `Indexer.run` says
    (a worker process in the server), so it takes nothing but picklable values."""
    return _chunker(chunk_size, chunk_overlap).chunks(article), {e.kind: e.spans(article) for e in enrichments}


def _metadata(doc_id: str, source: str | None, published: date | str | None) -> dict[str, str | int]:
    """The vector-index metadata every chunk of an article carries (what `where` filters match)."""
    day = day_number(published.isoformat() if isinstance(published, date) else published)
    return {"doc_id": doc_id, "source": (source or "").casefold(), "published_day": day}


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)


@dataclass(eq=False)
class _Group:
    """Changed articles embedded and written together, and the progress names (input order) waiting for that."""

    articles: list[tuple[Article, list[ChunkRow], dict[str, list[tuple[int, int]]], bool]] = field(
        default_factory=list
    )
    names: list[str] = field(default_factory=list)
    texts: int = 0
    signatures: dict[str, Signature] = field(default_factory=dict)

    def add(
        self, article: Article, chunks: list[ChunkRow], spans: dict[str, list[tuple[int, int]]], existed: bool,
        sig: Signature,
    ) -> None:
        self.articles.append((article, chunks, spans, existed))
        self.signatures[article.doc_id] = sig
        self.names.append(article.doc_id)
        self.texts += len(chunks) + sum(len(s) for s in spans.values())


class _GroupWrites:
    """At most one group written by a writer thread; the report and progress are updated here, on the
    ingesting thread, once its write landed, so callbacks see every input once, in input order. Leaving the
    `with` block waits for the write in flight, even when the ingesting thread raised."""

    def __init__(
        self, write: Callable[[_Group, np.ndarray], None], report: IngestReport,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.write = write
        self.report = report
        self.progress = progress or (lambda _name: None)
        self.flight: tuple[Future[None], _Group] | None = None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-writer")

    def __enter__(self) -> _GroupWrites:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> None:
        try:
            if error is not None and self.flight is not None:
                failed = self.flight[0].exception()  # waits; an error of its own must not go unseen
                if failed is not None:
                    error.add_note(f"the group write in flight failed too: {failed!r}")
        finally:
            self.pool.shutdown(wait=True)

    def submit(self, group: _Group, vectors: np.ndarray) -> None:
        self.land()
        self.flight = (self.pool.submit(self.write, group, vectors), group)

    def land(self, wait: bool = True) -> None:
        """Wait for the write in flight (or only look, if not `wait`), raise its error, and report it."""
        if self.flight is None or not (wait or self.flight[0].done()):
            return
        (future, group), self.flight = self.flight, None
        future.result()
        for article, chunks, _, existed in group.articles:
            (self.report.replaced if existed else self.report.added).append(article.doc_id)
            self.report.chunks_written += len(chunks)
        for name in group.names:
            self.progress(name)

    def skipped(self, name: str, building: _Group) -> None:
        """Report an unchanged or bad input after every earlier input, which may still be on its way."""
        if building.articles:
            building.names.append(name)
        elif self.flight is not None:
            self.flight[1].names.append(name)
        else:
            self.progress(name)


class Indexer:
    """Ingest and delete articles so that the SQL store and the vector index always agree."""

    def __init__(
        self, store: VectorIndex, docs: DocumentStore, embedder: Embedder, chunker: Chunker, lock: WriterLock,
        progress: IngestProgress, enrichments: Sequence[Enrichment] = (), run: Callable[..., Any] | None = None,
    ) -> None:
        self.store = store
        self.docs = docs
        self.embedder = embedder
        self.chunker = chunker
        self.lock = lock
        self.enrichments = list(enrichments)
        self.progress = progress
        self.run = run or _in_process  # where chunking and enrichment spans are computed (CPU-bound)
        self._near: NearDuplicates | None = None  # syndicated-copy index, see _near_duplicates
        self._near_rows: dict[str, int] = {}

    @property
    def embed_model(self) -> str:
        return self.store.embed_model

    @contextmanager
    def _writer(self) -> Iterator[None]:
        """One writer at a time, across threads and every process writing the same stores; the progress of
        the ingest holding it is visible to every process reading them."""
        with self.lock.hold():
            self.progress.start()
            try:
                yield
                self.docs.keyword_catch_up()  # the batch searchable now, not at the next question
            finally:
                self.progress.clear()  # under the lock: a later writer's progress is never removed

    def fingerprint(self, article: Article) -> str:
        """What decides whether an article must be re-indexed: its content, how it is chunked, and which
        enrichments it carries (an answerer that needs another one makes the next ingest re-index)."""
        kinds = ",".join(sorted(f"{e.kind}{self._how(e)}" for e in self.enrichments))
        return hashlib.sha256(f"{article.content_hash}|{self.chunker.signature}|{kinds}".encode()).hexdigest()

    def check_model(self) -> None:
        """Refuse to mix vectors from two embedding models in one index."""
        models = self.docs.embed_models() - {self.embed_model}
        if models:
            raise NotIndexed(
                f"the index was built with {sorted(models)}, but '{self.embed_model}' is configured; "
                "re-index with `qa ingest --reset`"
            )

    def repair(self) -> int:
        """Finish what a crashed ingest or delete left: for each pending doc, make Chroma hold exactly the
        chunks the docstore has (drop unknown vectors, re-embed missing ones from the stored text)."""
        pending = self.docs.pending()
        for doc_id in pending:
            keep = self.docs.chunk_ids(doc_id)
            self.store.delete_doc(doc_id, keep=keep)
            if keep:
                self._restore_vectors(doc_id, keep - set(self.store.ids_for(doc_id)))
            self.docs.clear_pending(doc_id)
        return len(pending)

    def _restore_vectors(self, doc_id: str, missing: set[str]) -> None:
        document = self.docs.get_document(doc_id)
        chunks = self.docs.get_chunks(sorted(missing))
        if document is None or not chunks:
            return
        ids = sorted(chunks)
        metadata = _metadata(doc_id, document.source, document.published)
        vectors = self.embedder.embed([chunks[i].text for i in ids])
        self.store.upsert(ids, vectors, [{**metadata, "idx": int(i.rsplit(":", 1)[1])} for i in ids])

    def recover(self) -> None:
        """Repair under the writer lock (at start-up, after a crash)."""
        with self._writer():
            self.repair()

    def _near_duplicates(self, batch: dict[str, Signature]) -> NearDuplicates:
        """The signatures of every indexed article plus those of this batch's articles (which may not have landed
        yet). Kept between ingests in this process and brought up to date from the store each time (another
        process may have written): only signatures whose row changed are loaded again, since adding one to the
        LSH index costs 0.7-2.6 ms (64 bands; `python -m bench.dedupe`). Articles indexed before signatures
        were kept get one now."""
        if self._near is None:
            self._near, self._near_rows = NearDuplicates(), {}
        near, loaded = self._near, self._near_rows
        rows = self.docs.signature_rows()
        for doc_id in [d for d in near.ids() if d not in rows]:  # deleted since (here or by another process)
            near.remove(doc_id)
            loaded.pop(doc_id, None)
        changed = [d for d, row in rows.items() if loaded.get(d) != row]
        for doc_id, data in self.docs.get_signatures(changed).items():
            near.add(doc_id, Signature.from_bytes(data))
            loaded[doc_id] = rows[doc_id]
        for doc in self.docs.list_documents():
            doc_id = doc.doc_id
            if doc_id not in rows and doc_id not in batch:
                document = self.docs.get_document(doc_id)
                if document is not None:
                    sig = signature(document.text)
                    self.docs.put_signature(doc_id, sig.to_bytes())
                    near.add(doc_id, sig)
        for doc_id, sig in batch.items():
            near.add(doc_id, sig)
            loaded[doc_id] = -1  # not stored yet: its row is loaded next time, whatever it is
        return near

    def ingest(
        self, items: Iterable[Article | BadDocument | Unchanged], progress: Callable[[str], None] | None = None,
        embedded: Callable[[str], None] | None = None,
    ) -> IngestReport:
        """Add new articles, replace changed ones, skip unchanged ones; bad files are reported, not fatal. A new
        article marked `dedupe` whose text is a near-duplicate of an indexed one (or of one earlier in the batch)
        is not indexed: it is recorded as a copy of that article (`also_at`), once the batch has landed.
        `progress` hears of every input once its group has landed; `embedded` of each changed article as soon as
        its texts are embedded (the slow part), so a progress bar moves per article, not per group."""
        report = IngestReport()
        batch_signatures: dict[str, Signature] = {}
        near: NearDuplicates | None = None
        copies: list[Copy] = []
        # Leaving `writes` waits for the write in flight (even when this thread raises), so the lock is never
        # released, nor ingest() left, while a group is half written.
        with self._writer(), _GroupWrites(self._write_group, report, progress) as writes:
            self.check_model()
            self.store.check()
            self.repair()
            group = _Group()
            seen: set[str] = set()
            for item in items:
                writes.land(wait=False)  # report a finished write now; raise its error before embedding more
                if isinstance(item, Unchanged):
                    report.unchanged.append(item.doc_id)
                    writes.skipped(item.doc_id, group)
                    continue
                if not isinstance(item, BadDocument) and item.doc_id in seen:  # two files, one id: keep the first
                    item = BadDocument(item.path or item.doc_id, f"same document id '{item.doc_id}' as an earlier file")
                if isinstance(item, BadDocument):
                    report.failed.append(item)
                    writes.skipped(item.name, group)
                    continue
                seen.add(item.doc_id)
                # A read beside the writer thread's transactions: the docstore gives each thread its own
                # connection and runs in WAL mode, so it sees the last commit without waiting. The writer
                # only touches earlier groups' articles, never this one (ids are unique in a call).
                known = self.docs.content_hash(item.doc_id)
                if known is not None and not same_origin(self.docs.origin(item.doc_id), item.path):
                    taken = DocumentIdTaken(item.path or item.doc_id, f"document id '{item.doc_id}' already holds the "
                                            f"article from '{_file_name(self.docs.origin(item.doc_id))}'; delete it "
                                            "first or rename this file")
                    report.failed.append(taken)
                    writes.skipped(taken.name, group)
                    continue
                if known == self.fingerprint(item):
                    report.unchanged.append(item.doc_id)
                    writes.skipped(item.doc_id, group)
                    continue
                sig = signature(item.text)
                if item.dedupe and known is None:
                    near = near or self._near_duplicates(batch_signatures)
                    match = near.match(sig, exclude=item.doc_id)
                    if match is not None:
                        published = item.published.isoformat() if item.published else None
                        copies.append(Copy(match[0], item.url or item.doc_id, item.source, published, item.doc_id))
                        report.duplicate.append((item.doc_id, match[0]))
                        writes.skipped(item.doc_id, group)
                        continue
                batch_signatures[item.doc_id] = sig
                if near is not None:
                    near.add(item.doc_id, sig)
                chunks, spans = self.run(prepare_article, item, self.chunker.chunk_size, self.chunker.chunk_overlap,
                                         self.enrichments)
                group.add(item, chunks, spans, existed=known is not None, sig=sig)
                if group.texts >= EMBED_GROUP_TEXTS:
                    writes.submit(group, self._embed(group, embedded))
                    group = _Group()
            if group.articles:
                writes.submit(group, self._embed(group, embedded))
            writes.land()
            if copies:
                self.docs.add_copies(copies)
        report.chunks_total = self.docs.count()[1]
        return report

    def _pools(self, enrichment: Enrichment) -> bool:
        """Whether this enrichment's vectors come from the chunks' forward pass (see Enrichment.in_chunk)."""
        return enrichment.at_ingest and enrichment.in_chunk and isinstance(self.embedder, SpanEmbedder)

    def _how(self, enrichment: Enrichment) -> str:
        """How an enrichment's vectors are made, as its fingerprint records it."""
        return ":in-chunk" if self._pools(enrichment) else ("" if enrichment.at_ingest else ":on-use")

    @property
    def _deferred(self) -> set[str]:
        """Kinds whose spans are stored without vectors (embedded by the answerer on first use)."""
        return {e.kind for e in self.enrichments if not e.at_ingest}

    def _embed(self, group: _Group, embedded: Callable[[str], None] | None = None) -> np.ndarray:
        """The group's texts (each article's chunks, then its spans) embedded in slices of PROGRESS_TEXTS, so
        batches stay full and the progress file says how far a large article is; `embedded` hears of each
        article once its last text is embedded. Spans of `in_chunk` enrichments are pooled from the chunks'
        pass instead (_embed_pooled)."""
        said = 0  # articles of the group `embedded` has heard of, in order

        def tell(done_texts: int | None) -> None:
            nonlocal said
            while embedded and said < len(group.articles) and (done_texts is None or ends[said] <= done_texts):
                embedded(group.articles[said][0].doc_id)
                said += 1

        pooled = {e.kind for e in self.enrichments if self._pools(e)}
        ends: list[int] = []
        if pooled:
            vectors = self._embed_pooled(group, pooled)
            tell(None)
            return vectors
        texts: list[str] = []
        owners: list[str] = []
        deferred = self._deferred
        for article, chunks, spans, _ in group.articles:
            before = len(texts)
            texts.extend(article.text[c.start : c.end] for c in chunks)
            for kind, kind_spans in spans.items():
                if kind not in deferred:
                    texts.extend(article.text[s:e] for s, e in kind_spans)
            owners.extend([article.doc_id] * (len(texts) - before))
            ends.append(len(texts))
        parts: list[np.ndarray] = []
        for start in range(0, len(texts), PROGRESS_TEXTS):
            self.progress.update(owners[start], start, len(texts), force=start == 0)
            parts.append(self.embedder.embed(texts[start : start + PROGRESS_TEXTS]))
            tell(start + PROGRESS_TEXTS)
        vectors = np.concatenate(parts) if parts else self.embedder.embed(texts)
        tell(None)
        return vectors

    def _embed_pooled(self, group: _Group, pooled: set[str]) -> np.ndarray:
        """Chunks embedded once with every pooled span they hold whole; a span held whole by two overlapping
        chunks gets the mean of both (renormalised); spans no chunk holds, and other enrichments, alone."""
        chunk_texts: list[str] = []
        chunk_spans: list[list[tuple[int, int]]] = []
        owners: list[list[tuple[int, str, int]]] = []  # per chunk: (article, kind, span index) of each span
        for a, (article, chunks, spans, _) in enumerate(group.articles):
            inside = sorted((s, e, kind, j) for kind in pooled for j, (s, e) in enumerate(spans[kind]))
            starts = [s for s, _, _, _ in inside]
            for chunk in chunks:
                chunk_texts.append(article.text[chunk.start : chunk.end])
                held = [x for x in inside[bisect_left(starts, chunk.start):bisect_right(starts, chunk.end)]
                        if x[1] <= chunk.end]
                chunk_spans.append([(s - chunk.start, e - chunk.start) for s, e, _, _ in held])
                owners.append([(a, kind, j) for _, _, kind, j in held])
        chunk_vectors, span_vectors, whole = self.embedder.embed_with_spans(chunk_texts, chunk_spans)  # type: ignore[attr-defined]
        sums: dict[tuple[int, str, int], np.ndarray] = {}
        for c, keys in enumerate(owners):
            for k, key in enumerate(keys):
                if whole[c][k]:
                    sums[key] = sums[key] + span_vectors[c][k] if key in sums else span_vectors[c][k].copy()
        deferred = self._deferred
        alone = [(a, kind, j) for a, (_, _, spans, _) in enumerate(group.articles) for kind in spans
                 if kind not in deferred for j in range(len(spans[kind])) if (a, kind, j) not in sums]
        if alone:
            texts = [group.articles[a][0].text[slice(*group.articles[a][2][kind][j])] for a, kind, j in alone]
            sums.update(zip(alone, self.embedder.embed(texts), strict=True))
        out: list[np.ndarray] = []
        at = 0
        for a, (_, chunks, spans, _) in enumerate(group.articles):
            out.append(chunk_vectors[at : at + len(chunks)])
            at += len(chunks)
            for kind, kind_spans in spans.items():
                if kind in deferred:
                    continue
                rows = np.array([sums[(a, kind, j)] for j in range(len(kind_spans))], dtype=np.float32)
                out.append(_unit(rows.reshape(len(kind_spans), chunk_vectors.shape[1])))
        return np.concatenate(out)

    def _write_group(self, group: _Group, vectors: np.ndarray) -> None:
        """Store an embedded group (on the writer thread): one Chroma upsert instead of one per article, each
        article still marked pending before its vectors change and cleared by its docstore commit. The
        thread's docstore connection is closed after each group, so none outlives the ingest."""
        try:
            self._store_group(group, vectors)
        finally:
            self.docs.close_thread()

    def _store_group(self, group: _Group, vectors: np.ndarray) -> None:
        """Mark every article, upsert all new vectors, drop replaced articles' old ones, commit each article."""
        ids: list[str] = []
        metadatas: list[dict[str, str | int]] = []
        chunk_vectors: list[np.ndarray] = []
        enrichment_rows: list[dict[str, SpanRows]] = []
        deferred = self._deferred
        at = 0
        for article, chunks, spans, _ in group.articles:
            self.docs.mark_pending(article.doc_id)
            metadata = _metadata(article.doc_id, article.source, article.published)
            ids.extend(c.chunk_id for c in chunks)
            metadatas.extend({**metadata, "idx": c.idx} for c in chunks)
            chunk_vectors.append(vectors[at : at + len(chunks)])
            at += len(chunks)
            rows: dict[str, SpanRows] = {}
            for kind, kind_spans in spans.items():
                if kind in deferred:  # spans only: the answerer embeds them when it first reads them
                    rows[kind] = SpanRows(kind_spans, np.empty((len(kind_spans), 0), dtype=np.float32))
                    continue
                rows[kind] = SpanRows(kind_spans, vectors[at : at + len(kind_spans)])
                at += len(kind_spans)
            enrichment_rows.append(rows)
        self.store.upsert(ids, np.concatenate(chunk_vectors), metadatas)
        for article, chunks, _, existed in group.articles:  # old vectors go only once the new ones are in,
            if existed:  # so a replaced article never drops out of dense search (a new one has none to drop)
                self.store.delete_doc(article.doc_id, keep={c.chunk_id for c in chunks})
        for (article, chunks, _, _), rows in zip(group.articles, enrichment_rows, strict=True):
            sig = group.signatures[article.doc_id].to_bytes()
            self.docs.put(article, self.fingerprint(article), chunks, rows, self.embed_model, sig)

    def delete(self, doc_id: str) -> bool:
        """Remove an article from every store; False when it was not indexed."""
        with self._writer():
            known = self.docs.get_document(doc_id) is not None
            if known:
                self.docs.mark_pending(doc_id)
                self.store.delete_doc(doc_id)
                self.docs.delete(doc_id)
        return known
