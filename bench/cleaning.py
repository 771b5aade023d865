"""Cleaning time against line length (it must grow linearly), and /health latency while a 2 MB article is
uploaded to a real `qa serve` (the server must keep answering).

    python -m bench.cleaning                       # both parts
    python -m bench.cleaning --part cleaning       # only the in-process timing
    python -m bench.cleaning --part health --article prose --mb 2
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

try:  # the layout after issue 11
    from qa.sources.cleaning import clean_text
except ImportError:  # pragma: no cover - the flat layout before it
    from qa.documents import clean_text  # type: ignore[no-redef]

from bench.common import percentiles, save
from bench.server import serve

SIZES = (10_000, 20_000, 40_000, 80_000, 160_000)
BUDGET_S = 60.0  # a size whose predicted time exceeds this is not run (the growth is already shown)


def one_line(chars: int) -> str:
    """A title and one line of repeated capitalised words, the review's example of a quadratic input."""
    words = ("Zorbton " * (chars // 8 + 1))[:chars]
    return f"One line report\n{words}\n"


def prose(chars: int) -> str:
    """A title and ordinary paragraphs of distinct sentences, about `chars` long."""
    out, i = ["Harbour log"], 0
    while sum(len(p) + 2 for p in out) < chars:
        out.append(" ".join(f"Entry {i + j}: the Zorbton harbour logged ship number {i + j} on a calm day."
                            for j in range(5)))
        i += 5
    return "\n\n".join(out)


def _exponent(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of log(time) on log(size): 1 is linear, 2 quadratic."""
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(max(t, 1e-6)) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def bench_cleaning() -> dict[str, Any]:
    rows: list[tuple[int, float]] = []
    clean_text(one_line(1000))  # warm up (imports, compiled patterns) outside the timings
    print(f"{'line chars':>12} {'clean s':>10} {'MB/s':>8}")
    for size in (*SIZES, 2_000_000):
        predicted = 0.0
        if len(rows) >= 2:
            last_size, last_seconds = rows[-1]
            predicted = last_seconds * (size / last_size) ** _exponent(rows)
        if predicted > BUDGET_S:
            print(f"{size:>12} {'not run':>10}  (predicted {predicted:,.0f} s at the measured growth)")
            continue
        text = one_line(size)
        runs = []
        for _ in range(3 if predicted < BUDGET_S / 3 else 1):  # the fastest of 3: the machine is shared
            started = time.perf_counter()
            clean_text(text)
            runs.append(time.perf_counter() - started)
        seconds = min(runs)
        rows.append((size, seconds))
        print(f"{size:>12} {seconds:>10.3f} {size / 1e6 / max(seconds, 1e-9):>8.2f}")
    exponent = _exponent(rows) if len(rows) >= 2 else float("nan")
    print(f"growth exponent (log-log slope over {len(rows)} sizes): {exponent:.2f}  (1 = linear, 2 = quadratic)")
    return {"cleaning": [{"chars": n, "seconds": round(t, 4)} for n, t in rows], "exponent": round(exponent, 3)}


class GilTicker:
    """A thread that wakes every millisecond: the longest gap between its wake-ups is the longest time the
    measured work kept every other thread (an HTTP worker answering /health) from running."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            self.gaps.append(now - last)
            last = now

    def __enter__(self) -> GilTicker:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def bench_stages(megabytes: float) -> dict[str, Any]:
    """Seconds per CPU-bound ingest stage on a 2 MB article (one line, and prose), with the longest stall
    each stage caused another Python thread (what a server thread answering /health would wait)."""
    from qa.answering.enrichments import SentenceVectors, sentence_spans
    from qa.cpu import CpuPool
    from qa.indexing.chunking import Chunker
    from qa.indexing.indexer import prepare_article
    from qa.sources.cleaning import parse_article
    from qa.sources.uploads import parse_upload

    size = int(megabytes * 1_000_000) - 1_000
    chunker = Chunker(256, 32)
    out: dict[str, Any] = {}
    print(f"\n{'article':>10} {'stage':>8} {'seconds':>9} {'longest stall ms':>17}")
    for kind, make in (("one-line", one_line), ("prose", prose)):
        data = make(size).encode()
        stages: dict[str, Any] = {}
        article = None
        for stage in ("parse", "chunk", "spans"):
            with GilTicker() as ticker:
                started = time.perf_counter()
                if stage == "parse":
                    article = parse_article(f"{kind}.txt", data)
                elif stage == "chunk":
                    count = len(chunker.chunks(article))
                else:
                    count = len(sentence_spans(article.text))
                seconds = time.perf_counter() - started
            stall = max(ticker.gaps, default=0.0) * 1000
            stages[stage] = {"seconds": round(seconds, 3), "longest_stall_ms": round(stall, 1)}
            if stage != "parse":
                stages[stage]["count"] = count
            print(f"{kind:>10} {stage:>8} {seconds:>9.2f} {stall:>17.1f}")
        # the same work as the server does it: in the worker process of qa/cpu.py, this thread only waiting
        pool = CpuPool()
        pool.run(parse_upload, "warm.txt", b"Warm up\n\nThe worker starts.", None)
        with GilTicker() as ticker:
            started = time.perf_counter()
            parsed = pool.run(parse_upload, f"{kind}.txt", data, None)
            pool.run(prepare_article, parsed, 256, 32, [SentenceVectors()])
            seconds = time.perf_counter() - started
        pool.close()
        stall = max(ticker.gaps, default=0.0) * 1000
        stages["worker_process"] = {"seconds": round(seconds, 3), "longest_stall_ms": round(stall, 1)}
        print(f"{kind:>10} {'all, in worker':>8} {seconds:>9.2f} {stall:>17.1f}")
        out[kind] = stages
    return out


def bench_health(article: str, megabytes: float) -> dict[str, Any]:
    size = int(megabytes * 1_000_000) - 1_000  # "2 MB" stays under the default 2,000,000-byte upload limit
    text = (one_line(size) if article == "one-line" else prose(size)).encode()
    with tempfile.TemporaryDirectory() as tmp, \
            serve(Path(tmp) / "data", log=Path(tmp) / "server.log") as (url, _pid, _):
        idle: list[float] = []
        with httpx.Client(base_url=url, timeout=120) as http:
            for _ in range(20):
                started = time.perf_counter()
                http.get("/health")
                idle.append((time.perf_counter() - started) * 1000)
        result: dict[str, Any] = {}

        def upload() -> None:
            started = time.perf_counter()
            with httpx.Client(base_url=url, timeout=3600) as http:
                response = http.post("/documents", files={"files": ("big.txt", text, "text/plain")})
            result.update(status=response.status_code, seconds=time.perf_counter() - started,
                          body=response.json())

        worker = threading.Thread(target=upload)
        worker.start()
        during: list[float] = []
        progress: list[dict] = []
        with httpx.Client(base_url=url, timeout=120) as http:
            while worker.is_alive():
                started = time.perf_counter()
                health = http.get("/health").json()
                during.append((time.perf_counter() - started) * 1000)
                if health.get("ingest"):
                    progress.append(health["ingest"])
                time.sleep(0.1)
        worker.join()
    chunks = result["body"].get("chunks_written")
    if result["status"] >= 400:
        print(f"upload refused: {result['body']}")
    print(f"\n/health during a {megabytes:g} MB {article} upload (status {result['status']}, "
          f"{result['seconds']:.1f} s, {chunks} chunks written, {result['seconds'] / megabytes:.1f} s per MB)")
    print(f"{'':>8} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
    for name, samples in (("idle", idle), ("upload", during)):
        p = percentiles(samples)
        print(f"{name:>8} {p['n']:>5} {p.get('p50', 0):>9.1f} {p.get('p95', 0):>9.1f} {p.get('max', 0):>9.1f}")
    if progress:
        print(f"progress seen on /health: {len(progress)} samples, last {progress[-1]}")
    return {"article": article, "megabytes": megabytes, "upload_status": result["status"],
            "upload_seconds": round(result["seconds"], 2), "chunks_written": chunks,
            "seconds_per_mb": round(result["seconds"] / megabytes, 2), "health_idle_ms": percentiles(idle),
            "health_during_upload_ms": percentiles(during), "progress_samples": len(progress)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "cleaning", "stages", "health"], default="all")
    parser.add_argument("--article", choices=["one-line", "prose"], default="one-line")
    parser.add_argument("--mb", type=float, default=2.0)
    parser.add_argument("--save", default="", help="write bench/results/<name>.json")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    if args.part in ("all", "cleaning"):
        out.update(bench_cleaning())
    if args.part in ("all", "stages"):
        out["stages"] = bench_stages(args.mb)
    if args.part in ("all", "health"):
        out["health"] = bench_health(args.article, args.mb)
    if args.save:
        print(f"saved {save(args.save, out)}")


if __name__ == "__main__":
    main()
