"""The stores at 10k, 100k and 1M chunks: build time, size on disk, adding one article, start-up, memory and
query latency.

    python -m bench.scale                                   # 10k, 100k and 1M chunks; Chroma up to 10k
    python -m bench.scale --sizes 100000 --chroma-max 100000 --keep /tmp/scale   (keep the data folders)
    python -m bench.scale --bulk-from 1000000               (fill 1M with one transaction per 1000 articles)

Synthetic but realistic: chunk texts are 50-word windows of the BBC corpus (real term statistics), 10 per
article, 3 sentences each, five sources, dates over three years; chunk vectors are clustered random unit
vectors (384-d). Each size gets a complete data folder (docstore.sqlite, its tantivy keyword index, and
chroma/ up to --chroma-max chunks), filled through the project's own classes: `SqlStore.put` per
article (its document, chunk, keyword-change and sentence-vector rows in one transaction, as ingest writes
them), the keyword index's catch-up, and `ChromaIndex.upsert`. `--bulk-from N` fills sizes of N chunks
and more through `bulk_put`: put's insert statements, one transaction per 1000 articles, without put's
removal of a previous version (every article is new; see bulk_put). Only the fill time changes: every
measurement after it uses `put` itself.

"Add one article" is then measured at that size, as `Indexer` writes an article (embedding aside): mark
pending, Chroma upsert (when the size has Chroma), `SqlStore.put` and the keyword index's catch-up (a
tantivy commit); 30 new articles (2 from 1M chunks:
each takes seconds there), each timed alone, and as many replacements of existing articles (their old rows
and keyword-index rows are removed first). Then the same again after creating the index on spans(doc_id)
proposed in docs/benchmarks.md (issue 11): without it, put's `DELETE FROM spans WHERE doc_id=?` scans the table.
Measurements run in a fresh process per size (`--measure DIR`), so start-up time and memory are those of
a new worker: 200 BBC-headline queries (bench.latency.bbc_questions). `python -m bench.latency --data-dir
DIR/data --corpus bbc` serves such a folder over HTTP.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, Stopwatch, bbc_files, bench_settings, dir_mb, percentiles, rss_mb, save

CHUNKS_PER_DOC = 10
WORDS_PER_CHUNK = 50
SENTENCES_PER_CHUNK = 3
SOURCES = ("BBC", "Reuters", "AP", "RT", "AFP")
QUERIES = 200
ADDS = 30  # articles added (and replaced) one at a time at each size
BULK_ARTICLES = 1000  # articles per transaction with --bulk-from
SPANS_DOC_INDEX = "CREATE INDEX IF NOT EXISTS spans_doc ON spans(doc_id)"  # the proposed fix, see add_one_article


def bbc_words() -> list[str]:
    words: list[str] = []
    for path in bbc_files():
        words.extend(re.findall(r"[A-Za-z0-9'£$%-]+", path.read_bytes().decode("utf-8", "replace")))
    return words


class Synthetic:
    """Synthetic articles with exact chunk and sentence offsets, their sentence vectors and chunk vectors."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.nprng = np.random.default_rng(seed)
        self.words = bbc_words()
        self.centroids = self.nprng.normal(size=(256, 384)).astype(np.float32)

    def article(self, i: int, version: int = 1) -> tuple[Any, list[Any], dict[str, Any]]:
        """Article i (10 chunks of 50-word BBC windows) with its chunk rows and `sentence` enrichment rows."""
        from qa.answering.enrichments import SENTENCE_VECTORS
        from qa.sources.article import Article
        from qa.store import ChunkRow, SpanRows

        doc_id = f"syn-{i:07d}"
        parts: list[str] = []
        chunks: list[ChunkRow] = []
        sentences: list[tuple[int, int]] = []
        offset = 0
        per = WORDS_PER_CHUNK // SENTENCES_PER_CHUNK
        for c in range(CHUNKS_PER_DOC):
            at = self.rng.randrange(0, len(self.words) - WORDS_PER_CHUNK)
            window = self.words[at : at + WORDS_PER_CHUNK]
            text = ""
            for s in range(SENTENCES_PER_CHUNK):
                piece = " ".join(window[s * per : (s + 1) * per if s < SENTENCES_PER_CHUNK - 1 else None])
                piece = piece[:1].upper() + piece[1:] + "."
                start = len(text) + (1 if text else 0)
                text = f"{text} {piece}" if text else piece
                sentences.append((offset + start, offset + start + len(piece)))
            chunks.append(ChunkRow(f"{doc_id}:v{version}:{c}", doc_id, c, offset, offset + len(text)))
            parts.append(text)
            offset += len(text) + 2
        published = date(2015, 1, 1) + timedelta(days=self.rng.randrange(3 * 365))
        article = Article(doc_id, f"Synthetic article {i}", "\n\n".join(parts), SOURCES[i % len(SOURCES)],
                          published)
        vectors = self.nprng.normal(size=(len(sentences), 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return article, chunks, {SENTENCE_VECTORS: SpanRows(sentences, vectors)}

    def chunk_vectors(self, i: int, n: int) -> np.ndarray:
        vectors = self.centroids[i % 256] + 0.35 * self.nprng.normal(size=(n, 384)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def chroma_metadata(article: Any, chunks: list[Any]) -> list[dict]:
    from qa.indexing.indexer import _metadata

    meta = _metadata(article.doc_id, article.source, article.published)
    return [{**meta, "idx": c.idx} for c in chunks]


def bulk_put(docs: Any, batch: list[tuple[Any, str, list[Any], dict[str, Any], str]]) -> None:
    """Many new articles in one transaction, with the insert statements `SqlStore.put` runs per article.

    A bench-only fill for large synthetic stores (one commit per article is what the product does, and what
    "add one article" measures). It skips put's removal of a previous version (`SqlStore._delete`): every
    article here is new, so it would remove nothing, and its `DELETE FROM spans WHERE doc_id=?` scans the
    whole spans table (the primary key starts with `kind`), which would make the fill quadratic.
    """
    from qa.store.documents import day_number

    with docs._tx() as db:
        for article, fingerprint, chunks, enrichments, embed_model in batch:
            published = article.published.isoformat() if article.published else None
            source_key, day = (article.source or "").casefold(), day_number(published)
            docs._add_counts(db, 1, len(chunks))
            docs._record_change(db, article.doc_id)
            db.execute(
                "INSERT INTO documents (doc_id, title, source, published, url, path, text, content_hash, n_chunks,"
                " embed_model) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (article.doc_id, article.title, article.source, published, article.url, article.path,
                 article.text, fingerprint, len(chunks), embed_model),
            )
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


def keyword_index_mb(layout: Any) -> float | None:
    """MB of the tantivy keyword index folder."""
    folder = layout.keyword_index
    return round(sum(p.stat().st_size for p in folder.iterdir()) / 2**20, 1) if folder.exists() else None


def add_one_article(docs: Any, store: Any, synthetic: Synthetic, first: int, model: str, adds: int,
                    existing: int) -> dict[str, Any]:
    """`adds` new articles, each written alone as Indexer writes it (pending mark, Chroma upsert, put), then
    `adds` replacements of existing articles (new chunk ids; old vectors deleted, old rows and FTS rows too)."""
    added: dict[str, list[float]] = {"put_ms": [], "chroma_upsert_ms": [], "total_ms": []}
    replaced: dict[str, list[float]] = {"put_ms": [], "chroma_ms": [], "total_ms": []}
    for n in range(adds):
        article, chunks, rows = synthetic.article(first + n)
        vectors = synthetic.chunk_vectors(first + n, len(chunks))
        started = time.perf_counter()
        docs.mark_pending(article.doc_id)
        upserted = time.perf_counter()
        if store is not None:
            store.upsert([c.chunk_id for c in chunks], vectors, chroma_metadata(article, chunks))
        put = time.perf_counter()
        docs.put(article, f"synthetic-{first + n}", chunks, rows, model)
        docs.keyword_catch_up()
        done = time.perf_counter()
        added["chroma_upsert_ms"].append((put - upserted) * 1000)
        added["put_ms"].append((done - put) * 1000)
        added["total_ms"].append((done - started) * 1000)
    for n in range(adds):
        i = (n * 7919) % existing  # an existing article (syn-0000000 .. existing - 1), spread over the store
        article, chunks, rows = synthetic.article(i, version=2)
        vectors = synthetic.chunk_vectors(i, len(chunks))
        started = time.perf_counter()
        docs.mark_pending(article.doc_id)
        if store is not None:
            store.upsert([c.chunk_id for c in chunks], vectors, chroma_metadata(article, chunks))
            store.delete_doc(article.doc_id, keep={c.chunk_id for c in chunks})
        put = time.perf_counter()
        docs.put(article, f"synthetic-{i}-v2", chunks, rows, model)
        docs.keyword_catch_up()
        done = time.perf_counter()
        replaced["chroma_ms"].append((put - started) * 1000)
        replaced["put_ms"].append((done - put) * 1000)
        replaced["total_ms"].append((done - started) * 1000)
    out = {"new": {k: percentiles(v) for k, v in added.items() if store is not None or "chroma" not in k},
           "replace": {k: percentiles(v) for k, v in replaced.items() if store is not None or "chroma" not in k}}
    return out


def build(folder: Path, chunks: int, with_chroma: bool, bulk: bool = False, seed: int = 7) -> dict[str, Any]:
    """A complete data folder of `chunks` chunks; returns build timings, add-one-article timings and sizes."""
    from qa.embedding.onnx import ONNX_MODEL_ID
    from qa.store.chroma import ChromaIndex
    from qa.store.documents import sqlite_store
    from qa.store.layout import DataLayout

    layout = DataLayout(folder / "data").create()
    synthetic = Synthetic(seed)
    docs = sqlite_store(layout.documents)
    store = ChromaIndex(ONNX_MODEL_ID, bench_settings(layout.root).collection, layout.chroma) if with_chroma else None
    articles = chunks // CHUNKS_PER_DOC
    out: dict[str, Any] = {"chunks": chunks, "documents": articles, "chroma": with_chroma,
                           "fill": f"bulk_put, {BULK_ARTICLES} articles per transaction" if bulk
                           else "SqlStore.put per article"}
    docstore_s = chroma_s = 0.0
    pending: tuple[list[str], list[dict], list[np.ndarray]] = ([], [], [])
    batch: list[tuple[Any, str, list[Any], dict[str, Any], str]] = []

    def flush_chroma() -> float:
        ids, metadatas, vectors = pending
        if not ids:
            return 0.0
        with Stopwatch() as t:
            store.upsert(ids, np.concatenate(vectors), metadatas)  # type: ignore[union-attr]
        for part in pending:
            part.clear()
        return t.seconds

    def flush_bulk() -> float:
        with Stopwatch() as t:
            bulk_put(docs, batch)
        batch.clear()
        return t.seconds

    for i in range(articles):
        article, rows, enrichments = synthetic.article(i)
        if bulk:
            batch.append((article, f"synthetic-{i}", rows, enrichments, ONNX_MODEL_ID))
            if len(batch) >= BULK_ARTICLES:
                docstore_s += flush_bulk()
        else:
            with Stopwatch() as t:
                docs.put(article, f"synthetic-{i}", rows, enrichments, ONNX_MODEL_ID)
            docstore_s += t.seconds
        if store is not None:
            pending[0].extend(r.chunk_id for r in rows)
            pending[1].extend(chroma_metadata(article, rows))
            pending[2].append(synthetic.chunk_vectors(i, len(rows)))
            if len(pending[0]) >= 10_000:
                chroma_s += flush_chroma()
        if (i + 1) % 10_000 == 0:
            print(f"  {(i + 1) * CHUNKS_PER_DOC} chunks written ({docstore_s:.0f} s in the SQL store)",
                  file=sys.stderr, flush=True)
    if batch:
        docstore_s += flush_bulk()
    if store is not None:
        chroma_s += flush_chroma()
    out["docstore_fill_s"] = round(docstore_s, 1)
    out["docstore_fill_ms_per_article"] = round(docstore_s / articles * 1000, 2)
    if store is not None:
        out["chroma_insert_s"] = round(chroma_s, 1)
        out["chroma_insert_per_s"] = round(chunks / chroma_s)
    finish(layout, docs, store, synthetic, chunks, first=articles, existing=articles, out=out)
    return out


def finish(layout: Any, docs: Any, store: Any, synthetic: Synthetic, chunks: int, first: int, existing: int,
           out: dict[str, Any], as_is: bool = True) -> None:
    """Add one article at this size (as the store is, then with the spans index), sizes on disk, memory.
    as_is=False skips the first (a store whose spans table does not have this size would flatter it)."""
    from qa.embedding.onnx import ONNX_MODEL_ID

    adds = ADDS if chunks < 1_000_000 else 2  # as the store is, each put scans the spans table (seconds at 1M)
    if as_is:
        out["add_one_article"] = add_one_article(docs, store, synthetic, first, ONNX_MODEL_ID, adds, existing)
    # The same with the index proposed in docs/benchmarks.md (spans looked up by doc_id): what
    # adding one article costs once put no longer scans the spans table.
    with Stopwatch() as t:
        docs.db.engine.raw_connection().execute(SPANS_DOC_INDEX)
    out["spans_doc_index_create_s"] = round(t.seconds, 1)
    out["add_one_article_with_spans_index"] = add_one_article(docs, store, synthetic, first + adds, ONNX_MODEL_ID,
                                                              ADDS, existing)
    docs.close_thread()
    checkpoint = sqlite3.connect(layout.documents)
    checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    checkpoint.close()
    out["disk_mb"] = {"docstore": round(layout.documents.stat().st_size / 2**20, 1),
                      "keyword_index": keyword_index_mb(layout),
                      "chroma": dir_mb(layout.chroma) if store is not None else None}
    out["peak_rss_mb_build"] = rss_mb()["peak_rss_mb"]


def replicate(folder: Path, source: Path, chunks: int, spans: bool = True) -> dict[str, Any]:
    """A store of `chunks` chunks made of copies of a smaller synthetic one (no Chroma), in SQL.

    Filling 1M chunks article by article takes over an hour on a loaded 2-core machine (the Python term
    analysis of every chunk); here every copy's rows are INSERT ... SELECTs of the source's, under new
    doc ids (`<doc_id>-r<k>`), and its keyword-index rows are the source chunks' terms (analysed once) under
    the copies' rowids. Term statistics scale as they would with distinct text (every document frequency
    times k); texts repeat, so scores tie across copies. Everything measured after the copy uses put.
    With spans=False the copies get no sentence-vector rows (the spans table keeps the source's): keyword
    search and put with the spans index do not read them, and copying them is most of the time.
    """
    from qa.store.documents import sqlite_store
    from qa.store.layout import DataLayout

    layout = DataLayout(folder / "data").create()
    src = sqlite_store(source / "data" / "docstore.sqlite")
    src.db.engine.raw_connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    src.close_thread()
    shutil.copyfile(source / "data" / "docstore.sqlite", layout.documents)
    docs = sqlite_store(layout.documents)
    db = docs.db.engine.raw_connection()
    db.execute("DROP INDEX IF EXISTS spans_doc")  # measure put as the product creates the store
    base_docs, base_chunks = docs.count()
    times = max(1, round(chunks / base_chunks))
    out: dict[str, Any] = {"chunks": base_chunks * times, "documents": base_docs * times, "chroma": False,
                           "fill": f"{times} copies of a {base_chunks}-chunk store (replicate"
                                   f"{'' if spans else ', spans table not copied'})"}
    top = db.execute("SELECT MAX(id) FROM chunks").fetchone()[0]
    with Stopwatch() as t:
        for k in range(1, times):
            with docs._tx() as tx:
                tx.execute(
                    "INSERT INTO documents (doc_id, title, source, published, url, path, text, content_hash, n_chunks,"
                    " embed_model) SELECT doc_id || ?, title, source, published, url, path, text, content_hash,"
                    " n_chunks, embed_model FROM documents WHERE doc_id NOT LIKE '%-r%'", (f"-r{k}",))
                tx.execute(
                    'INSERT INTO chunks (id, chunk_id, doc_id, idx, start, "end", source_key, day, n_terms) SELECT'
                    " id + ?, doc_id || ? || substr(chunk_id, length(doc_id) + 1), doc_id || ?, idx, start,"
                    " \"end\", source_key, day, n_terms FROM chunks WHERE id <= ?", (k * top, f"-r{k}", f"-r{k}", top))
                if spans:
                    tx.execute("INSERT INTO spans SELECT kind, doc_id || ?, start, \"end\", vector FROM spans"
                               " WHERE doc_id NOT LIKE '%-r%'", (f"-r{k}",))
            if k % 10 == 0 or k == times - 1:
                print(f"  copy {k} of {times - 1} written", file=sys.stderr, flush=True)
        with docs._tx() as tx:
            tx.execute("UPDATE meta SET value=(SELECT COUNT(*) FROM documents) WHERE key='documents'")
            tx.execute("UPDATE meta SET value=(SELECT COUNT(*) FROM chunks) WHERE key='chunks'")
            tx.execute("UPDATE meta SET value='replicated' WHERE key='keyword_generation'")
    out["docstore_fill_s"] = round(t.seconds, 1)
    with Stopwatch() as t:
        docs.keyword_catch_up()  # the copies' keyword index, built from the SQL store as on an upgrade
    out["keyword_index_build_s"] = round(t.seconds, 1)
    out["documents"], out["chunks"] = docs.count()
    synthetic = Synthetic(seed=11)
    finish(layout, docs, None, synthetic, out["chunks"], first=10_000_000, existing=base_docs, out=out, as_is=spans)
    return out


def interleaved_adds(folders: list[Path], rounds: int = 20) -> dict[str, Any]:
    """Add one article (and replace one) in each store in turn, round after round, so that every size sees the
    same machine load: on a shared machine this, not runs minutes apart, shows whether the cost is flat.
    The stores get the spans index first (see finish)."""
    from qa.embedding.onnx import ONNX_MODEL_ID
    from qa.store.documents import sqlite_store

    stores = []
    for folder in folders:
        docs = sqlite_store(folder / "data" / "docstore.sqlite")
        docs.db.engine.raw_connection().execute(SPANS_DOC_INDEX)
        base = docs.db.engine.raw_connection().execute("SELECT COUNT(*) FROM documents WHERE doc_id NOT LIKE '%-r%'"
                                    " AND doc_id < 'syn-1'").fetchone()[0]
        stores.append((folder, docs, min(base, 10_000)))
    synthetic = Synthetic(seed=13)
    samples: dict[str, dict[str, list[float]]] = {str(f): {"new": [], "replace": []} for f, _, _ in stores}
    for r in range(rounds):
        for folder, docs, existing in stores:
            for kind, (article, chunks, rows) in (("new", synthetic.article(20_000_000 + r)),
                                                   ("replace", synthetic.article((r * 7919 + 13) % existing, 3))):
                started = time.perf_counter()
                docs.mark_pending(article.doc_id)
                docs.put(article, f"interleaved-{r}", chunks, rows, ONNX_MODEL_ID)
                samples[str(folder)][kind].append((time.perf_counter() - started) * 1000)
    return {str(folder): {"chunks": docs.count()[1], **{k: percentiles(v) for k, v in samples[str(folder)].items()}}
            for folder, docs, _ in stores}


def _timed(fn: Any, n: int, budget_s: float = 90.0) -> dict[str, float]:
    """Latency percentiles of fn(0..n-1), stopping early once budget_s is spent (`n` says how many ran)."""
    samples = []
    deadline = time.perf_counter() + budget_s
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - started) * 1000)
        if started > deadline:
            break
    return percentiles(samples)


