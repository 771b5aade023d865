"""`qa eval`: flags -> configurations -> run -> tables, run folder and the regression gate (exit code 1)."""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

LOWER_IS_BETTER = {"phantom_citations", "unused_citations", "errors", "false_refusal", "followup.false_refusal",
                   "false_disagreement", "wrong_yes_no"}
GATED = re.compile(
    r"^(followup\.)?(hit@\d+|recall@\d+|ndcg@\d+|mrr|gold_contained|token_f1|answered_correct|citation_precision|"
    r"citation_recall|answer_coverage|refusal_precision|refusal_recall|false_refusal)$"
    r"|^(phantom_citations|unused_citations|errors|false_disagreement|wrong_yes_no)$"
)
INDEX_AXES = ("retriever", "chunk_size", "chunk_overlap", "candidates", "weights", "refusal_threshold",
              "max_answer_sentences")


class UsageError(Exception):
    """Bad flags or files: one line, exit code 2."""


# --- pure helpers (tested directly) -------------------------------------------------------------------------

def split_list(raw: str | None, cast: Callable[[str], Any], flag: str) -> list[Any]:
    """'a,b,c' -> [cast(a), cast(b), cast(c)]; None or '' -> []."""
    if not raw:
        return []
    values = []
    for part in (p.strip() for p in raw.split(",")):
        try:
            values.append(cast(part))
        except ValueError:
            raise UsageError(f"bad {flag} value '{part}' (expected a comma-separated list)") from None
    return list(dict.fromkeys(values))


def retriever_name(value: str) -> str:
    if value not in ("hybrid", "dense", "bm25"):
        raise ValueError(value)
    return value


def weight_pair(value: str) -> tuple[float, float]:
    """'2:1' -> (dense 2.0, bm25 1.0)."""
    dense, sep, bm25 = value.partition(":")
    if not sep:
        raise ValueError(value)
    return float(dense), float(bm25)


def parse_fail_under(specs: list[str]) -> dict[str, float]:
    """['hit@5=0.9'] -> {'hit@5': 0.9}; only higher-is-better metrics make sense here."""
    floors: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep:
            raise UsageError(f"bad --fail-under '{spec}' (expected metric=value, e.g. hit@5=0.9)")
        if not GATED.match(name):
            raise UsageError(f"unknown metric '{name}' in --fail-under (known: hit@K, recall@K, ndcg@K, mrr, "
                             "gold_contained, token_f1, answered_correct, answer_coverage, refusal_precision, "
                             "refusal_recall, citation_precision, citation_recall; prefix followup. for dialogs)")
        if name in LOWER_IS_BETTER:
            raise UsageError(f"--fail-under needs a metric where higher is better, not '{name}'")
        try:
            floors[name] = float(value)
        except ValueError:
            raise UsageError(f"bad --fail-under value '{value}' for {name} (expected a number)") from None
    return floors


def gate(current: dict[str, float | None], baseline: dict[str, Any], tolerance: float) -> list[str]:
    """One line per metric that got worse than baseline by more than `tolerance` (latency is not gated)."""
    lines: list[str] = []
    for name, base in baseline.items():
        if not isinstance(base, int | float) or not GATED.match(name):
            continue
        now = current.get(name)
        if now is None:
            lines.append(f"{name}: not measured in this run (baseline {base:.3f})")
        elif name in LOWER_IS_BETTER and now > base + tolerance:
            lines.append(f"{name} rose: {now:.3f} > baseline {base:.3f} + {tolerance}")
        elif name not in LOWER_IS_BETTER and now < base - tolerance:
            lines.append(f"{name} dropped: {now:.3f} < baseline {base:.3f} - {tolerance}")
    return lines


def floors_failed(current: dict[str, float | None], floors: dict[str, float]) -> list[str]:
    """One line per --fail-under floor not reached."""
    lines: list[str] = []
    for name, floor in floors.items():
        now = current.get(name)
        if now is None:
            lines.append(f"{name}: not measured in this run (--fail-under {floor})")
        elif now < floor:
            lines.append(f"{name} is under its floor: {now:.3f} < {floor}")
    return lines


