"""Keyword search on PostgreSQL against the embedded SQLite store: answer quality on `qa eval` (the seeds,
in-process) on each store, and keyword query latency p50/p95 at N synthetic chunks (50-word windows of the BBC
corpus, real term statistics), the same rows written into both stores through their own put(). Both search a
tantivy index (the PostgreSQL one a replica's, fed from the database's change feed); bench.keyword_engine
measures them at 1M chunks against the previous release's SQL ranking.

    python -m bench.pg_keyword                      # eval comparison + latency at 100k chunks
    python -m bench.pg_keyword --chunks 20000 --skip-eval

Starts its own PostgreSQL (Debian's binaries, as the tests do) in a temporary folder.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, percentiles, save
from bench.latency import bbc_questions
from tests.support import SEEDS, PostgresServer

CHUNKS_PER_DOC = 10
WORDS_PER_CHUNK = 50


def eval_runs(postgres: PostgresServer) -> dict[str, Any]:
    from eval.dataset import load_dataset
    from eval.runner import RunConfig, run_in_process
    from qa.config import Settings

    dataset = load_dataset([ROOT / "eval" / "data"])
    results: dict[str, Any] = {}
    for name in ("sqlite", "postgres"):
        overrides: dict[str, Any] = {}
        if name != "sqlite":
            overrides["database_url"] = postgres.create_database("qa_eval")
        settings = Settings(_env_file=None, data_dir=Path("unused"), chroma_url=None, llm_base_url=None,
                            openai_api_key=None, **overrides)
        [run] = run_in_process(dataset, [RunConfig.from_settings(settings)], settings, [SEEDS])
        metrics = run.summary["metrics"]
        results[name] = {k: round(v, 3) for k, v in metrics.items() if isinstance(v, float) and "." not in k}
        print(name, results[name], flush=True)
    return results


def synthetic(i: int, words: list[str], rng: random.Random) -> tuple[Any, list[Any]]:
    from qa.sources.article import Article
    from qa.store import ChunkRow

    doc_id = f"syn-{i:07d}"
    parts, rows, offset = [], [], 0
    for c in range(CHUNKS_PER_DOC):
        at = rng.randrange(0, len(words) - WORDS_PER_CHUNK)
        text = " ".join(words[at : at + WORDS_PER_CHUNK]) + "."
        rows.append(ChunkRow(f"{doc_id}:v1:{c}", doc_id, c, offset, offset + len(text)))
        parts.append(text)
        offset += len(text) + 2
    return Article(doc_id, f"Synthetic {i}", "\n\n".join(parts), ("BBC", "Reuters", "AP")[i % 3], None), rows


def latency(postgres: PostgresServer, chunks: int, folder: Path, n_questions: int = 200) -> dict[str, Any]:
    import re

    from bench.common import bbc_files
    from qa.db import Database
    from qa.db.schema import EVERY_GROUP
    from qa.store.documents import SqlStore, sqlite_store

    words: list[str] = []
    for path in bbc_files():
        words.extend(re.findall(r"[A-Za-z0-9'£$%-]+", path.read_bytes().decode("utf-8", "replace")))
    stores = {"sqlite": sqlite_store(folder / "docstore.sqlite"),
              "postgres": SqlStore(Database(postgres.create_database("latency"), EVERY_GROUP), folder / "replica")}
    out: dict[str, Any] = {"chunks": chunks}
    for name, store in stores.items():
        rng = random.Random(7)
        started = time.perf_counter()
        for i in range(chunks // CHUNKS_PER_DOC):
            article, rows = synthetic(i, words, rng)
            store.put(article, f"fp-{i}", rows, {}, "bench")
        store.keyword_catch_up()
        out[f"{name}_build_s"] = round(time.perf_counter() - started, 1)
        print(name, "built", out[f"{name}_build_s"], "s", flush=True)
    with stores["postgres"].db.write() as conn:
        conn.exec_driver_sql("ANALYZE")
    questions = bbc_questions(n_questions)
    for name, store in stores.items():
        store.keyword_search(questions[0], 30)  # warm
        samples = []
        for q in questions:
            t = time.perf_counter()
            store.keyword_search(q, 30)
            samples.append((time.perf_counter() - t) * 1000)
        out[f"{name}_query_ms"] = percentiles(samples)
        print(name, out[f"{name}_query_ms"], flush=True)
    sqlite, pg = stores["sqlite"], stores["postgres"]
    same = sum([c for c, _ in sqlite.keyword_search(q, 10)] == [c for c, _ in pg.keyword_search(q, 10)]
               for q in questions)
    out["same_top10"] = f"{same}/{len(questions)}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--questions", type=int, default=200, help="BBC headlines timed per store")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the PostgreSQL server
    postgres = PostgresServer()
    postgres.start()
    try:
        if not args.skip_eval:
            save("pg-keyword-eval", {"eval": eval_runs(postgres)})
        if not args.skip_latency:
            with tempfile.TemporaryDirectory(prefix="qa-pgbench-") as tmp:
                result = latency(postgres, args.chunks, Path(tmp), args.questions)
                save(f"pg-keyword-{args.chunks}", {"latency": result})
    finally:
        postgres.close()


if __name__ == "__main__":
    main()
