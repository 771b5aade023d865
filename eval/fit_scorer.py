"""`python -m eval.fit_scorer`: fit the extractive answerer's sentence scorer and refusal threshold on the tune
sets, and write qa/answering/scorer.json.

For every question of the tune sets (eval/data, eval/forms, eval/heldout, eval/news/tune and eval/bbc/tune
when it holds questions; never a check half) the pipeline retrieves as it does when serving, and every
candidate sentence of the answerer is described by its features (qa.answering.scorer.FEATURES). A sentence
is a positive example when it holds one of the item's evidence quotes. A logistic regression (scikit-learn)
is fitted; the refusal threshold is the one that, on cross-validated scores (5 folds grouped by article, so
no article is scored by a model fitted on it), refuses most unanswerable questions while refusing at most
10% of the answerable ones. The cross-validated estimates are printed and stored with the weights.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TUNE_SETS = ("eval/data", "eval/forms", "eval/heldout", "eval/news/tune", "eval/bbc/tune")
MAX_FALSE_REFUSALS = 0.10


@dataclass
class Example:
    """One eval item's candidates: features, which are evidence, and whether they may answer (type rules)."""

    set: str
    item: str
    group: str
    answerable: bool
    rows: list[list[float]]
    labels: list[int]
    allowed: list[bool]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def holds_evidence(sentence: str, evidence: tuple[str, ...]) -> bool:
    """A sentence holds a quote when one contains the other (or they share a 60-character stretch)."""
    s = _norm(sentence)
    for quote in evidence:
        q = _norm(quote)
        if q and (q in s or s in q or any(q[i:i + 60] in s for i in range(0, max(1, len(q) - 60), 20))):
            return True
    return False


def _service(data_dir: Path, corpus: list[Path], index: Path | None) -> Any:
    from qa.config import Settings
    from qa.service import build_service

    settings = Settings(data_dir=index or data_dir, chroma_url=None)
    service = build_service(settings)
    if index is None:
        service.ingest_paths(corpus)
    service.startup()
    return service


def examples_of(name: str, index: Path | None, tmp: Path) -> list[Example]:
    """The candidates of every item of one tune set, on a fresh index of its articles (or `index`)."""
    from eval.dataset import corpus_for, load_dataset
    from qa.answering.question import Question
    from qa.conversations.rewrite import offline_standalone
    from qa.conversations.store import Turn

    path = Path(name)
    dataset = load_dataset([path])
    if not dataset.items():
        return []
    corpus = corpus_for([path]) or [Path("seeds")]
    service = _service(tmp / name.replace("/", "_"), corpus, index)
    answerer = service.answerer.get("extractive")
    found: list[Example] = []
    history: dict[str, list[Turn]] = {}
    for item in dataset.items():
        turns = history.setdefault(item.dialog or "", []) if item.dialog else []
        standalone = offline_standalone(item.question, turns)
        if item.dialog:
            turns.append(Turn(item.question, standalone, ""))
        question = Question.parse(standalone)
        retrieval = service.retriever.retrieve(standalone, service.settings.top_k)
        if service.answerer.policy.before(question, retrieval) is not None:
            continue  # refused before any scoring (no index, not English, a name no passage mentions)
        cands = answerer.candidates(question, retrieval)
        strict = question.must_match
        group = (item.doc_ids or (f"{name}:{item.id}",))[0]  # the article: the same seeds serve several sets
        found.append(Example(name, item.id, group, item.answerable, [c.features for c in cands],
                             [int(item.answerable and holds_evidence(c.text, item.evidence)) for c in cands],
                             [c.typed or not strict for c in cands]))
    service.close()
    return found


def _fit(examples: list[Example], c: float = 1.0) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = [r for e in examples for r in e.rows]
    labels = [y for e in examples for y in e.labels]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000))
    model.fit(np.asarray(rows, dtype=np.float32), np.asarray(labels))
    return model


def _best(example: Example, scores: np.ndarray) -> tuple[float | None, bool]:
    """The best allowed candidate's score, and whether it holds the evidence."""
    allowed = [(s, y) for s, y, ok in zip(scores, example.labels, example.allowed, strict=True) if ok]
    if not allowed:
        return None, False
    score, label = max(allowed, key=lambda p: p[0])
    return float(score), bool(label)


def choose_threshold(outcomes: list[tuple[float | None, bool, bool]]) -> tuple[float, dict[str, float]]:
    """(best score, right sentence, answerable) per item -> the threshold refusing the most unanswerable
    items with at most MAX_FALSE_REFUSALS of the answerable ones refused, and what it gives."""
    answerable = [o for o in outcomes if o[2]]
    unanswerable = [o for o in outcomes if not o[2]]
    best: tuple[float, dict[str, float]] | None = None
    for threshold in np.arange(0.02, 0.99, 0.01):
        refused = [o[0] is None or o[0] < threshold for o in outcomes]
        false = sum(r for r, o in zip(refused, outcomes, strict=True) if o[2]) / max(1, len(answerable))
        right = sum(r for r, o in zip(refused, outcomes, strict=True) if not o[2])
        recall = right / max(1, len(unanswerable))
        precision = right / max(1, sum(refused))
        top1 = sum(1 for r, o in zip(refused, outcomes, strict=True) if o[2] and not r and o[1]) / max(
            1, len(answerable))
        stats = {"threshold": round(float(threshold), 2), "false_refusals": round(false, 3),
                 "refusal_recall": round(recall, 3), "refusal_precision": round(precision, 3),
                 "evidence_first": round(top1, 3)}
        if false <= MAX_FALSE_REFUSALS and (best is None or recall > best[1]["refusal_recall"]):
            best = (float(threshold), stats)
    assert best is not None
    return best


