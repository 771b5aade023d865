"""The keyword engine at scale, side by side in one run: tantivy (what ships, issue 22) against the previous
release's SQL ranking (SQLite FTS5 postings + Lucene BM25 computed in SQL, and FTS5's own `bm25()` with
`ORDER BY rank LIMIT 30`), over the same N synthetic chunks, queries interleaved so machine load hits all alike.

    python -m bench.keyword_engine --chunks 1000000                  # embedded store (SQLite + tantivy)
    python -m bench.keyword_engine --chunks 1000000 --postgres       # and the PostgreSQL store (replica index)
    python -m bench.keyword_engine --chunks 10000 --adds-only DIR    # add-one-article in a kept folder

Chunks are distinct 50-word windows of the BBC corpus (real term statistics), 10 per article, five sources,
dates over three years. The folder is filled with bulk SQL (documents and chunks rows, as put writes them);
the tantivy index is then built from the SQL store exactly as an upgraded data folder builds it on first start
(timed). The previous release's FTS5 table is built beside it from the same chunks (Python analysis,
qa.lexicon.terms, as that release indexed). Then, in a fresh process: cold start (build_service + start-up +
first answer), `ask` p50 (keyword retriever: no Chroma at this size), and add-one-article (put + index
catch-up) at this size and at 10k, interleaved. Every query phase has a time budget (--budget), so a 1M
run is bounded: the SQL ranking is measured on as many queries as fit.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.common import ROOT, bbc_files, percentiles, save

CHUNKS_PER_DOC = 10
WORDS_PER_CHUNK = 50
SOURCES = ("BBC", "Reuters", "AP", "RT", "AFP")
BM25_K1, BM25_B = 1.5, 0.75  # the previous release's SQL ranking


def bbc_words() -> list[str]:
    words: list[str] = []
    for path in bbc_files():
        words.extend(re.findall(r"[A-Za-z0-9'£$%-]+", path.read_bytes().decode("utf-8", "replace")))
    return words


def fill(folder: Path, chunks: int, seed: int = 7) -> dict[str, Any]:
    """A data folder of `chunks` chunks in the SQL store (bulk SQL), then its tantivy index built from it."""
    from qa.store.documents import sqlite_store
    from qa.store.layout import DataLayout

    layout = DataLayout(folder / "data").create()
    docs = sqlite_store(layout.documents, layout.keyword_index)
    words, rng = bbc_words(), random.Random(seed)
    articles = chunks // CHUNKS_PER_DOC
    started = time.perf_counter()
    for first in range(0, articles, 5000):
        documents, rows = [], []
        for i in range(first, min(first + 5000, articles)):
            doc_id, parts, offset = f"syn-{i:07d}", [], 0
            for c in range(CHUNKS_PER_DOC):
                at = rng.randrange(0, len(words) - WORDS_PER_CHUNK)
                text = " ".join(words[at : at + WORDS_PER_CHUNK]) + "."
                day = date(2015, 1, 1) + timedelta(days=rng.randrange(3 * 365))
                rows.append((f"{doc_id}:v1:{c}", doc_id, c, offset, offset + len(text),
                             SOURCES[i % 5].casefold(), int(day.strftime("%Y%m%d"))))
                parts.append(text)
                offset += len(text) + 2
            documents.append((doc_id, f"Synthetic {i}", SOURCES[i % 5], day.isoformat(), "\n\n".join(parts),
                               f"fp-{i}", CHUNKS_PER_DOC, "bench"))
        with docs._tx() as db:
            db.executemany("INSERT INTO documents (doc_id, title, source, published, text, content_hash, n_chunks,"
                           " embed_model) VALUES (?,?,?,?,?,?,?,?)", documents)
            db.executemany('INSERT INTO chunks (chunk_id, doc_id, idx, start, "end", source_key, day)'
                           " VALUES (?,?,?,?,?,?,?)", rows)
    with docs._tx() as db:
        db.execute("UPDATE meta SET value=? WHERE key='documents'", (str(articles),))
        db.execute("UPDATE meta SET value=? WHERE key='chunks'", (str(articles * CHUNKS_PER_DOC),))
        db.execute("UPDATE meta SET value='bench-fill' WHERE key='keyword_generation'")
    out: dict[str, Any] = {"chunks": articles * CHUNKS_PER_DOC, "sql_fill_s": round(time.perf_counter() - started, 1)}
    started = time.perf_counter()
    docs.keyword.rebuild()
    out["tantivy_build_from_sql_s"] = round(time.perf_counter() - started, 1)
    out["tantivy_index_mb"] = round(sum(p.stat().st_size for p in layout.keyword_index.iterdir()) / 2**20, 1)
    print(f"  filled: {out}", file=sys.stderr, flush=True)
    return out


def add_fts5(folder: Path) -> dict[str, Any]:
    """The previous release's keyword index, beside it: an FTS5 table of each chunk's analysed terms (named `old_terms`:
    under its old name the store would drop it as a legacy table when it opens)."""
    from qa.lexicon import terms
    from qa.store.documents import sqlite_store

    docs = sqlite_store(folder / "data" / "docstore.sqlite", folder / "data" / "keyword-index")
    conn = docs.db.engine.raw_connection()
    started = time.perf_counter()
    conn.executescript(
        "DROP TABLE IF EXISTS old_terms_df; DROP TABLE IF EXISTS old_terms_postings; DROP TABLE IF EXISTS old_terms;"
        "CREATE VIRTUAL TABLE old_terms USING fts5(terms, content='',"
        " tokenize=\"unicode61 remove_diacritics 0 tokenchars '_'\");"
        "CREATE VIRTUAL TABLE old_terms_df USING fts5vocab(old_terms, 'row');"
        "CREATE VIRTUAL TABLE old_terms_postings USING fts5vocab(old_terms, 'instance');")
    total = 0
    doc_ids = [r[0] for r in conn.execute("SELECT doc_id FROM documents")]
    for at in range(0, len(doc_ids), 2000):
        with docs._tx() as db:
            for doc_id in doc_ids[at : at + 2000]:
                text = db.execute("SELECT text FROM documents WHERE doc_id=?", (doc_id,)).fetchone()[0]
                rows = db.execute('SELECT id, start, "end" FROM chunks WHERE doc_id=?', (doc_id,)).fetchall()
                analysed = [(i, terms(text[s:e])) for i, s, e in rows]
                db.executemany("INSERT INTO old_terms(rowid, terms) VALUES (?, ?)",
                               [(i, " ".join(t)) for i, t in analysed])
                db.executemany("UPDATE chunks SET n_terms=? WHERE id=?", [(len(t), i) for i, t in analysed])
                total += sum(len(t) for _, t in analysed)
    with docs._tx() as db:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('old_terms_total', ?)", (str(total),))
    out = {"fts5_build_s": round(time.perf_counter() - started, 1)}
    print(f"  fts5: {out}", file=sys.stderr, flush=True)
    return out


def sql_bm25(conn: Any, query: str, n: int) -> list[tuple[str, float]]:
    """The previous release's SQLiteStore.keyword_search (FTS5 postings, Lucene BM25 in SQL), unchanged."""
    from qa.lexicon import terms

    wanted = Counter(terms(query))
    if not wanted:
        return []
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('chunks', 'old_terms_total')"))
    n_chunks, n_terms = int(meta["chunks"]), int(meta["old_terms_total"])
    marks = ",".join("?" * len(wanted))
    df = dict(conn.execute(f"SELECT term, doc FROM old_terms_df WHERE term IN ({marks})", list(wanted)))
    weights = [(t, q * math.log(1 + (n_chunks - df[t] + 0.5) / (df[t] + 0.5))) for t, q in wanted.items()
               if t in df]
    if not weights:
        return []
    postings = " UNION ALL ".join("SELECT doc, term, ? AS weight FROM old_terms_postings WHERE term = ?"
                                  for _ in weights)
    rows = conn.execute(
        f"SELECT c.chunk_id, SUM(p.weight * p.tf / (p.tf + ? * (1 - ? + ? * c.n_terms / ?))) AS score"
        f" FROM (SELECT doc, weight, COUNT(*) AS tf FROM ({postings}) GROUP BY doc, term) p"
        f" JOIN chunks c ON c.id = p.doc GROUP BY p.doc ORDER BY score DESC, c.chunk_id LIMIT ?",
        [BM25_K1, BM25_B, BM25_B, n_terms / n_chunks, *[v for t, w in weights for v in (w, t)], n],
    )
    return [(chunk_id, float(score)) for chunk_id, score in rows]


