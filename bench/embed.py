"""Embedding throughput of the pipeline's embedder against a bare onnxruntime loop, interleaved.

    python -m bench.embed [--articles 150]

The texts are what ingest embeds for BBC articles (chunks + sentences, in the Indexer's groups of
EMBED_GROUP_TEXTS). The embedder runs group by group; between groups a slice of the bare loop runs over
its share of the same texts, so machine noise hits both alike. Reports texts/s, CPU seconds and ratios.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import bbc_articles, bench_settings, save
from qa.answering.enrichments import sentence_spans
from qa.embedding.onnx import MAX_TOKENS, OnnxMiniLMEmbedding
from qa.indexing.chunking import Chunker
from qa.indexing.indexer import EMBED_GROUP_TEXTS
from qa.sources.article import Article


def ingest_groups(articles: list[Article], chunker: Chunker, sentences: bool = True) -> list[list[str]]:
    """The texts of each embed() call the Indexer makes for these articles: chunks, and sentences unless they
    are pooled from the chunk pass (`sentences=False`; they still count towards a group's size, as there)."""
    groups: list[list[str]] = []
    group: list[str] = []
    size = 0
    for article in articles:
        chunks = [article.text[c.start : c.end] for c in chunker.chunks(article)]
        spans = sentence_spans(article.text)
        group.extend(chunks)
        if sentences:
            group.extend(article.text[s:e] for s, e in spans)
        size += len(chunks) + len(spans)
        if size >= EMBED_GROUP_TEXTS:
            groups.append(group)
            group, size = [], 0
    if group:
        groups.append(group)
    return groups


class BareLoop:
    """The model alone: a session with the embedder's options, all texts pre-tokenized and cut into the
    embedder's batches, run `workers` at a time as the embedder does; only session.run is timed (no pooling,
    no Python per text)."""

    def __init__(self, embedder: OnnxMiniLMEmbedding, batch_size: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import onnxruntime as ort
        from tokenizers import Tokenizer

        from qa.embedding.onnx import _model_path, _tokenizer_path, session_options

        self.session = ort.InferenceSession(str(_model_path()), sess_options=session_options(),
                                            providers=["CPUExecutionProvider"])
        self.pool = ThreadPoolExecutor(embedder.workers)
        self.tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.no_padding()
        self.batch_size = batch_size

    def feeds(self, texts: list[str]) -> tuple[list[dict[str, np.ndarray]], int]:
        """The texts in the embedder's batches (similar lengths, at most batch_size rows and BATCH_TOKENS slots)."""
        from qa.embedding.onnx import _batches

        encodings = self.tokenizer.encode_batch(texts)
        feeds = []
        for idx in _batches([len(e.ids) for e in encodings], self.batch_size):
            batch = [encodings[i] for i in idx]
            width = max(len(e.ids) for e in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, enc in enumerate(batch):
                ids[row, : len(enc.ids)] = enc.ids
                mask[row, : len(enc.ids)] = 1
            feeds.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        return feeds, sum(len(e.ids) for e in encodings)

    def run(self, feeds: list[dict[str, np.ndarray]]) -> None:
        for _ in self.pool.map(lambda feed: self.session.run(["last_hidden_state"], feed), feeds):
            pass


def legacy_embed(embedder: OnnxMiniLMEmbedding, texts: list[str]) -> np.ndarray:
    """The embedder before the padding fix (kept to reproduce the before/after numbers): texts sorted by
    characters and cut into fixed batches of embed_batch_size, whatever their token lengths."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    step = embedder.embed_batch_size
    for start in range(0, len(order), step):
        idx = order[start : start + step]
        out[idx] = embedder.encode_batch([texts[i] for i in idx])
    return out


class Interleaved:
    """Bare-loop work cut into `parts` similar slices (round-robin over the length-sorted batches), run one at a
    time between pipeline steps, so both see the same machine load. Keeps its own wall and CPU totals."""

    def __init__(self, bare: BareLoop, texts: list[str], parts: int) -> None:
        self.bare = bare
        feeds, self.tokens = bare.feeds(texts)
        self.parts = [feeds[k::parts] for k in range(parts)]
        self.next = 0
        self.wall = self.cpu = 0.0

    def step(self) -> None:
        if self.next >= len(self.parts):
            return
        wall, cpu = time.perf_counter(), time.process_time()
        self.bare.run(self.parts[self.next])
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.next += 1

    def finish(self) -> None:
        while self.next < len(self.parts):
            self.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=150)
    parser.add_argument("--legacy", action="store_true", help="time the embedder as it was before the fix")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()

    settings = bench_settings(Path("/nonexistent"))
    embedder = OnnxMiniLMEmbedding(batch_size=settings.embed_batch_size, threads=settings.embed_threads)
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    articles = [a for a in bbc_articles(args.articles) if isinstance(a, Article)]
    groups = ingest_groups(articles, chunker)
    texts = [t for g in groups for t in g]
    bare = BareLoop(embedder, settings.embed_batch_size)
    interleaved = Interleaved(bare, texts, len(groups))
    print(f"{len(articles)} articles -> {len(texts)} texts, {interleaved.tokens} tokens, {len(groups)} embed() "
          f"calls, batch {settings.embed_batch_size}", flush=True)
    def embed(group: list[str]) -> np.ndarray:
        return legacy_embed(embedder, group) if args.legacy else embedder.embed(group)

    embed(texts[:64])
    bare.run(interleaved.parts[0][:1])  # warm-up
    wall = cpu = 0.0
    for k, group in enumerate(groups):
        if k % 2:
            interleaved.step()
        started, cpu_started = time.perf_counter(), time.process_time()
        embed(group)
        wall += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        if not k % 2:
            interleaved.step()
    interleaved.finish()
    result = {
        "embedder": "legacy (before)" if args.legacy else "current",
        "articles": len(articles), "texts": len(texts), "tokens": interleaved.tokens, "groups": len(groups),
        "batch_size": settings.embed_batch_size,
        "embedder_seconds": round(wall, 2), "bare_seconds": round(interleaved.wall, 2),
        "embedder_texts_per_s": round(len(texts) / wall, 1),
        "bare_texts_per_s": round(len(texts) / interleaved.wall, 1),
        "bare_tokens_per_s": round(interleaved.tokens / interleaved.wall),
        "ratio_wall": round(interleaved.wall / wall, 3),
        "ratio_cpu": round(interleaved.cpu / cpu, 3),
    }
    for key, value in result.items():
        print(f"  {key}: {value}")
    name = args.name or ("embed-legacy" if args.legacy else "embed")
    print(f"saved {save(name, result)}")


if __name__ == "__main__":
    main()
