"""A bounded load test of `POST /ask` on 127.0.0.1: a fixed number of requests at a fixed concurrency.

    python -m tests.reliability_load                       # 5,000 requests at concurrency 32 on a fresh server
    python -m tests.reliability_load --requests 500 --url http://127.0.0.1:8000

Without --url it indexes the seed articles into a temporary folder and starts `qa serve` there (one worker,
embedded Chroma, extractive answers). Only loopback addresses are accepted: this is not a tool for other hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

QUESTIONS = [
    "How many Tomahawk missiles did the US fire at the Shayrat Airbase?",
    "Where is the Shayrat Airbase?",
    "Who did Trump fire?",
    "What did Lavrov say about the meeting with Tillerson?",
    "How many people have died in the Syrian conflict since 2011?",
    "Who won the 2018 FIFA World Cup?",  # a refusal: the articles do not say
    "When did Tillerson visit Moscow?",
    "What is the Astana agreement?",
]


@dataclass
class LoadResult:
    """What a load run saw: per-request latencies (seconds) and every failure by kind."""

    requests: int
    concurrency: int
    wall_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return sum(self.failures.values())

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.requests, "concurrency": self.concurrency, "errors": self.errors,
            "failures": dict(self.failures), "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "wall_s": round(self.wall_seconds, 1), "req_per_s": round(self.requests / self.wall_seconds, 1),
            "p50_ms": round(self.percentile(0.50) * 1000), "p95_ms": round(self.percentile(0.95) * 1000),
            "p99_ms": round(self.percentile(0.99) * 1000), "max_ms": round(max(self.latencies, default=0) * 1000),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000) if self.latencies else 0,
        }


def _loopback(url: str) -> str:
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to load-test {host}: loopback addresses only")
    return url.rstrip("/")


async def _run(url: str, requests: int, concurrency: int, timeout: float) -> LoadResult:
    result = LoadResult(requests, concurrency)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            try:
                response = await client.post("/ask", json={"question": QUESTIONS[i % len(QUESTIONS)]})
                result.statuses[response.status_code] += 1
                if response.status_code != 200:
                    result.failures[f"HTTP {response.status_code}"] += 1
                elif "answer" not in response.json():
                    result.failures["no answer in body"] += 1
            except httpx.HTTPError as exc:
                result.failures[type(exc).__name__] += 1
            result.latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        result.wall_seconds = time.perf_counter() - started
    return result


def run_load(url: str, requests: int, concurrency: int, timeout: float = 60.0) -> LoadResult:
    """Send `requests` POST /ask at `concurrency` in flight to a loopback server; never raises per request.

    The event loop runs in its own thread, so this works from code that already has a loop running (e.g. a
    pytest session in which Playwright's sync API is active)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _run(_loopback(url), requests, concurrency, timeout)).result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running server on 127.0.0.1 (default: start one on the seeds)")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    if args.url:
        result = run_load(args.url, args.requests, args.concurrency)
    else:
        from qa.service import build_service
        from tests.conftest import make_settings
        from tests.support import SEEDS, api_server

        with tempfile.TemporaryDirectory(prefix="qa-load-") as tmp:
            data_dir = Path(tmp) / "data"
            build_service(make_settings(data_dir)).ingest_paths([SEEDS])
            with api_server(data_dir) as url:
                run_load(url, min(50, args.requests), min(8, args.concurrency))  # warm-up, not counted
                result = run_load(url, args.requests, args.concurrency)
    print(json.dumps(result.summary(), indent=2))
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