def cross_validate(examples: list[Example], c: float = 1.0,
                   folds: int = 5) -> tuple[list[tuple[float | None, bool, bool]], float]:
    """Scores of every item by a model fitted without its article; and the share of answerable items whose
    best sentence holds the evidence before any threshold."""
    from sklearn.model_selection import GroupKFold

    groups = [e.group for e in examples]
    outcomes: list[tuple[float | None, bool, bool]] = [(None, False, e.answerable) for e in examples]
    for train, test in GroupKFold(n_splits=folds).split(examples, groups=groups):
        model = _fit([examples[i] for i in train if examples[i].rows], c)
        for i in test:
            e = examples[i]
            scores = model.predict_proba(np.asarray(e.rows, dtype=np.float32))[:, 1] if e.rows else np.zeros(0)
            score, right = _best(e, scores)
            outcomes[i] = (score, right, e.answerable)
    answerable = [o for o in outcomes if o[2]]
    return outcomes, sum(1 for o in answerable if o[1]) / max(1, len(answerable))


def _per_set(examples: list[Example], outcomes: list[tuple[float | None, bool, bool]],
             threshold: float) -> dict[str, dict[str, float]]:
    """The cross-validated figures of each tune set at the chosen threshold."""
    found: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(e.set for e in examples):
        mine = [o for e, o in zip(examples, outcomes, strict=True) if e.set == name]
        refused = [o[0] is None or o[0] < threshold for o in mine]
        answerable = [o for o in mine if o[2]]
        unanswerable = [o for o in mine if not o[2]]
        right = sum(1 for r, o in zip(refused, mine, strict=True) if r and not o[2])
        found[name] = {
            "items": len(mine),
            "evidence_first": round(sum(1 for r, o in zip(refused, mine, strict=True) if o[2] and not r and o[1])
                                    / max(1, len(answerable)), 3),
            "false_refusals": round(sum(1 for r, o in zip(refused, mine, strict=True) if r and o[2])
                                    / max(1, len(answerable)), 3),
            "refusal_recall": round(right / max(1, len(unanswerable)), 3),
            "refusal_precision": round(right / max(1, sum(refused)), 3),
        }
    return found


def main(argv: list[str]) -> int:
    from qa.answering.scorer import FEATURES, WEIGHTS

    index = {}  # eval/bbc/tune: an existing index of its corpus, `--index eval/bbc/tune=DIR`
    for arg in argv:
        if arg.startswith("--index="):
            name, _, folder = arg.removeprefix("--index=").partition("=")
            index[name] = Path(folder)
    cache = next((Path(a.removeprefix("--cache=")) for a in argv if a.startswith("--cache=")), None)
    examples: list[Example] = []
    if cache is not None and cache.is_file():  # features extracted by an earlier run (same code)
        examples = [Example(**e) for e in json.loads(cache.read_text("utf-8"))]
    with tempfile.TemporaryDirectory(prefix="qa-fit-") as tmp:
        cached = {e.set for e in examples}
        for name in (n for n in TUNE_SETS if n not in cached):
            if not Path(name).exists():
                continue
            if (Path(name).parent / "corpus.txt").is_file() and name not in index:
                print(f"{name}: skipped (its corpus is indexed once: --index={name}=DIR, see docs/eval.md)",
                      file=sys.stderr)
                continue
            found = examples_of(name, index.get(name), Path(tmp))
            print(f"{name}: {len(found)} items, {sum(len(e.rows) for e in found)} candidate sentences",
                  file=sys.stderr)
            examples += found
    if cache is not None:
        cache.write_text(json.dumps([e.__dict__ for e in examples]), "utf-8")
    chosen: tuple[float, float, float, dict[str, float]] | None = None
    for c in (0.03, 0.1, 0.3, 1.0, 3.0):  # the regularisation, chosen on the cross-validated result
        outcomes, evidence_first = cross_validate(examples, c)
        threshold, stats = choose_threshold(outcomes)
        print(f"C={c}: evidence first {evidence_first:.3f}, {stats}", file=sys.stderr)
        if chosen is None or evidence_first + stats["refusal_recall"] > chosen[1] + chosen[3]["refusal_recall"]:
            chosen = (c, evidence_first, threshold, stats)
    assert chosen is not None
    c, evidence_first, threshold, stats = chosen
    outcomes, _ = cross_validate(examples, c)
    per_set = _per_set(examples, outcomes, threshold)
    model = _fit([e for e in examples if e.rows], c)
    scaler, regression = model[0], model[1]
    weights = {
        "features": list(FEATURES), "mean": scaler.mean_.round(6).tolist(), "scale": scaler.scale_.round(6).tolist(),
        "coef": regression.coef_[0].round(6).tolist(), "intercept": round(float(regression.intercept_[0]), 6),
        "threshold": threshold,
        "fitted_on": {name: sum(1 for e in examples if e.set == name) for name in TUNE_SETS},
        "C": c,
        "cross_validated": {"folds": 5, "grouped_by": "article", "evidence_first_before_threshold":
                            round(evidence_first, 3), **stats, "per_set": per_set},
    }
    WEIGHTS.write_text(json.dumps(weights, indent=1) + "\n", "utf-8")
    print(json.dumps(weights["cross_validated"], indent=1))
    print(json.dumps(dict(zip(FEATURES, weights["coef"], strict=True)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
