"""Chunk articles (llama-index), embed them, and keep Chroma, the docstore and BM25 in step.

Write order per article: mark pending -> replace its vectors in Chroma -> replace its rows in the docstore
(one transaction that also clears the mark). A crash anywhere leaves either the old or the new version in
the docstore, which is what queries read; the next ingest (or start-up) makes Chroma match it again: vectors
the docstore does not know are dropped, and vectors it knows but Chroma lost (a crash between Chroma's delete
and the docstore commit, in a replace or a delete) are re-embedded from the stored text.

Ingest writes a whole embedding group at once (every article marked, one upsert, the replaced articles' old
vectors deleted, then one docstore transaction per article), on a writer thread while the next group is
read, chunked and embedded; at most one group is in flight. Each article still goes through the order
above, so the repair is the same wherever a crash or an error stops the group.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from qa.docstore import ChunkRow, DocStore
from qa.documents import Article
from qa.embeddings import Embedder
from qa.errors import BadDocument, NotIndexed
from qa.keyword import KeywordIndex, day_number
from qa.vectors import VectorStore

EMBED_GROUP_TEXTS = 512  # texts embedded together across articles, so batches stay full


@dataclass
class IngestReport:
    """What an ingest did, per article outcome."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[BadDocument] = field(default_factory=list)
    chunks_written: int = 0
    chunks_total: int = 0

    def as_dict(self) -> dict:
        return {
            "added": self.added, "replaced": self.replaced, "unchanged": self.unchanged,
            "failed": [{"file": e.name, "error": e.reason} for e in self.failed],
            "chunks_written": self.chunks_written, "chunks_total": self.chunks_total,
        }


