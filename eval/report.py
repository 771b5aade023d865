"""Show a run: comparison tables in the terminal, and a run folder with JSON files and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from eval.runner import ConfigRun

# (header, metric name); "{k}" is filled with the configuration's k
RETRIEVAL_COLUMNS = [("hit@1", "hit@1"), ("hit@3", "hit@3"), ("hit@k", "hit@{k}"), ("recall@k", "recall@{k}"),
                     ("MRR", "mrr"), ("nDCG@k", "ndcg@{k}"), ("follow-up hit@k", "followup.hit@{k}")]
ANSWER_COLUMNS = [("gold", "gold_contained"), ("F1", "token_f1"), ("correct when answered", "answered_correct"),
                  ("answer coverage", "answer_coverage"), ("false refusal", "false_refusal"),
                  ("refusal P", "refusal_precision"),
                  ("refusal R", "refusal_recall"), ("follow-up gold", "followup.gold_contained"),
                  ("behaviour", "behaviour_ok")]
CITATION_COLUMNS = [("citation P", "citation_precision"), ("citation R", "citation_recall"),
                    ("phantom", "phantom_citations"), ("unused", "unused_citations"), ("errors", "errors"),
                    ("false disagreement", "false_disagreement"), ("wrong yes/no", "wrong_yes_no")]
SHORT = {"follow-up hit@k": "f-up hit", "recall@k": "R@k", "nDCG@k": "nDCG", "correct when answered": "corr",
         "answer coverage": "cover", "refusal P": "ref P", "refusal R": "ref R", "follow-up gold": "f-up gold",
         "citation P": "cit P", "citation R": "cit R", "behaviour": "behav", "false refusal": "false ref",
         "false disagreement": "false dis", "wrong yes/no": "wrong y/n"}
MAX_CURVES = 10  # more lines than this make the hit@k plot unreadable
COUNTS = {"phantom_citations", "unused_citations", "errors", "false_disagreement", "wrong_yes_no"}
SECTIONS = [("Retrieval", RETRIEVAL_COLUMNS, "retrieve"), ("Answers", ANSWER_COLUMNS, "total"),
            ("Citations", CITATION_COLUMNS, "roundtrip")]


def metric(run: ConfigRun, pattern: str) -> float | None:
    return run.summary["metrics"].get(pattern.format(k=run.k))


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def digits_for(pattern: str, digits: int) -> int:
    """Counts are whole numbers; shares get `digits` decimals."""
    return 0 if pattern in COUNTS else digits


def _latency(run: ConfigRun, stage: str, q: str) -> float | None:
    return (run.summary["latency_ms"].get(stage) or {}).get(q)


def tables(runs: Sequence[ConfigRun], primary: int) -> list[Table]:
    """Compact terminal tables, one row per configuration (the gated one marked with *)."""
    made: list[Table] = []
    for title, columns, stage in SECTIONS:
        table = Table(title=f"{title} (latency p50/p95)", title_justify="left", header_style="bold",
                      box=box.SIMPLE_HEAD, pad_edge=False)
        width = min(36, max(13, *(len(run.label) + 2 for run in runs)))
        table.add_column("configuration", overflow="fold", min_width=width, max_width=36)
        if title == "Retrieval":
            table.add_column("k", justify="right")
            table.add_column("chars", justify="right")
        for header, _ in columns:
            table.add_column(SHORT.get(header, header), justify="right")
        table.add_column(f"{stage} ms", justify="right")
        for i, run in enumerate(runs):
            cells = [fmt(metric(run, p), digits_for(p, 2)) for _, p in columns]
            if title == "Citations" and (metric(run, "phantom_citations") or 0) > 0:
                cells[2] = f"[red]{cells[2]}[/red]"
            latency = f"{fmt(_latency(run, stage, 'p50'), 0)}/{fmt(_latency(run, stage, 'p95'), 0)}"
            head = [("* " if i == primary else "") + run.label]
            if title == "Retrieval":
                head += [str(run.k), fmt(run.summary.get("context_chars"), 0)]
            table.add_row(*head, *cells, latency)
        made.append(table)
    made.append(kind_table(runs[primary]))
    return made


def kind_table(run: ConfigRun) -> Table:
    """The gated configuration's scores per question kind (answerable items for hit and gold)."""
    table = Table(title=f"By kind ({run.label})", title_justify="left", header_style="bold", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    for header in ("kind", "n", f"hit@{run.k}", "gold", "refused", "behaviour"):
        table.add_column(header, justify="left" if header == "kind" else "right")
    for kind, v in sorted(run.summary["by_kind"].items()):
        table.add_row(kind, str(v["n"]), fmt(v.get(f"hit@{run.k}"), 2), fmt(v["gold_contained"], 2),
                      fmt(v["refused"], 2), fmt(v.get("behaviour_ok"), 2))
    return table


def run_folder(out: Path) -> Path:
    """A new eval/runs/<timestamp> folder (suffixed if two runs start in the same second)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = out / stamp
    n = 2
    while folder.exists():
        folder, n = out / f"{stamp}-{n}", n + 1
    folder.mkdir(parents=True)
    return folder


def write_run(out: Path, meta: dict[str, Any], runs: Sequence[ConfigRun], primary: int) -> Path:
    """config.json, per_item.jsonl, summary.json and report.html in a new run folder."""
    page = render_html(meta, runs, primary)  # before the folder exists, so a failure leaves no half run
    folder = run_folder(out)
    configs = [{"label": r.label, "k": r.k, "config": r.config, "seconds": r.seconds} for r in runs]
    (folder / "config.json").write_text(json.dumps({**meta, "primary": runs[primary].label, "configs": configs},
                                                   indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with (folder / "per_item.jsonl").open("w", encoding="utf-8") as handle:
        for run in runs:
            for record in run.records:
                handle.write(json.dumps({"config": run.label, **record}, ensure_ascii=False) + "\n")
    summary = {"primary": runs[primary].label,
               "configs": [{"label": r.label, "k": r.k, "config": r.config, **r.summary} for r in runs]}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "report.html").write_text(page, encoding="utf-8")
    return folder


def baseline_document(run: ConfigRun, meta: dict[str, Any]) -> dict[str, Any]:
    """What eval/baseline.json holds: the gated metrics of one configuration, with how they were made."""
    metrics = {name: None if v is None else round(v, 4) for name, v in run.summary["metrics"].items()}
    latency = {stage: {q: v if v is None or q == "n" else round(v, 1) for q, v in values.items()}
               for stage, values in run.summary["latency_ms"].items()}
    return {"created": meta.get("created"), "command": meta.get("command"), "label": run.label, "k": run.k,
            "config": run.config, "metrics": metrics, "latency_ms": latency,
            "note": "latency is informational (machines are noisy) and never gated"}


# --- HTML --------------------------------------------------------------------------------------------------

def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plots(runs: Sequence[ConfigRun], primary: int) -> list[tuple[str, str]]:
    """(title, base64 PNG) pairs: hit@k curves, latency distributions, refusal trade-off when swept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    made: list[tuple[str, str]] = []
    fig, ax = plt.subplots(figsize=(7, 4))
    others = sorted((r for i, r in enumerate(runs) if i != primary), key=lambda r: -(metric(r, "mrr") or 0))
    shown = [runs[primary], *others][:MAX_CURVES]
    for run in shown:
        curve: list[float] = [v if v is not None else float("nan") for v in run.summary["hit_curve"]]
        ax.plot(range(1, len(curve) + 1), curve, marker="o", label=run.label)
    ax.set(xlabel="k", ylabel="hit@k (answerable questions)", ylim=(0, 1.02))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    title = "Hit@k per configuration" + (f" (gated one and the best {MAX_CURVES - 1} by MRR)"
                                          if len(runs) > MAX_CURVES else "")
    made.append((title, _png(fig)))

    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.35 * len(runs) + 1.5))
    totals = [[r["timings_ms"].get("total", 0.0) for r in run.records if not r.get("error")] or [0.0]
              for run in runs]
    ax.boxplot(totals, orientation="horizontal", tick_labels=[run.label for run in runs])
    ax.set(xlabel="total latency per question (ms)")
    ax.grid(alpha=0.3, axis="x")
    made.append(("Latency per configuration (total)", _png(fig)))

    main = runs[primary]
    stages = [s for s in ("rewrite", "retrieve", "answer", "total") if s in main.summary["latency_ms"]]
    if stages:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.boxplot([[r["timings_ms"][s] for r in main.records if s in r["timings_ms"]] for s in stages],
                   orientation="horizontal", tick_labels=stages)
        ax.set(xlabel=f"ms per question ({main.label})")
        ax.grid(alpha=0.3, axis="x")
        made.append(("Latency per stage", _png(fig)))

    swept = {r.config["refusal_threshold"] for r in runs if r.config.get("refusal_threshold") is not None}
    if len(swept) > 1:
        fig, ax = plt.subplots(figsize=(7, 4))
        for name in ("refusal_recall", "answer_coverage", "answered_correct", "refusal_precision"):
            points: list[tuple[float, float]] = []
            for r in runs:
                value = metric(r, name)
                if value is not None and _only_threshold_differs(r, main):
                    points.append((float(r.config["refusal_threshold"]), value))
            if points:
                points.sort()
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        ax.set(xlabel="refusal_threshold", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        made.append(("Refusal threshold trade-off", _png(fig)))
    return made


def _only_threshold_differs(run: ConfigRun, main: ConfigRun) -> bool:
    return all(v == main.config.get(key) for key, v in run.config.items() if key != "refusal_threshold")


def _table_html(runs: Sequence[ConfigRun], primary: int, columns: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in columns)
    rows = []
    for i, run in enumerate(runs):
        cells = "".join(f"<td>{fmt(metric(run, p), digits_for(p, 3))}</td>" for _, p in columns)
        mark = " class='primary'" if i == primary else ""
        rows.append(f"<tr{mark}><td>{html.escape(run.label)}</td><td>{run.k}</td>{cells}"
                    f"<td>{run.summary['failed']}</td></tr>")
    return f"<table><tr><th>configuration</th><th>k</th>{head}<th>failed items</th></tr>{''.join(rows)}</table>"


def _cost_html(runs: Sequence[ConfigRun], primary: int) -> str:
    rows = []
    for i, run in enumerate(runs):
        mark = " class='primary'" if i == primary else ""
        stages = "".join(f"<td>{fmt(_latency(run, s, 'p50'), 1)}</td><td>{fmt(_latency(run, s, 'p95'), 1)}</td>"
                         for s in ("retrieve", "answer", "total"))
        rows.append(f"<tr{mark}><td>{html.escape(run.label)}</td><td>{run.config.get('chunks', '–')}</td>"
                    f"<td>{fmt(run.summary.get('context_chars'), 0)}</td>{stages}"
                    f"<td>{run.seconds.get('index', 0):.1f}</td><td>{run.seconds.get('ask', 0):.1f}</td></tr>")
    head = "".join(f"<th>{s} p50 ms</th><th>{s} p95 ms</th>" for s in ("retrieve", "answer", "total"))
    return (f"<table><tr><th>configuration</th><th>chunks</th><th>context chars</th>{head}<th>index s</th>"
            f"<th>ask s</th></tr>{''.join(rows)}</table>")


def _item_html(record: dict[str, Any]) -> str:
    e = html.escape
    parts = [f"<details><summary><b>{e(record['id'])}</b> ({e(record['kind'])}) — {e(record['question'])}"
             f" <span class='bad'>{e('; '.join(record['failures']))}</span></summary>"]
    if record.get("standalone_question") and record["standalone_question"] != record["question"]:
        parts.append(f"<p><b>Asked as:</b> {e(record['standalone_question'])}</p>")
    gold = ", ".join(record["gold_answers"]) or "(unanswerable)"
    parts.append(f"<p><b>Gold:</b> {e(gold)}</p>")
    parts.extend(f"<p class='evidence'><b>Evidence:</b> {e(q)}</p>" for q in record["evidence"])
    status = "refused" if record["refused"] else "answered"
    parts.append(f"<p><b>Answer ({status}):</b> {e(record['answer'])}</p>")
    for c in record["citations"]:
        parts.append(f"<p class='cite'>[{e(str(c['n']))}] {e(str(c['doc_id']))} {c['start']}–{c['end']}:"
                     f" {e(str(c['text'])[:500])}</p>")
    rows = "".join(
        f"<tr><td>{rank}</td><td>{'✓' if p['quotes'] else ''}</td><td>{e(str(p['doc_id']))}</td>"
        f"<td>{p['start']}–{p['end']}</td><td>{fmt(p['score'], 4)}</td><td>{e(str(p['text'])[:400])}</td></tr>"
        for rank, p in enumerate(record["passages"], start=1)
    )
    parts.append("<table class='passages'><tr><th>#</th><th>rel</th><th>doc</th><th>chars</th><th>score</th>"
                 f"<th>retrieved passage</th></tr>{rows}</table></details>")
    return "".join(parts)


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{key}={val}" for key, val in value.items())
    return str(value)


CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px;
text-align:right;vertical-align:top}th:first-child,td:first-child{text-align:left}tr.primary{background:#eef5ff}
.passages td{text-align:left}.bad{color:#b00}.evidence{color:#055}.cite{color:#444;font-size:12px}
details{border-bottom:1px solid #eee;padding:.4em 0}img{max-width:100%}code{background:#f4f4f4}"""


def render_html(meta: dict[str, Any], runs: Sequence[ConfigRun], primary: int) -> str:
    """The whole report as one HTML page (plots inlined as base64 PNG, every text escaped)."""
    e = html.escape
    main = runs[primary]
    info = "".join(f"<tr><td>{e(str(key))}</td><td>{e(_plain(value))}</td></tr>"
                   for key, value in meta.items() if value not in (None, [], ""))
    kinds = "".join(
        f"<tr><td>{e(kind)}</td><td>{v['n']}</td><td>{fmt(v.get(f'hit@{main.k}'))}</td>"
        f"<td>{fmt(v['gold_contained'])}</td><td>{fmt(v['token_f1'])}</td><td>{fmt(v['refused'])}</td></tr>"
        for kind, v in main.summary["by_kind"].items()
    )
    images = "".join(f"<h3>{e(title)}</h3><img alt='{e(title)}' src='data:image/png;base64,{png}'>"
                     for title, png in plots(runs, primary))
    failed = [r for r in main.records if r["failures"]]
    items = "".join(_item_html(r) for r in failed) or "<p>None.</p>"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>qa eval "
        f"{e(str(meta.get('created', '')))}</title><style>{CSS}</style></head><body>"
        f"<h1>qa eval — {e(str(meta.get('created', '')))}</h1><table>{info}</table>"
        f"<h2>Retrieval</h2>{_table_html(runs, primary, RETRIEVAL_COLUMNS)}"
        f"<h2>Answers</h2>{_table_html(runs, primary, ANSWER_COLUMNS)}"
        f"<h2>Citations</h2>{_table_html(runs, primary, CITATION_COLUMNS)}"
        f"<h2>Cost</h2>{_cost_html(runs, primary)}"
        f"<h2>Plots</h2>{images}"
        f"<h2>By kind ({e(main.label)})</h2><table><tr><th>kind</th><th>n</th><th>hit@{main.k}</th><th>gold</th>"
        f"<th>F1</th><th>refused</th></tr>{kinds}</table>"
        f"<h2>Failed items ({e(main.label)}): {len(failed)} of {len(main.records)}</h2>{items}"
        "</body></html>\n"
    )
