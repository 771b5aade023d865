"""Query latency over HTTP: a bounded asyncio + httpx load generator against `qa serve` on 127.0.0.1.

    python -m bench.latency --corpus seeds
    python -m bench.latency --corpus bbc --data-dir /tmp/bench-bbc/data   (from `bench.ingest --keep`)
    python -m bench.latency --url http://127.0.0.1:8000 ...                (a server you started)
    python -m bench.latency --corpus bbc --data-dir DIR --server-mode --workers 2
        (the compose topology: `chroma run` on a copy of DIR/chroma, the API with QA_CHROMA_URL)

Closed loop: C clients each send POST /ask one after another (keep-alive connections) until the request
budget or the time limit of that level is used up. Reports p50/p95/p99 and requests/s at each concurrency,
the server's own timings (timings_ms) and the load generator's CPU use (it shares the machine). Then the
streaming endpoint, one question at a time: time to the first SSE event of POST /chat (`sources`, what the
chat page shows first) and to the end of the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack
from itertools import cycle
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, bbc_files, bench_settings, percentiles, save, tree_rss_mb
from bench.server import chroma, serve


def seed_questions() -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "eval" / "data" / "questions.jsonl").read_text().splitlines()
            if line.strip()]
    return [row["question"] for row in rows]


def bbc_questions(n: int = 60) -> list[str]:
    """Questions a reader might ask about BBC stories, built from headlines (the first line of each file)."""
    templates = ("What happened with {}?", "Why {}?", "Who is involved in: {}?", "What did the report say about {}?")
    files = bbc_files(n)
    return [templates[i % len(templates)].format(f.read_text(errors="replace").splitlines()[0].strip().rstrip("."))
            for i, f in enumerate(files)]


async def level(url: str, questions: list[str], concurrency: int, requests: int, seconds: float) -> dict[str, Any]:
    """One concurrency level: latencies (ms) of every request, errors, and throughput."""
    source = cycle(questions)
    latencies: list[float] = []
    server: dict[str, list[float]] = {"total": [], "retrieve": [], "answer": []}
    errors = 0
    issued = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        async def worker() -> None:
            nonlocal errors, issued
            while issued < requests and time.perf_counter() < deadline:
                issued += 1
                started = time.perf_counter()
                try:
                    response = await client.post("/ask", json={"question": next(source)})
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = (time.perf_counter() - started) * 1000
                if not ok:
                    errors += 1
                    continue
                latencies.append(elapsed)
                timings = response.json()["timings_ms"]
                for key in server:
                    server[key].append(float(timings.get(key, 0.0)))

        cpu = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
    return {
        "concurrency": concurrency, "requests": len(latencies), "errors": errors,
        "seconds": round(wall, 2), "rps": round(len(latencies) / wall, 2),
        "latency_ms": percentiles(latencies),
        "server_ms_median": {k: round(statistics.median(v), 1) for k, v in server.items() if v},
        "loadgen_cpu_share": round(cpu / wall, 2),
    }


def chat_stream(url: str, questions: list[str]) -> dict[str, Any]:
    """POST /chat for each question in turn: ms to the first SSE event and to the end of the stream."""
    first: list[float] = []
    whole: list[float] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for question in questions:
            started = time.perf_counter()
            with client.stream("POST", "/chat", json={"question": question}) as response:
                response.raise_for_status()
                seen_event = False
                for line in response.iter_lines():
                    if line.startswith("event:") and not seen_event:
                        first.append((time.perf_counter() - started) * 1000)
                        seen_event = True
            whole.append((time.perf_counter() - started) * 1000)
    result = {"requests": len(whole), "first_event_ms": percentiles(first), "stream_ms": percentiles(whole)}
    print(f"/chat stream, one at a time: first event p50 {result['first_event_ms'].get('p50')} ms, "
          f"p95 {result['first_event_ms'].get('p95')} ms; whole stream p50 {result['stream_ms'].get('p50')} ms, "
          f"p95 {result['stream_ms'].get('p95')} ms", flush=True)
    return result


def run_levels(url: str, questions: list[str], levels: list[int], requests: int, seconds: float,
               pid: int | None) -> list[dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=60) as client:  # warm-up: first loads of the indexes and model
        for question in questions[:5]:
            client.post("/ask", json={"question": question}).raise_for_status()
    results = []
    for concurrency in levels:
        result = asyncio.run(level(url, questions, concurrency, max(requests, 2 * concurrency), seconds))
        if pid:
            result["server_rss_mb"] = tree_rss_mb(pid)
        lat = result["latency_ms"]
        print(f"c={concurrency:>2}: {result['requests']} req in {result['seconds']} s, {result['rps']} req/s, "
              f"p50 {lat.get('p50')} ms, p95 {lat.get('p95')} ms, p99 {lat.get('p99')} ms, errors "
              f"{result['errors']}, server median {result['server_ms_median']}", flush=True)
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=["seeds", "bbc"], default="seeds")
    parser.add_argument("--data-dir", type=Path, default=None, help="an indexed data folder (required for bbc)")
    parser.add_argument("--url", default=None, help="benchmark this running server instead of starting one")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=300, help="request budget per concurrency level")
    parser.add_argument("--seconds", type=float, default=60, help="time limit per concurrency level")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--chroma-url", default=None)
    parser.add_argument("--server-mode", action="store_true",
                        help="serve a copy of the data folder with `chroma run` on its chroma/ folder")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()

    levels = [int(c) for c in args.concurrency.split(",")]
    questions = seed_questions() if args.corpus == "seeds" else bbc_questions()
    workdir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    result: dict[str, Any] = {"corpus": args.corpus, "workers": args.workers, "questions": len(questions),
                              "server_mode": bool(args.server_mode or args.chroma_url),
                              "request_budget": args.requests, "seconds_limit": args.seconds}
    try:
        if args.url:
            result["levels"] = run_levels(args.url, questions, levels, args.requests, args.seconds, None)
            result["chat_stream"] = chat_stream(args.url, questions)
        else:
            data_dir = args.data_dir
            if data_dir is None:
                if args.corpus == "bbc":
                    raise SystemExit("--data-dir is required for bbc: python -m bench.ingest --keep DIR first")
                from qa.service import build_service

                data_dir = workdir / "data"
                build_service(bench_settings(data_dir)).ingest_paths([ROOT / "seeds"])
            with ExitStack() as stack:
                env = {"QA_CHROMA_URL": args.chroma_url} if args.chroma_url else {}
                if args.server_mode:
                    shutil.copytree(data_dir, workdir / "served")
                    data_dir = workdir / "served"
                    env["QA_CHROMA_URL"] = stack.enter_context(chroma(data_dir / "chroma"))
                url, pid, _ = stack.enter_context(serve(data_dir, workers=args.workers, log=workdir / "server.log",
                                                        **env))
                health = httpx.get(f"{url}/health").json()
                result.update(documents=health["documents"], chunks=health["chunks"], store=health["store"])
                print(f"{health['documents']} documents, {health['chunks']} chunks ({health['store']} store, "
                      f"{args.workers} worker(s))")
                result["levels"] = run_levels(url, questions, levels, args.requests, args.seconds, pid)
                result["chat_stream"] = chat_stream(url, questions)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    mode = "-server" if args.server_mode or args.chroma_url else ""
    workers = f"-w{args.workers}" if args.workers > 1 else ""
    print(f"saved {save(args.name or f'latency-{args.corpus}{mode}{workers}', result)}")


if __name__ == "__main__":
    main()