def fts5_rank(conn: Any, query: str, n: int) -> list[tuple[int, float]]:
    """FTS5's built-in bm25() (k1=1.2), ORDER BY rank LIMIT n."""
    from qa.lexicon import terms

    expression = " OR ".join(f'"{t}"' for t in dict.fromkeys(terms(query))) or '""'
    return conn.execute("SELECT rowid, rank FROM old_terms WHERE old_terms MATCH ? ORDER BY rank LIMIT ?",
                        (expression, n)).fetchall()


def compare(folder: Path, questions: list[str], budget: float) -> dict[str, Any]:
    """Per question, in turn: tantivy, tantivy filtered, the SQL BM25, FTS5 rank; each engine stops when its
    time budget is spent (tantivy never does)."""
    from qa.store.documents import sqlite_store
    from qa.store.filters import ChunkFilter

    docs = sqlite_store(folder / "data" / "docstore.sqlite", folder / "data" / "keyword-index")
    started = time.perf_counter()
    docs.keyword_catch_up()  # a no-op unless the index is missing or of another schema (then: built from SQL)
    caught_up = round(time.perf_counter() - started, 1)
    conn = docs.db.engine.raw_connection()
    engines = {
        "tantivy": lambda q: docs.keyword_search(q, 30),
        "tantivy_filtered": lambda q: docs.keyword_search(q, 30, ChunkFilter("bbc", 20160101, 0)),
        "sql_bm25_fts5": lambda q: sql_bm25(conn, q, 30),
        "fts5_rank_limit_30": lambda q: fts5_rank(conn, q, 30),
    }
    samples: dict[str, list[float]] = {name: [] for name in engines}
    cpu: dict[str, list[float]] = {name: [] for name in engines}  # this process's CPU time: load-independent
    spent = dict.fromkeys(engines, 0.0)
    same_top10 = overlap = compared = 0
    for q in questions:
        results = {}
        for name, run in engines.items():
            if spent[name] > budget:
                continue
            started, cpu_started = time.perf_counter(), time.process_time()
            results[name] = run(q)
            took = time.perf_counter() - started
            spent[name] += took
            samples[name].append(took * 1000)
            cpu[name].append((time.process_time() - cpu_started) * 1000)
        if "sql_bm25_fts5" in results:
            new, old = [c for c, _ in results["tantivy"][:10]], [c for c, _ in results["sql_bm25_fts5"][:10]]
            compared += 1
            same_top10 += new == old
            overlap += len(set(new) & set(old))
    out: dict[str, Any] = {"index_catch_up_s": caught_up}
    out.update({f"{name}_ms": percentiles(v) for name, v in samples.items()})
    out.update({f"{name}_cpu_ms": percentiles(v) for name, v in cpu.items()})
    out.update({f"{name}_cpu_ms": percentiles(v) for name, v in cpu.items()})
    out["top10_vs_sql_bm25"] = {"questions": compared, "identical_lists": same_top10,
                                "mean_overlap": round(overlap / max(compared, 1), 2)}
    return out