class Chunker:
    """Sentence-aware chunks (llama-index SentenceSplitter) with exact offsets into the article."""

    def __init__(self, chunk_size: int, chunk_overlap: int) -> None:
        from llama_index.core.node_parser import SentenceSplitter

        self._splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=min(chunk_overlap, chunk_size // 2))
        self.signature = f"sentence-splitter:{chunk_size}:{chunk_overlap}"

    def chunks(self, article: Article) -> list[ChunkRow]:
        from llama_index.core import Document

        nodes = self._splitter.get_nodes_from_documents([Document(text=article.text, id_=article.doc_id)])
        version = hashlib.sha256(f"{article.content_hash}{self.signature}".encode()).hexdigest()[:10]
        rows: list[ChunkRow] = []
        cursor = 0
        for node in nodes:
            content = node.get_content()
            start = node.start_char_idx
            if start is None or article.text[start : start + len(content)] != content:
                start = article.text.find(content, max(0, cursor - len(content)))
            if start < 0:
                continue  # the splitter altered the text; never cite what is not in the article
            end = start + len(content)
            rows.append(ChunkRow(f"{article.doc_id}:{version}:{len(rows)}", article.doc_id, len(rows), start, end))
            cursor = end
        return rows


def _metadata(doc_id: str, source: str | None, published: date | str | None) -> dict[str, str | int]:
    """The Chroma metadata every chunk of an article carries (what `where` filters match)."""
    return {"doc_id": doc_id, "source": (source or "").casefold(), "published_day": day_number(published)}


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence offsets (punkt, shipped with llama-index), never crossing a paragraph break."""
    from llama_index.core.utils import globals_helper

    tokenizer = globals_helper.punkt_tokenizer
    spans: list[tuple[int, int]] = []
    offset = 0
    for paragraph in text.split("\n\n"):
        spans.extend((offset + s, offset + e) for s, e in tokenizer.span_tokenize(paragraph))
        offset += len(paragraph) + 2
    return spans


@dataclass(eq=False)
class _Group:
    """Changed articles embedded and written together, and the progress names (input order) waiting for that."""

    articles: list[tuple[Article, list[ChunkRow], list[tuple[int, int]], bool]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    texts: int = 0

    def add(self, article: Article, chunks: list[ChunkRow], sentences: list[tuple[int, int]], existed: bool) -> None:
        self.articles.append((article, chunks, sentences, existed))
        self.names.append(article.doc_id)
        self.texts += len(chunks) + len(sentences)


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
    """Ingest and delete articles so that Chroma, the docstore and BM25 always agree."""

    def __init__(
        self, store: VectorStore, docs: DocStore, keyword: KeywordIndex, embedder: Embedder,
        chunker: Chunker, lock_path: Path,
    ) -> None:
        self.store = store
        self.docs = docs
        self.keyword = keyword
        self.embedder = embedder
        self.chunker = chunker
        self.lock_path = lock_path

    @property
    def embed_model(self) -> str:
        return self.store.embed_model

    @contextmanager
    def _writer(self) -> Iterator[None]:
        """One writer at a time, across threads and worker processes sharing the data folder."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def fingerprint(self, article: Article) -> str:
        """What decides whether an article must be re-indexed: its content and how it is chunked."""
        return hashlib.sha256(f"{article.content_hash}|{self.chunker.signature}".encode()).hexdigest()

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
        metadata = _metadata(doc_id, document["source"], document["published"])
        vectors = self.embedder.embed([chunks[i].text for i in ids])
        self.store.upsert(ids, vectors, [{**metadata, "idx": int(i.rsplit(":", 1)[1])} for i in ids])

    def recover(self) -> None:
        """Repair and re-sync under the writer lock (at start-up, after a crash)."""
        with self._writer():
            self.repair()
            self.sync_keyword_index()

    def sync_keyword_index(self) -> bool:
        """Rebuild BM25 if the docstore changed since it was built; True when it rebuilt."""
        generation = self.docs.generation()
        if self.keyword.saved_generation() == generation:
            return False
        self.keyword.build(self.docs.iter_chunks(), generation)
        return True

    def ingest(
        self, items: Iterable[Article | BadDocument], progress: Callable[[str], None] | None = None
    ) -> IngestReport:
        """Add new articles, replace changed ones, skip unchanged ones; bad files are reported, not fatal."""
        report = IngestReport()
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
                if known == self.fingerprint(item):
                    report.unchanged.append(item.doc_id)
                    writes.skipped(item.doc_id, group)
                    continue
                chunks, sentences = self.chunker.chunks(item), sentence_spans(item.text)
                group.add(item, chunks, sentences, existed=known is not None)
                if group.texts >= EMBED_GROUP_TEXTS:
                    writes.submit(group, self._embed(group))
                    group = _Group()
            if group.articles:
                writes.submit(group, self._embed(group))
            writes.land()
            self.sync_keyword_index()
        report.chunks_total = self.docs.count()[1]
        return report

    def _embed(self, group: _Group) -> np.ndarray:
        """One embed() call for the whole group, so batches stay full: each article's chunks, then its sentences."""
        texts: list[str] = []
        for article, chunks, sentences, _ in group.articles:
            texts.extend(article.text[c.start : c.end] for c in chunks)
            texts.extend(article.text[s:e] for s, e in sentences)
        return self.embedder.embed(texts)

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
        sentence_vectors: list[np.ndarray] = []
        at = 0
        for article, chunks, sentences, _ in group.articles:
            self.docs.mark_pending(article.doc_id)
            metadata = _metadata(article.doc_id, article.source, article.published)
            ids.extend(c.chunk_id for c in chunks)
            metadatas.extend({**metadata, "idx": c.idx} for c in chunks)
            chunk_vectors.append(vectors[at : at + len(chunks)])
            sentence_vectors.append(vectors[at + len(chunks) : at + len(chunks) + len(sentences)])
            at += len(chunks) + len(sentences)
        self.store.upsert(ids, np.concatenate(chunk_vectors), metadatas)
        for article, chunks, _, existed in group.articles:  # old vectors go only once the new ones are in,
            if existed:  # so a replaced article never drops out of dense search (a new one has none to drop)
                self.store.delete_doc(article.doc_id, keep={c.chunk_id for c in chunks})
        for (article, chunks, sentences, _), sentence_rows in zip(group.articles, sentence_vectors, strict=True):
            self.docs.put(article, self.fingerprint(article), chunks, sentences, sentence_rows, self.embed_model)

    def delete(self, doc_id: str) -> bool:
        """Remove an article from every store; False when it was not indexed."""
        with self._writer():
            known = self.docs.get_document(doc_id) is not None
            if known:
                self.docs.mark_pending(doc_id)
                self.store.delete_doc(doc_id)
                self.docs.delete(doc_id)
                self.sync_keyword_index()
        return known