def read_baseline(path: Path) -> dict[str, Any]:
    """The metrics of a baseline file (a summary's 'metrics' object)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no such baseline file: {path}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"unreadable baseline {path}: {exc}") from None
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict):
        raise UsageError(f"{path} has no 'metrics' object (write one with --save-baseline)")
    return data


# --- the command --------------------------------------------------------------------------------------------

def eval_command(
    data: Annotated[list[Path] | None, typer.Option(
        "--data", help="jsonl file or folder of questions/dialogs (repeatable; default eval/data).")] = None,
    seeds: Annotated[list[Path] | None, typer.Option(
        "--seeds", help="Articles indexed for in-process runs (repeatable; default: the data's own corpus/ folder, "
                   "else seeds/).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for run folders.")] = Path("eval/runs"),
    url: Annotated[str | None, typer.Option(help="Ask a running server (POST /ask) instead of in process.")] = None,
    index: Annotated[Path | None, typer.Option(
        help="Evaluate this existing data folder as it is, instead of a fresh index of the seeds.")] = None,
    save_index: Annotated[Path | None, typer.Option(
        help="Index the seeds into this new folder and keep it (re-run later with --index DIR).")] = None,
    retriever: Annotated[str | None, typer.Option(help="Compare retrievers, e.g. dense,bm25,hybrid.")] = None,
    chunk_size: Annotated[str | None, typer.Option(help="Compare chunk sizes, e.g. 256,512.")] = None,
    chunk_overlap: Annotated[str | None, typer.Option(help="Compare chunk overlaps, e.g. 0,32,64.")] = None,
    k: Annotated[str | None, typer.Option("--k", "-k", help="Compare passages per question, e.g. 3,5,10.")] = None,
    candidates: Annotated[str | None, typer.Option(help="Compare fusion candidates, e.g. 10,30.")] = None,
    weights: Annotated[str | None, typer.Option(help="Compare dense:bm25 fusion weights, e.g. 1:1,2:1.")] = None,
    refusal_threshold: Annotated[str | None, typer.Option(help="Compare refusal thresholds, e.g. 0.4,0.5.")] = None,
    sentences: Annotated[str | None, typer.Option(help="Compare max_answer_sentences, e.g. 1,2.")] = None,
    axes_only: Annotated[bool, typer.Option(
        "--axes", help="Vary each flag alone around the defaults instead of the cartesian product.")] = False,
    baseline: Annotated[Path | None, typer.Option(help="Exit 1 when a metric drops below this baseline.")] = None,
    tolerance: Annotated[float, typer.Option(min=0, help="Allowed absolute drop before the gate fails.")] = 0.02,
    fail_under: Annotated[list[str] | None, typer.Option(
        "--fail-under", help="metric=value floor, e.g. hit@5=0.9 (repeatable).")] = None,
    save_baseline: Annotated[Path | None, typer.Option(help="Write the gated configuration's metrics here.")] = None,
) -> None:
    """Score retrieval and answers against the hand-written questions; compare configurations."""
    from rich.console import Console

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    started = time.perf_counter()
    try:
        opts = {"data": data, "seeds": seeds, "url": url, "index": index, "save_index": save_index,
                "retriever": retriever,
                "chunk_size": chunk_size, "chunk_overlap": chunk_overlap, "k": k, "candidates": candidates,
                "weights": weights, "refusal_threshold": refusal_threshold, "sentences": sentences,
                "axes_only": axes_only, "baseline": baseline, "fail_under": fail_under, "err": err}
        runs, primary, meta = _run(opts)
        code = _finish(runs, primary, meta, out, baseline, tolerance, parse_fail_under(fail_under or []),
                       save_baseline, err, started)
    except UsageError as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # EvalError, QAError, OSError: one line, never a traceback
        from eval.runner import EvalError

        if not isinstance(exc, EvalError | OSError) and type(exc).__module__.split(".")[0] not in ("qa", "eval"):
            raise
        err.print(f"[red]error:[/red] {exc}", markup=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def _run(opts: dict[str, Any]) -> tuple[list[Any], int, dict[str, Any]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from eval.dataset import DatasetError, corpus_for, load_dataset
    from eval.runner import RunConfig, build_grid, run_http, run_in_process, settings_for
    from qa.config import load_settings

    parse_fail_under(opts["fail_under"] or [])  # bad floors fail before a long run, not after
    if opts["baseline"]:
        read_baseline(opts["baseline"])
    axes = {
        "retriever": [{"retriever": v} for v in split_list(opts["retriever"], retriever_name, "--retriever")],
        "chunk_size": [{"chunk_size": v} for v in split_list(opts["chunk_size"], int, "--chunk-size")],
        "chunk_overlap": [{"chunk_overlap": v} for v in split_list(opts["chunk_overlap"], int, "--chunk-overlap")],
        "top_k": [{"top_k": v} for v in split_list(opts["k"], int, "--k")],
        "candidates": [{"candidates": v} for v in split_list(opts["candidates"], int, "--candidates")],
        "weights": [{"dense_weight": d, "bm25_weight": b}
                    for d, b in split_list(opts["weights"], weight_pair, "--weights")],
        "refusal_threshold": [{"refusal_threshold": v}
                              for v in split_list(opts["refusal_threshold"], float, "--refusal-threshold")],
        "max_answer_sentences": [{"max_answer_sentences": v}
                                 for v in split_list(opts["sentences"], int, "--sentences")],
    }
    fixed = [name for name in INDEX_AXES if axes[name]]
    if opts["url"] and (fixed or opts["index"] or opts["seeds"]):
        raise UsageError("--url asks a running server, which keeps its own settings: only --k can vary")
    if opts["index"] and any(axes[name] for name in ("chunk_size", "chunk_overlap")):
        raise UsageError("--index evaluates an existing index as it is: it cannot change --chunk-size/--chunk-overlap")
    if opts["index"] and not (opts["index"] / "docstore.sqlite").is_file():
        raise UsageError(f"{opts['index']} is not a QA data folder (no docstore.sqlite)")
    if opts["save_index"]:
        if opts["url"] or opts["index"]:
            raise UsageError("--save-index builds a new index: it cannot go with --url or --index")
        if len(axes["chunk_size"]) > 1 or len(axes["chunk_overlap"]) > 1:
            raise UsageError("--save-index keeps one index: give at most one --chunk-size and --chunk-overlap")
        if opts["save_index"].exists() and (not opts["save_index"].is_dir() or any(opts["save_index"].iterdir())):
            raise UsageError(f"--save-index {opts['save_index']}: the folder exists and is not empty")
    # an eval set with its own corpus (eval/news/corpus) is asked against it; the others against seeds/
    seeds = opts["seeds"] or list(dict.fromkeys(
        (corpus_for([path]) or [Path("seeds")])[0] for path in (opts["data"] or [Path("eval/data")])))
    missing = [str(p) for p in seeds if not p.exists()]
    if missing and not opts["url"] and not opts["index"]:
        raise UsageError(f"no such seeds folder or file: {', '.join(missing)}")
    try:
        dataset = load_dataset(opts["data"] or [Path("eval/data")])
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    try:
        settings = load_settings()
    except ValueError as exc:
        raise UsageError(f"invalid configuration: {' '.join(str(exc).splitlines()[:3])}") from None
    base = RunConfig.from_settings(settings)
    meta: dict[str, Any] = {
        "created": datetime.now().isoformat(timespec="seconds"), "command": "qa " + " ".join(sys.argv[1:]),
        "mode": "http" if opts["url"] else "in-process", "url": opts["url"], "data": [], "seeds": [],
        "index": str(opts["index"]) if opts["index"] else None, "defaults": asdict(base),
    }
    ks = [a["top_k"] for a in axes["top_k"]] or [base.top_k]
    configs = [] if opts["url"] else build_grid(base, axes, product=not opts["axes_only"])
    for config in configs:
        settings_for(settings, asdict(config))  # out-of-range values fail now, not after the first index
    n_asks = len(dataset.items()) * (len(ks) if opts["url"] else len(configs))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=opts["err"], transient=True) as bar:
        task = bar.add_task("starting", total=n_asks)
        progress = _BarProgress(bar, task)
        if opts["url"]:
            runs = [run_http(dataset, opts["url"], k, progress) for k in ks]
        elif opts["index"]:
            runs = run_in_process(dataset, configs, settings, seeds, progress, opts["index"])
        else:
            with tempfile.TemporaryDirectory(prefix="qa-eval-corpus-") as tmp:
                laid_out = _lay_out(seeds, Path(tmp))
                runs = run_in_process(dataset, configs, settings, laid_out, progress, None, opts["save_index"])
    meta.update({"data": dataset.files, "seeds": [] if opts["url"] or opts["index"] else [str(p) for p in seeds],
                 "saved_index": str(opts["save_index"]) if opts["save_index"] else None})
    if opts["url"]:
        primary = ks.index(base.top_k) if base.top_k in ks else 0
    else:
        primary = next((i for i, c in enumerate(configs) if c == base), 0)
    return runs, primary, meta


def _lay_out(seeds: list[Path], tmp: Path) -> list[Path]:
    """Seeds as ingestible paths: a corpus list (eval/bbc/corpus.txt) becomes a folder of its articles."""
    from eval.corpus import CorpusError, is_list, lay_out

    try:
        return [lay_out(path, tmp / f"corpus-{i}") if is_list(path) else path for i, path in enumerate(seeds)]
    except CorpusError as exc:
        raise UsageError(str(exc)) from None


class _BarProgress:
    def __init__(self, bar: Any, task: Any) -> None:
        self.bar, self.task = bar, task

    def stage(self, text: str) -> None:
        self.bar.update(self.task, description=text)

    def step(self) -> None:
        self.bar.advance(self.task)


def _finish(
    runs: list[Any], primary: int, meta: dict[str, Any], out: Path, baseline: Path | None, tolerance: float,
    floors: dict[str, float], save_baseline: Path | None, err: Any, started: float,
) -> int:
    from rich.console import Console

    from eval.report import baseline_document, tables, write_run

    console = Console(highlight=False, soft_wrap=True)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    for table in tables(runs, primary):
        console.print(table)
    folder = write_run(out, meta, runs, primary)
    main = runs[primary]
    console.print(f"{sum(len(r.records) for r in runs)} answers scored in {meta['seconds']} s; "
                  f"{main.summary['failed']} of {len(main.records)} items failed in '{main.label}'. "
                  f"Report: {folder / 'report.html'}")
    if save_baseline:
        save_baseline.parent.mkdir(parents=True, exist_ok=True)
        save_baseline.write_text(json.dumps(baseline_document(main, meta), indent=2) + "\n", encoding="utf-8")
        console.print(f"baseline written to {save_baseline}")
    problems: list[str] = []
    if baseline:
        reference = read_baseline(baseline)
        changed = {key: (value, main.config.get(key)) for key, value in (reference.get("config") or {}).items()
                   if key in main.config and main.config.get(key) != value}
        if changed:
            err.print("note: baseline configuration differs: " + ", ".join(
                f"{key} {old} -> {new}" for key, (old, new) in changed.items()))
        problems += gate(main.summary["metrics"], reference["metrics"], tolerance)
    problems += floors_failed(main.summary["metrics"], floors)
    for line in problems:
        err.print(f"[red]FAIL[/red] {line}", markup=True)
    if meta.get("saved_index"):
        console.print(f"index kept in {meta['saved_index']}: re-run with --index {meta['saved_index']}")
    if baseline or floors:
        console.print(f"gate on '{main.label}': " + ("[red]failed[/red]" if problems else "[green]passed[/green]"))
    return 1 if problems else 0