def service_phase(folder: Path, questions: list[str], budget: float) -> dict[str, Any]:
    """Run in a fresh process: cold start, first answer, `ask` p50 with the keyword retriever."""
    started = time.perf_counter()
    from bench.common import bench_settings
    from qa.service import build_service

    settings = bench_settings(folder / "data", retriever="bm25")
    service = build_service(settings)
    service.startup()
    built = time.perf_counter()
    first = service.ask(questions[0])
    ready = time.perf_counter()
    out: dict[str, Any] = {"cold_start_s": {"build_service_and_startup": round(built - started, 2),
                                            "first_answer": round(ready - built, 2),
                                            "total": round(ready - started, 2)},
                           "first_timings_ms": first.timings_ms}
    asked: list[float] = []
    retrieve: list[float] = []
    deadline = time.perf_counter() + budget
    for q in questions[1:]:
        t = time.perf_counter()
        result = service.ask(q)
        asked.append((time.perf_counter() - t) * 1000)
        retrieve.append(result.timings_ms["retrieve"])
        if time.perf_counter() > deadline:
            break
    out["ask_ms"] = percentiles(asked)
    out["ask_retrieve_ms"] = percentiles(retrieve)
    return out


def adds(folders: list[Path], rounds: int) -> dict[str, Any]:
    """Add one article (SQL put + keyword index catch-up) in each folder in turn, round after round."""
    from qa.sources.article import Article
    from qa.store import ChunkRow
    from qa.store.documents import sqlite_store

    words, rng = bbc_words(), random.Random(99)
    stores = [(f, sqlite_store(f / "data" / "docstore.sqlite", f / "data" / "keyword-index")) for f in folders]
    for _, docs in stores:
        docs.keyword_catch_up()
    samples: dict[str, dict[str, list[float]]] = {str(f): {"put": [], "index": []} for f in folders}
    for r in range(rounds):
        for folder, docs in stores:
            doc_id, parts, rows, offset = f"add-{r}", [], [], 0
            for c in range(CHUNKS_PER_DOC):
                at = rng.randrange(0, len(words) - WORDS_PER_CHUNK)
                text = " ".join(words[at : at + WORDS_PER_CHUNK]) + "."
                rows.append(ChunkRow(f"{doc_id}:v1:{c}", doc_id, c, offset, offset + len(text)))
                parts.append(text)
                offset += len(text) + 2
            article = Article(doc_id, f"Added {r}", "\n\n".join(parts), "BBC", date(2017, 1, 1))
            t0 = time.perf_counter()
            docs.put(article, f"add-{r}", rows, {}, "bench")
            t1 = time.perf_counter()
            docs.keyword_catch_up()
            t2 = time.perf_counter()
            samples[str(folder)]["put"].append((t1 - t0) * 1000)
            samples[str(folder)]["index"].append((t2 - t1) * 1000)
    return {str(f): {"chunks": d.count()[1], **{k: percentiles(v) for k, v in samples[str(f)].items()}}
            for f, d in stores}