def measure(folder: Path) -> dict[str, Any]:
    """Run in a fresh process: start-up, memory and per-part query latency on one data folder."""
    started = time.perf_counter()
    from bench.latency import bbc_questions
    from qa.retrieval.filters import Filters
    from qa.service import build_service

    imported = time.perf_counter()
    data_dir = folder / "data"
    has_chroma = (data_dir / "chroma").exists()
    settings = bench_settings(data_dir, retriever="hybrid" if has_chroma else "bm25")
    service = build_service(settings)
    service.startup()
    built = time.perf_counter()
    questions = bbc_questions(QUERIES)
    first = service.ask(questions[0]).model_dump()
    ready = time.perf_counter()
    out: dict[str, Any] = {
        "retriever": settings.retriever,
        "startup_s": {"imports": round(imported - started, 2), "build_service": round(built - imported, 2),
                      "first_query": round(ready - built, 2), "total": round(ready - started, 2)},
        "first_query_timings_ms": first["timings_ms"], "rss_after_first_query_mb": rss_mb()["rss_mb"],
    }
    docs, retriever = service.docs, service.retriever
    filters = [Filters(source=SOURCES[i % 5], published_from=date(2016, 1, 1)).compiled() for i in range(5)]
    out["keyword_search_ms"] = _timed(lambda i: docs.keyword_search(questions[i], 30), QUERIES)
    out["keyword_search_filtered_ms"] = _timed(
        lambda i: docs.keyword_search(questions[i], 30, filters[i % 5]), QUERIES)
    out["keyword_search_source_only_ms"] = _timed(
        lambda i: docs.keyword_search(questions[i], 30, Filters(source=SOURCES[i % 5]).compiled()), QUERIES)
    ids = [chunk_id for chunk_id, _ in docs.keyword_search(questions[0], 60)]
    out["docstore_get_chunks_60_ms"] = _timed(lambda i: docs.get_chunks(ids), 50)
    out["docstore_count_ms"] = _timed(lambda i: docs.count(), 20)
    out["health_ms"] = _timed(lambda i: service.health(), 20) if has_chroma else None
    if has_chroma:
        vectors = service.indexer.embedder.embed(questions)
        index = service.vectors
        out["chroma_query_ms"] = _timed(lambda i: index.query(vectors[i], 30), QUERIES)
        out["chroma_query_filtered_ms"] = _timed(
            lambda i: index.query(vectors[i], 30, {"source": SOURCES[i % 5].casefold()}), QUERIES)
        out["chroma_delete_absent_doc_ms"] = _timed(lambda i: index.delete_doc(f"absent-{i}"), 20)
        out["chroma_ids_for_doc_ms"] = _timed(lambda i: index.ids_for(f"syn-{i * 7:07d}"), 20)
    out["retrieve_ms"] = _timed(lambda i: retriever.retrieve(questions[i], 5), QUERIES)
    out["ask_ms"] = _timed(lambda i: service.ask(questions[i]).model_dump(), QUERIES)
    out["rss_after_queries_mb"] = rss_mb()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--chroma-max", type=int, default=10_000, help="largest size that also gets Chroma")
    parser.add_argument("--chroma-sizes", default="", help="extra Chroma-backed sizes (e.g. 300000)")
    parser.add_argument("--bulk-from", type=int, default=None,
                        help=f"fill sizes from this many chunks with one transaction per {BULK_ARTICLES} articles")
    parser.add_argument("--replicate-from", type=int, default=None,
                        help="make sizes above this one by copying its folder (built in this run or kept) in SQL")
    parser.add_argument("--replicate-without-spans", action="store_true",
                        help="copies get no sentence-vector rows (see replicate)")
    parser.add_argument("--keep", type=Path, default=None, help="build the data folders here and keep them")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--interleave", default=None,
                        help="comma-separated size folders (kept with --keep): add-one-article in each in turn")
    parser.add_argument("--name", default="scale")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    if args.interleave:
        result = interleaved_adds([Path(f) for f in args.interleave.split(",")])
        for folder, row in result.items():
            print(f"{folder}: {row}", flush=True)
        print(f"saved {save(args.name, {'interleaved_add_one_article': result})}")
        return

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    extra = [int(s) for s in args.chroma_sizes.split(",") if s]
    results = []
    try:
        for size in sorted(set(sizes + extra)):
            folder = root / f"chunks-{size}"
            if folder.exists():
                shutil.rmtree(folder)
            with_chroma = size <= args.chroma_max or size in extra
            bulk = args.bulk_from is not None and size >= args.bulk_from
            print(f"building {size} chunks (chroma: {with_chroma}) in {folder} ...", flush=True)
            call = f"build(Path({str(folder)!r}), {size}, {with_chroma}, {bulk})"
            if args.replicate_from is not None and size > args.replicate_from:
                source = root / f"chunks-{args.replicate_from}"
                spans = not args.replicate_without_spans
                call = f"replicate(Path({str(folder)!r}), Path({str(source)!r}), {size}, {spans})"
            with Stopwatch() as t:
                built = subprocess.run(
                    [sys.executable, "-c", "import json, sys; from pathlib import Path; from bench.scale import build,"
                     f" replicate; print(json.dumps({call}))"],
                    cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True,
                )
            row = json.loads(built.stdout.strip().splitlines()[-1])
            row["build_total_s"] = round(t.seconds, 1)
            print(f"  built: {row}", flush=True)
            measured = subprocess.run([sys.executable, "-m", "bench.scale", "--measure", str(folder)], cwd=ROOT,
                                      stdout=subprocess.PIPE, text=True)
            if measured.returncode:
                print(f"  measuring failed (exit {measured.returncode}); rerun: python -m bench.scale --measure "
                      f"{folder}", flush=True)
                results.append(row)
                continue
            row["measure"] = json.loads(measured.stdout.strip().splitlines()[-1])
            for key, value in row["measure"].items():
                print(f"  {key}: {value}", flush=True)
            results.append(row)
            save(args.name, {"sizes": results})  # after each size, so a long run keeps what it measured
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"saved {save(args.name, {'sizes': results})}")


if __name__ == "__main__":
    main()
