"""The stores at 100k and 1M chunks: build time, size on disk, start-up, memory and query latency.

    python -m bench.scale                                  # 100k and 1M chunks; Chroma up to 300k
    python -m bench.scale --sizes 100000 --chroma-max 100000 --keep /tmp/scale   (keep the data folders)

Synthetic but realistic: chunk texts are 50-word windows of the BBC corpus (real term statistics), 10 per
article, 3 sentences each, five sources, dates over three years; chunk vectors are clustered random unit
vectors (384-d). Each size gets a complete data folder (docstore.sqlite, bm25/, and chroma/ up to
--chroma-max chunks), built through the project's own classes (DocStore.put, KeywordIndex.build from
DocStore.iter_chunks as ingest does, ChromaIndex.upsert). Measurements then run in a fresh process per size
(`--measure DIR`), so start-up time and memory are those of a new worker. `python -m bench.latency
--data-dir DIR/data --corpus bbc` serves such a folder over HTTP.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
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


def bbc_words() -> list[str]:
    words: list[str] = []
    for path in bbc_files():
        words.extend(re.findall(r"[A-Za-z0-9'£$%-]+", path.read_bytes().decode("utf-8", "replace")))
    return words


def synthetic_doc(i: int, words: list[str], rng: random.Random) -> tuple[Any, list[Any], list[tuple[int, int]]]:
    """One article of CHUNKS_PER_DOC chunks (50-word BBC windows) with exact chunk and sentence offsets."""
    from qa.docstore import ChunkRow

    from qa.sources.article import Article

    doc_id = f"syn-{i:07d}"
    parts: list[str] = []
    chunks: list[ChunkRow] = []
    sentences: list[tuple[int, int]] = []
    offset = 0
    per = WORDS_PER_CHUNK // SENTENCES_PER_CHUNK
    for c in range(CHUNKS_PER_DOC):
        at = rng.randrange(0, len(words) - WORDS_PER_CHUNK)
        window = words[at : at + WORDS_PER_CHUNK]
        spans: list[tuple[int, int]] = []
        text = ""
        for s in range(SENTENCES_PER_CHUNK):
            piece = " ".join(window[s * per : (s + 1) * per if s < SENTENCES_PER_CHUNK - 1 else None])
            piece = piece[:1].upper() + piece[1:] + "."
            start = len(text) + (1 if text else 0)
            text = f"{text} {piece}" if text else piece
            spans.append((offset + start, offset + start + len(piece)))
        chunks.append(ChunkRow(f"{doc_id}:v1:{c}", doc_id, c, offset, offset + len(text)))
        sentences.extend(spans)
        parts.append(text)
        offset += len(text) + 2
    published = date(2015, 1, 1) + timedelta(days=rng.randrange(3 * 365))
    article = Article(doc_id, f"Synthetic article {i}", "\n\n".join(parts), SOURCES[i % len(SOURCES)], published)
    return article, chunks, sentences


def build(folder: Path, chunks: int, with_chroma: bool, seed: int = 7) -> dict[str, Any]:
    """A complete data folder of `chunks` chunks; returns build timings and sizes."""
    from qa.docstore import DocStore
    from qa.embeddings import ONNX_MODEL_ID
    from qa.keyword import KeywordIndex, day_number

    from qa.store.chroma import ChromaIndex

    data_dir = folder / "data"
    data_dir.mkdir(parents=True)
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    words = bbc_words()
    docs = DocStore(data_dir / "docstore.sqlite")
    store = ChromaIndex(ONNX_MODEL_ID, bench_settings(data_dir).collection, data_dir) if with_chroma else None
    centroids = nprng.normal(size=(256, 384)).astype(np.float32)
    out: dict[str, Any] = {"chunks": chunks, "documents": chunks // CHUNKS_PER_DOC, "chroma": with_chroma}
    docstore_s = chroma_s = 0.0
    pending_ids: list[str] = []
    pending_meta: list[dict] = []
    pending_vec: list[np.ndarray] = []

    def flush() -> float:
        if not pending_ids:
            return 0.0
        vectors = np.concatenate(pending_vec)
        with Stopwatch() as t:
            store.upsert(pending_ids, vectors, pending_meta)  # type: ignore[union-attr]
        pending_ids.clear()
        pending_meta.clear()
        pending_vec.clear()
        return t.seconds

    for i in range(chunks // CHUNKS_PER_DOC):
        article, rows, sentences = synthetic_doc(i, words, rng)
        sentence_vectors = nprng.normal(size=(len(sentences), 384)).astype(np.float32)
        sentence_vectors /= np.linalg.norm(sentence_vectors, axis=1, keepdims=True)
        with Stopwatch() as t:
            docs.put(article, f"synthetic-{i}", rows, sentences, sentence_vectors, ONNX_MODEL_ID)
        docstore_s += t.seconds
        if store is not None:
            vectors = centroids[i % 256] + 0.35 * nprng.normal(size=(len(rows), 384)).astype(np.float32)
            pending_vec.append(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
            pending_ids.extend(r.chunk_id for r in rows)
            meta = {"doc_id": article.doc_id, "source": article.source.casefold(),
                    "published_day": day_number(article.published)}
            pending_meta.extend({**meta, "idx": r.idx} for r in rows)
            if len(pending_ids) >= 10_000:
                chroma_s += flush()
        if (i + 1) % 10_000 == 0:
            print(f"  {(i + 1) * CHUNKS_PER_DOC} chunks written", file=sys.stderr, flush=True)
    if store is not None:
        chroma_s += flush()
    out["docstore_fill_s"] = round(docstore_s, 1)
    if store is not None:
        out["chroma_insert_s"] = round(chroma_s, 1)
        out["chroma_insert_per_s"] = round(chunks / chroma_s)
    with Stopwatch() as t:
        rows = sum(1 for _ in docs.iter_chunks())
    out["docstore_iter_chunks_s"] = round(t.seconds, 2)
    keyword = KeywordIndex(data_dir / "bm25")
    with Stopwatch() as t:
        keyword.build(docs.iter_chunks(), docs.generation())
    out["bm25_build_s"] = round(t.seconds, 1)
    out["bm25_rows"] = rows
    # What one more article costs at this size, as Indexer.ingest does it (embedding aside): Chroma
    # delete + upsert, the docstore row, then the keyword index rebuild.
    article, extra, sentences = synthetic_doc(chunks // CHUNKS_PER_DOC, words, rng)
    sentence_vectors = nprng.normal(size=(len(sentences), 384)).astype(np.float32)
    with Stopwatch() as t:
        if store is not None:
            store.delete_doc(article.doc_id)
            vectors = nprng.normal(size=(len(extra), 384)).astype(np.float32)
            store.upsert([r.chunk_id for r in extra], vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
                         [{"doc_id": article.doc_id, "source": article.source.casefold(),
                           "published_day": day_number(article.published), "idx": r.idx} for r in extra])
        docs.put(article, "synthetic-extra", extra, sentences, sentence_vectors, ONNX_MODEL_ID)
    out["one_article_writes_ms"] = round(t.seconds * 1000, 1)
    with Stopwatch() as t:
        keyword.build(docs.iter_chunks(), docs.generation())
    out["bm25_rebuild_after_one_article_s"] = round(t.seconds, 1)
    current = json.loads((data_dir / "bm25" / "CURRENT").read_text())["folder"]
    out["disk_mb"] = {"docstore": round(sum((data_dir / n).stat().st_size for n in ("docstore.sqlite",)) / 2**20, 1),
                      "bm25": dir_mb(data_dir / "bm25" / current),
                      "bm25_with_previous_version": dir_mb(data_dir / "bm25"),
                      "chroma": dir_mb(data_dir / "chroma") if store is not None else None}
    out["peak_rss_mb_build"] = rss_mb()["peak_rss_mb"]
    return out


def _timed(fn: Any, n: int) -> dict[str, float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def measure(folder: Path) -> dict[str, Any]:
    """Run in a fresh process: start-up, memory and per-part query latency on one data folder."""
    started = time.perf_counter()
    from bench.latency import bbc_questions
    from qa.service import build_service

    imported = time.perf_counter()
    data_dir = folder / "data"
    has_chroma = (data_dir / "chroma").exists()
    settings = bench_settings(data_dir, retriever="hybrid" if has_chroma else "bm25")
    pipeline = build_service(settings)
    pipeline.startup()
    built = time.perf_counter()
    questions = bbc_questions(QUERIES)
    first = pipeline.ask(questions[0]).model_dump()
    ready = time.perf_counter()
    out: dict[str, Any] = {
        "startup_s": {"imports": round(imported - started, 2), "build_service": round(built - imported, 2),
                      "first_query": round(ready - built, 2), "total": round(ready - started, 2)},
        "first_query_timings_ms": first["timings_ms"], "rss_after_first_query_mb": rss_mb()["rss_mb"],
    }
    retriever, keyword, docs = pipeline.retriever, pipeline.indexer.keyword, pipeline.docs
    vectors = pipeline.indexer.embedder.embed(questions)
    out["bm25_search_ms"] = _timed(lambda i: keyword.search(questions[i], 30), QUERIES)
    out["bm25_search_filtered_ms"] = _timed(
        lambda i: keyword.search(questions[i], 30, source=SOURCES[i % 5], day_from=20160101), QUERIES)
    ids = [h.chunk_id for h in keyword.search(questions[0], 60)]
    out["docstore_get_chunks_60_ms"] = _timed(lambda i: docs.get_chunks(ids), 50)
    out["docstore_count_ms"] = _timed(lambda i: docs.count(), 20)
    out["health_ms"] = _timed(lambda i: pipeline.health(), 20) if has_chroma else None
    if has_chroma:
        store = pipeline.indexer.store
        out["chroma_query_ms"] = _timed(lambda i: store.query(vectors[i], 30), QUERIES)
        out["chroma_query_filtered_ms"] = _timed(
            lambda i: store.query(vectors[i], 30, {"source": SOURCES[i % 5].casefold()}), QUERIES)
        out["chroma_delete_absent_doc_ms"] = _timed(lambda i: store.delete_doc(f"absent-{i}"), 20)
        out["chroma_ids_for_doc_ms"] = _timed(lambda i: store.ids_for(f"syn-{i * 7:07d}"), 20)
    out["retrieve_ms"] = _timed(lambda i: retriever.retrieve(questions[i], 5), QUERIES)
    out["ask_ms"] = _timed(lambda i: pipeline.ask(questions[i]).model_dump(), QUERIES)
    out["rss_after_queries_mb"] = rss_mb()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--chroma-max", type=int, default=300_000, help="largest size that also gets Chroma")
    parser.add_argument("--chroma-sizes", default="", help="extra Chroma-backed sizes (e.g. 300000)")
    parser.add_argument("--keep", type=Path, default=None, help="build the data folders here and keep them")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--name", default="scale")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
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
            print(f"building {size} chunks (chroma: {with_chroma}) in {folder} ...", flush=True)
            with Stopwatch() as t:
                built = subprocess.run(
                    [sys.executable, "-c", "import json, sys; from pathlib import Path; from bench.scale import build;"
                     f" print(json.dumps(build(Path({str(folder)!r}), {size}, {with_chroma})))"],
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
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"saved {save(args.name, {'sizes': results})}")


if __name__ == "__main__":
    main()