def postgres_phase(folder: Path, questions: list[str], budget: float) -> dict[str, Any]:
    """The same chunks in PostgreSQL (COPY), a replica's tantivy index built from it (timed), and keyword search
    through SqlStore on PostgreSQL (the per-query head check included), against the SQLite store's, interleaved."""
    import sqlite3

    from qa.db import Database
    from qa.db.schema import EVERY_GROUP
    from qa.store.documents import SqlStore, sqlite_store
    from tests.support import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        url = server.create_database("bench")
        database = Database(url, EVERY_GROUP)
        source = sqlite3.connect(folder / "data" / "docstore.sqlite")
        started = time.perf_counter()
        with database.engine.raw_connection().driver_connection as conn:  # psycopg's COPY
            with conn.cursor().copy("COPY documents (doc_id, title, source, published, text, content_hash, n_chunks,"
                                    " embed_model) FROM STDIN") as copy:
                for row in source.execute("SELECT doc_id, title, source, published, text, content_hash, n_chunks,"
                                          " embed_model FROM documents"):
                    copy.write_row(row)
            with conn.cursor().copy('COPY chunks (chunk_id, doc_id, idx, start, "end", source_key, day)'
                                    " FROM STDIN") as copy:
                for row in source.execute('SELECT chunk_id, doc_id, idx, start, "end", source_key, day FROM chunks'):
                    copy.write_row(row)
            conn.execute("UPDATE meta SET value=(SELECT COUNT(*) FROM documents) WHERE key='documents'")
            conn.execute("UPDATE meta SET value=(SELECT COUNT(*) FROM chunks) WHERE key='chunks'")
        out: dict[str, Any] = {"postgres_copy_s": round(time.perf_counter() - started, 1)}
        with tempfile.TemporaryDirectory(prefix="qa-bench-replica-") as replica:
            store = SqlStore(database, Path(replica) / "keyword-index")
            started = time.perf_counter()
            store.keyword_catch_up()
            out["replica_index_build_s"] = round(time.perf_counter() - started, 1)
            local = sqlite_store(folder / "data" / "docstore.sqlite", folder / "data" / "keyword-index")
            local.keyword_catch_up()
            engines = {"postgres_tantivy": store, "sqlite_tantivy": local}
            samples: dict[str, list[float]] = {name: [] for name in engines}
            head: list[float] = []
            deadline = time.perf_counter() + budget
            same = 0
            for q in questions:
                got = {}
                for name, docs in engines.items():
                    t = time.perf_counter()
                    got[name] = docs.keyword_search(q, 30)
                    samples[name].append((time.perf_counter() - t) * 1000)
                same += [c for c, _ in got["postgres_tantivy"]] == [c for c, _ in got["sqlite_tantivy"]]
                t = time.perf_counter()
                store.keyword_head()
                head.append((time.perf_counter() - t) * 1000)
                if time.perf_counter() > deadline:
                    break
            out.update({f"{name}_ms": percentiles(v) for name, v in samples.items()})
            out["postgres_head_check_ms"] = percentiles(head)
            out["same_top30_as_sqlite"] = f"{same}/{len(samples['sqlite_tantivy'])}"
        database.close()
        return out
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per query phase and engine")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--adds", type=int, default=20, help="add-one-article rounds (10k and this size)")
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--service-phase", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from bench.latency import bbc_questions

    questions = bbc_questions(args.questions)
    if args.service_phase:
        print(json.dumps(service_phase(args.service_phase, questions, args.budget)))
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-keyword-"))
    big, small = root / f"chunks-{args.chunks}", root / "chunks-10000"
    out: dict[str, Any] = {"chunks": args.chunks, "questions": len(questions), "budget_s": args.budget}
    for folder, size in ((small, 10_000), (big, args.chunks)):
        if not (folder / "data" / "docstore.sqlite").exists():
            out[f"fill_{size}"] = fill(folder, size)
    if not (big / "data" / "fts5.done").exists():
        out["fts5"] = add_fts5(big)
        (big / "data" / "fts5.done").touch()
    out["keyword_top30"] = compare(big, questions, args.budget)
    print(f"  keyword: {out['keyword_top30']}", file=sys.stderr, flush=True)
    measured = subprocess.run([sys.executable, "-m", "bench.keyword_engine", "--service-phase", str(big),
                               "--questions", str(args.questions), "--budget", str(args.budget)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    out["service"] = json.loads(measured.stdout.strip().splitlines()[-1])
    print(f"  service: {out['service']}", file=sys.stderr, flush=True)
    out["add_one_article"] = adds([small, big], args.adds)
    print(f"  adds: {out['add_one_article']}", file=sys.stderr, flush=True)
    if args.postgres:
        out["postgres"] = postgres_phase(big, questions, args.budget)
        print(f"  postgres: {out['postgres']}", file=sys.stderr, flush=True)
    print(f"saved {save(f'keyword-engine-{args.chunks}', out)}")


if __name__ == "__main__":
    main()
