"""Cold start of `qa serve`: seconds from launching the process until GET /health answers 200, and until the
first POST /ask is answered (which loads the HNSW and BM25 indexes and runs the model for the first time).

    python -m bench.coldstart [--data-dir DIR] [--runs 5]

Without --data-dir the seeds are ingested into a temporary folder first. Also times the bare imports
(`python -c "import api.app"`), the floor any start-up pays.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, bench_settings, clean_env, save, tree_rss_mb
from bench.server import serve


def summary(samples: list[float]) -> dict[str, float]:
    return {"min": round(min(samples), 2), "median": round(statistics.median(samples), 2),
            "max": round(max(samples), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--name", default=None)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-coldstart-"))
    try:
        data_dir = args.data_dir
        if data_dir is None:
            from qa.service import build_service

            data_dir = workdir / "data"
            build_service(bench_settings(data_dir)).ingest_paths([ROOT / "seeds"])
        imports: list[float] = []
        health: list[float] = []
        first_answer: list[float] = []
        rss: list[float] = []
        for run in range(args.runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import api.app"], cwd=ROOT, env=clean_env(), check=True)
            imports.append(time.perf_counter() - started)
            with serve(data_dir, log=workdir / f"server-{run}.log") as (url, pid, seconds):
                health.append(seconds)
                started = time.perf_counter()
                httpx.post(f"{url}/ask", json={"question": "What happened?"}, timeout=120).raise_for_status()
                first_answer.append(seconds + time.perf_counter() - started)
                rss.append(tree_rss_mb(pid))
            print(f"run {run + 1}: imports {imports[-1]:.2f} s, /health after {health[-1]:.2f} s, first answer "
                  f"after {first_answer[-1]:.2f} s, RSS {rss[-1]} MB", flush=True)
        result: dict[str, Any] = {
            "data_dir": "seeds" if args.data_dir is None else str(args.data_dir), "runs": args.runs,
            "import_api_app_s": summary(imports), "health_ready_s": summary(health),
            "first_answer_s": summary(first_answer), "rss_mb_after_first_answer": summary(rss),
        }
        for key, value in result.items():
            print(f"  {key}: {value}")
        name = args.name or ("coldstart" if args.data_dir is None else f"coldstart-{Path(args.data_dir).parent.name}")
        print(f"saved {save(name, result)}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
