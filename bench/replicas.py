"""Closed-loop /ask throughput with 1, 2 and 3 stateless API replicas on 127.0.0.1: one PostgreSQL
(QA_DATABASE_URL) and one `chroma run` server behind them, the seeds ingested once through the first replica,
then for each replica count a fixed number of client threads (each sends its next question as soon as the
previous answer arrives) spread round-robin over the replicas for a fixed time.

    python -m bench.replicas                       # 1, 2, 3 replicas, 8 clients, 30 s each
    python -m bench.replicas --clients 4 --seconds 20

On a 2-core machine the replicas compete for the same cores (each embeds its own questions with the ONNX
model), so this shows the overhead of the shared stores and how far the cores go, not the gain of adding
hosts; quote the ratios between rows of one run.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from itertools import cycle
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, percentiles, save
from bench.latency import seed_questions
from bench.server import chroma, serve
from tests.support import PostgresServer


def closed_loop(urls: list[str], questions: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """`clients` threads asking in a closed loop, client i on replica i mod len(urls)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(i: int) -> None:
        source = cycle(questions[i % len(questions):] + questions[: i % len(questions)])
        with httpx.Client(base_url=urls[i % len(urls)], timeout=60) as http:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    ok = http.post("/ask", json={"question": next(source)}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    if ok:
                        latencies.append((time.perf_counter() - started) * 1000)
                    else:
                        errors[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {"replicas": len(urls), "clients": clients, "requests": len(latencies), "errors": errors[0],
            "seconds": round(elapsed, 1), "req_per_s": round(len(latencies) / elapsed, 2),
            "latency_ms": percentiles(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,2,3")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]
    questions = seed_questions()
    rows: list[dict[str, Any]] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the PostgreSQL server
    postgres = PostgresServer()
    postgres.start()
    try:
        with tempfile.TemporaryDirectory(prefix="qa-replicas-") as tmp, ExitStack() as stack:
            root = Path(tmp)
            env = {"QA_DATABASE_URL": postgres.create_database("bench"),
                   "QA_CHROMA_URL": stack.enter_context(chroma(root / "chroma"))}
            urls: list[str] = []
            for n in range(max(counts)):
                folder = root / f"replica-{n}"
                folder.mkdir()
                url, _, seconds = stack.enter_context(serve(folder, **env))
                print(f"replica {n} ready in {seconds:.1f} s", flush=True)
                urls.append(url)
            files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in sorted((ROOT / "seeds").glob("*.txt"))]
            assert httpx.post(f"{urls[0]}/documents", files=files, timeout=600).status_code in (200, 201)
            closed_loop(urls, questions, len(urls), 5)  # warm every replica
            for n in counts:
                row = closed_loop(urls[:n], questions, args.clients, args.seconds)
                rows.append(row)
                print(row, flush=True)
    finally:
        postgres.close()
    base = rows[0]["req_per_s"] or 1
    for row in rows:
        row["throughput_vs_first"] = round(row["req_per_s"] / base, 2)
    print(f"{'replicas':>8} {'clients':>7} {'req/s':>7} {'x':>5} {'p50 ms':>8} {'p95 ms':>8} {'errors':>6}")
    for row in rows:
        lat = row["latency_ms"]
        print(f"{row['replicas']:>8} {row['clients']:>7} {row['req_per_s']:>7} {row['throughput_vs_first']:>5} "
              f"{lat.get('p50', 0):>8} {lat.get('p95', 0):>8} {row['errors']:>6}")
    save("replicas", {"clients": args.clients, "seconds": args.seconds, "rows": rows})


if __name__ == "__main__":
    main()
