"""Ingest the BBC corpus (2,225 articles) and compare embedding throughput with a bare onnxruntime loop.

    python -m bench.ingest [--limit N] [--chroma-url URL] [--keep DIR]

One `Indexer.ingest` call over the corpus, as `qa ingest` does it (read, clean, chunk, split sentences,
embed, write Chroma + docstore, rebuild BM25). The "bare loop" is the practical limit: the same ONNX model
with the same session options and batch size over exactly the texts the pipeline embedded, pre-tokenized
and sorted by length, only `session.run` timed. It runs in slices between the pipeline's embedding
groups (its time is taken out of the pipeline's), so both see the same machine load. The Indexer writes a
group on a background thread while it embeds the next one; how much of that writing overlapped a bare-loop
slice (and so was hidden by taking the slice's time out) is reported as `writer_during_bare_seconds`.
Then the unchanged corpus is ingested again (everything should be skipped).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Stopwatch, bbc_articles, bench_settings, dir_mb, rss_mb, save
from bench.embed import BareLoop, Interleaved, ingest_groups, legacy_embed
from qa.service import build_service
from qa.sources.article import Article


class InterleavingEmbedder:
    """The pipeline's embedder, with a slice of the bare loop run after each call (and timed apart)."""

    def __init__(self, inner: Any, bare: Interleaved, legacy: bool = False) -> None:
        self.inner = inner
        self.bare = bare
        self.legacy = legacy
        self.texts = 0
        self.seconds = 0.0
        self.cpu = 0.0
        self.calls = 0
        self.slices: list[tuple[float, float]] = []  # when each bare-loop slice ran

    alone = 0  # sentences embedded alone although pooling was on (no chunk held them whole)
    pooled = False  # True: the Indexer pools sentence vectors, so each group is one embed_with_spans() call

    def _step(self) -> None:
        started = time.perf_counter()
        self.bare.step()
        self.slices.append((started, time.perf_counter()))

    def embed(self, texts: list[str]) -> np.ndarray:
        wall, cpu = time.perf_counter(), time.process_time()
        out = legacy_embed(self.inner, texts) if self.legacy else self.inner.embed(texts)
        self.seconds += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.texts += len(texts)
        self.calls += 1
        if self.pooled:  # with pooling, embed() only takes the few sentences no chunk holds whole
            self.alone += len(texts)
        else:
            self._step()
        return out

    def embed_with_spans(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        out = self.inner.embed_with_spans(texts, spans)
        self.seconds += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.texts += len(texts)
        self.calls += 1
        self._step()
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class TimedWrites:
    """Wraps Indexer._write_group (run on the writer thread) to record when each group's write ran."""

    def __init__(self, write: Any) -> None:
        self.write = write
        self.spans: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def __call__(self, *args: Any) -> None:
        started = time.perf_counter()
        try:
            self.write(*args)
        finally:
            with self.lock:
                self.spans.append((started, time.perf_counter()))

    def overlap(self, slices: list[tuple[float, float]]) -> float:
        """Seconds of writing that ran while a bare-loop slice did."""
        return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in self.spans for s2, e2 in slices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="ingest only N articles (spread over topics)")
    parser.add_argument("--chroma-url", default=None, help="use a Chroma server instead of the embedded store")
    parser.add_argument("--keep", type=Path, default=None, help="keep the data folder here (for bench.latency)")
    parser.add_argument("--legacy-embedder", action="store_true",
                        help="embed as qa/embeddings.py did before the padding fix (bench.embed.legacy_embed)")
    parser.add_argument("--sentence-vectors", choices=["separate", "pooled", "lazy"], default=None,
                        help="QA_SENTENCE_VECTORS for this run (default: the setting's default); with pooled or"
                             " lazy, the bare loop runs over the chunks alone")
    parser.add_argument("--name", default=None, help="results file name under bench/results/")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    data_dir = args.keep or workdir / "data"
    if args.keep and args.keep.exists():
        shutil.rmtree(args.keep)
    settings = bench_settings(data_dir, chroma_url=args.chroma_url,
                              **({"sentence_vectors": args.sentence_vectors} if args.sentence_vectors else {}))
    pooled = settings.sentence_vectors == "pooled"
    if args.chroma_url:
        from qa.service import reset_index

        reset_index(settings)
    with Stopwatch() as build:
        pipeline = build_service(settings)
        pipeline.indexer.store.check()  # connect (and import chromadb) before timing
    embedder = pipeline.indexer.embedder

    print("preparing the bare loop's texts (the same chunking and sentence split as ingest) ...", flush=True)
    articles = [a for a in bbc_articles(args.limit) if isinstance(a, Article)]
    chunks_only = settings.sentence_vectors in ("pooled", "lazy")  # no sentence is embedded at ingest alone
    groups = ingest_groups(articles, pipeline.indexer.chunker, sentences=not chunks_only)
    texts = [t for g in groups for t in g]
    bare = Interleaved(BareLoop(embedder, settings.embed_batch_size), texts, len(groups))
    counting = InterleavingEmbedder(embedder, bare, legacy=args.legacy_embedder)
    counting.pooled = pooled
    pipeline.indexer.embedder = counting
    writes = TimedWrites(pipeline.indexer._write_group)
    pipeline.indexer._write_group = writes  # type: ignore[method-assign]
    embedder.embed(texts[:64])
    bare.bare.run(bare.parts[0][:1])  # warm-up both sessions
    print(f"{len(articles)} articles -> {len(texts)} texts ({bare.tokens} tokens) in {len(groups)} groups",
          flush=True)

    wall, cpu = time.perf_counter(), time.process_time()
    report = pipeline.indexer.ingest(bbc_articles(args.limit))
    first_wall = time.perf_counter() - wall - bare.wall
    first_cpu = time.process_time() - cpu - bare.cpu
    bare.finish()
    if counting.texts - counting.alone != len(texts):
        print(f"warning: the pipeline embedded {counting.texts} texts, the bare loop {len(texts)}")
    added = len(report.added)
    print(f"first ingest: {added} articles, {report.chunks_written} chunks, {counting.texts} texts in "
          f"{first_wall:.1f} s (embedding {counting.seconds:.1f} s; bare loop {bare.wall:.1f} s)", flush=True)

    counting.bare = Interleaved(bare.bare, [], 1)
    with Stopwatch() as again:
        report2 = pipeline.indexer.ingest(bbc_articles(args.limit))
    print(f"re-ingest unchanged: {len(report2.unchanged)} unchanged, {len(report2.added)} added in "
          f"{again.seconds:.2f} s", flush=True)

    result = {
        "store": "server" if args.chroma_url else "embedded", "indexer": "pipelined",
        "embedder": "legacy (before the padding fix)" if args.legacy_embedder else "current",
        "sentence_vectors": settings.sentence_vectors, "sentences_embedded_alone": counting.alone,
        "articles": added, "failed": len(report.failed), "chunks": report.chunks_written,
        "texts_embedded": counting.texts, "tokens_embedded": bare.tokens, "embed_calls": counting.calls,
        "batch_size": settings.embed_batch_size,
        "pipeline_build_seconds": round(build.seconds, 2),
        "first_ingest_seconds": round(first_wall, 2),
        "first_ingest_cpu_seconds": round(first_cpu, 2),
        "articles_per_s": round(added / first_wall, 2),
        "chunks_per_s": round(report.chunks_written / first_wall, 2),
        "pipeline_texts_per_s": round(counting.texts / first_wall, 1),
        "embed_stage_seconds": round(counting.seconds, 2),
        "embed_stage_texts_per_s": round(counting.texts / counting.seconds, 1),
        "bare_seconds": round(bare.wall, 2),
        "bare_cpu_seconds": round(bare.cpu, 2),
        "bare_texts_per_s": round(len(texts) / bare.wall, 1),
        "bare_tokens_per_s": round(bare.tokens / bare.wall),
        "ratio_pipeline_to_bare": round(bare.wall / first_wall, 3),
        "ratio_pipeline_to_bare_cpu": round(bare.cpu / first_cpu, 3),
        "ratio_embed_stage_to_bare": round(bare.wall / counting.seconds, 3),
        "writer_seconds": round(sum(e - s for s, e in writes.spans), 2),
        "writer_during_bare_seconds": round(writes.overlap(counting.slices), 3),
        "reingest_seconds": round(again.seconds, 3),
        "reingest_unchanged": len(report2.unchanged),
        "reingest_fraction": round(again.seconds / first_wall, 4),
        "data_dir_mb": dir_mb(data_dir),
        "memory": rss_mb(),
    }
    for key, value in result.items():
        print(f"  {key}: {value}")
    name = args.name or "-".join(["ingest", *([str(args.limit)] if args.limit else []),
                                  *(["legacy-embedder"] if args.legacy_embedder else [])])
    print(f"saved {save(name, result)}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
