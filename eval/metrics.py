"""Retrieval, answer, citation and latency metrics as pure functions, so every number can be checked by hand.

Relevance is evidence containment: a passage is relevant when its text contains one of the item's verbatim
evidence quotes (after normalising whitespace, quotes and dashes), which keeps the data valid whatever the
chunking. `coverage` below is, for each ranked passage, the set of evidence-quote indices it contains.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from eval.dataset import Item

Coverage = Sequence[frozenset[int]]

CITATION_MARK = re.compile(r"\[(\d{1,3})\]")
_TYPOGRAPHY = str.maketrans({
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"',
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-",
})
_ARTICLES = re.compile(r"\b(a|an|the)\b")
HIT_CUTOFFS = (1, 3, 5, 10)  # hit@j reported for these j (up to k), and always for k itself


# --- retrieval -------------------------------------------------------------------------------------------

def normalize_evidence(text: str) -> str:
    """Text for containment tests: NFKC, straight quotes, plain dashes, single spaces, case-folded."""
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY)
    return " ".join(text.split()).casefold()


def quote_coverage(passages: Sequence[str], evidence: Sequence[str]) -> list[frozenset[int]]:
    """For each passage (in rank order), the indices of the evidence quotes its text contains."""
    quotes = [normalize_evidence(q) for q in evidence]
    found: list[frozenset[int]] = []
    for passage in passages:
        text = normalize_evidence(passage)
        found.append(frozenset(i for i, quote in enumerate(quotes) if quote and quote in text))
    return found


def hit_at_k(coverage: Coverage, k: int) -> float:
    """1.0 when any of the top k passages contains an evidence quote."""
    return 1.0 if any(coverage[:k]) else 0.0


def recall_at_k(coverage: Coverage, n_evidence: int, k: int) -> float:
    """Share of the item's evidence quotes found in the top k passages."""
    if n_evidence <= 0:
        return 0.0
    return len(frozenset().union(*coverage[:k])) / n_evidence


def reciprocal_rank(coverage: Coverage) -> float:
    """1/rank of the first relevant passage; 0.0 when none is."""
    return next((1.0 / rank for rank, quotes in enumerate(coverage, start=1) if quotes), 0.0)


def ndcg_at_k(coverage: Coverage, n_evidence: int, k: int) -> float:
    """Binary nDCG@k where a passage gains 1 only if it contains a quote no higher passage contained.

    So duplicates and redundant passages gain nothing, and the ideal ranking places min(k, n_evidence)
    relevant passages first: retrieving fewer passages than there are quotes is penalised, and the result
    never exceeds 1.
    """
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, n_evidence) + 1))
    if ideal == 0:
        return 0.0
    seen: set[int] = set()
    dcg = 0.0
    for rank, quotes in enumerate(coverage[:k], start=1):
        if quotes - seen:
            dcg += 1.0 / math.log2(rank + 1)
        seen |= quotes
    return dcg / ideal


# --- answers (SQuAD-style) -------------------------------------------------------------------------------

def strip_citations(text: str) -> str:
    """The answer without its [n] markers."""
    return CITATION_MARK.sub(" ", text)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation (ASCII and Unicode), articles and extra spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in string.punctuation and not unicodedata.category(ch).startswith("P"))
    return " ".join(_ARTICLES.sub(" ", text).split())


def gold_contained(prediction: str, golds: Iterable[str]) -> bool:
    """True when a normalised gold answer appears, on word boundaries, in the normalised prediction."""
    predicted = f" {normalize_answer(prediction)} "
    return any(gold and f" {gold} " in predicted for gold in (normalize_answer(g) for g in golds))


def _f1(predicted: list[str], gold: list[str]) -> float:
    if not predicted or not gold:
        return float(predicted == gold)
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: Iterable[str]) -> float:
    """The best SQuAD token F1 of the prediction against any gold answer (0.0 without golds)."""
    predicted = normalize_answer(prediction).split()
    return max((_f1(predicted, normalize_answer(g).split()) for g in golds), default=0.0)


def refusal_scores(refused: Sequence[bool], answerable: Sequence[bool]) -> dict[str, float | None]:
    """Refusal precision/recall (positive class: unanswerable) and answer coverage of answerable items.

    None marks a ratio with an empty denominator (e.g. precision when nothing was refused).
    """
    pairs = list(zip(refused, answerable, strict=True))
    refusals = sum(1 for r, _ in pairs if r)
    unanswerable = sum(1 for _, a in pairs if not a)
    answerable_n = len(pairs) - unanswerable
    correct = sum(1 for r, a in pairs if r and not a)
    answered = sum(1 for r, a in pairs if a and not r)
    return {
        "refusal_precision": correct / refusals if refusals else None,
        "refusal_recall": correct / unanswerable if unanswerable else None,
        "answer_coverage": answered / answerable_n if answerable_n else None,
    }


# --- citations -------------------------------------------------------------------------------------------

def citation_precision(cited: Sequence[str], evidence: Sequence[str]) -> float | None:
    """Share of cited passages that contain an evidence quote (None without citations)."""
    if not cited:
        return None
    return sum(1 for quotes in quote_coverage(cited, evidence) if quotes) / len(cited)


def citation_recall(cited: Sequence[str], evidence: Sequence[str]) -> float:
    """Share of evidence quotes contained in at least one cited passage."""
    return recall_at_k(quote_coverage(cited, evidence), len(evidence), len(cited))


def phantom_citations(answer: str, citations: Sequence[Mapping], article: Callable[[str], str | None]) -> int:
    """[n] markers with no citation n, plus citations whose text is not the article's text at [start:end]."""
    numbers = {c.get("n") for c in citations}
    phantoms = len({int(n) for n in CITATION_MARK.findall(answer)} - numbers)
    for c in citations:
        text = article(str(c.get("doc_id")))
        start, end = c.get("start"), c.get("end")
        if text is None or not isinstance(start, int) or not isinstance(end, int) or text[start:end] != c.get("text"):
            phantoms += 1
    return phantoms


def unused_citations(answer: str, citations: Sequence[Mapping]) -> int:
    """Citations that no [n] marker in the answer points to (the contract says there are none)."""
    marked = {int(n) for n in CITATION_MARK.findall(answer)}
    return sum(1 for c in citations if c.get("n") not in marked)


# --- aggregation -----------------------------------------------------------------------------------------

def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values; None when there are none."""
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks, like numpy's default."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(timings: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """p50/p95 (ms) per stage over all asks; stages are whatever keys the timings carry."""
    stages: dict[str, list[float]] = {}
    for timing in timings:
        for stage, value in timing.items():
            if isinstance(value, int | float):
                stages.setdefault(stage, []).append(float(value))
    return {stage: {"p50": percentile(v, 50), "p95": percentile(v, 95), "n": len(v)} for stage, v in stages.items()}


# --- scoring ---------------------------------------------------------------------------------------------

def score_item(
    item: Item, result: dict[str, Any], k: int, article: Callable[[str], str | None], seconds: float
) -> dict[str, Any]:
    """One per_item.jsonl record: what was asked, retrieved and answered, and its scores."""
    passages = list(result.get("passages") or [])[:k]
    citations = list(result.get("citations") or [])
    answer = str(result.get("answer") or "")
    refused = bool(result.get("refused"))
    coverage = quote_coverage([str(p.get("text", "")) for p in passages], item.evidence)
    scores: dict[str, Any] = {
        "phantom_citations": phantom_citations(answer, citations, article),
        "unused_citations": unused_citations(answer, citations),
    }
    if item.answerable:
        cited = [str(c.get("text", "")) for c in citations]
        prose = strip_citations(answer)
        scores.update({
            "hit_curve": [hit_at_k(coverage, j) for j in range(1, k + 1)],
            "recall": recall_at_k(coverage, len(item.evidence), k),
            "rr": reciprocal_rank(coverage),
            "ndcg": ndcg_at_k(coverage, len(item.evidence), k),
            "gold_contained": float(gold_contained(prose, item.answers)) if item.answers else None,
            "token_f1": token_f1(prose, item.answers) if item.answers else None,
            "citation_precision": None if refused else citation_precision(cited, item.evidence),
            "citation_recall": None if refused else citation_recall(cited, item.evidence),
        })
    scores["behaviour_ok"] = behaviour_ok(item, result)
    scores["wrong_yes_no"] = wrong_yes_no(item, answer)
    scores["false_disagreement"] = false_disagreement(item, result)
    timings = dict(result.get("timings_ms") or {})
    timings["roundtrip"] = round(seconds * 1000, 1)
    record = {
        "id": item.id, "kind": item.kind, "dialog": item.dialog, "turn": item.turn, "question": item.question,
        "standalone_question": result.get("standalone_question"), "answerable": item.answerable,
        "gold_answers": list(item.answers), "evidence": list(item.evidence), "doc_ids": list(item.doc_ids),
        "answer": answer, "refused": refused, "error": result.get("error"),
        "citations": [{key: c.get(key) for key in ("n", "doc_id", "start", "end", "text")} for c in citations],
        "passages": [{"doc_id": p.get("doc_id"), "start": p.get("start"), "end": p.get("end"),
                      "score": p.get("score"), "text": p.get("text"), "quotes": sorted(q)}
                     for p, q in zip(passages, coverage, strict=True)],
        "timings_ms": timings, "scores": scores,
    }
    record["failures"] = failures(record)
    return record


def behaviour_ok(item: Item, result: dict[str, Any]) -> float | None:
    """1.0 when the answer reads as the item expects (eval/news): it opens with `starts_with`, holds every
    `contains_all` value and every `earlier` value, and carries `disagreements` when one is expected; None
    for items without expectations."""
    expect = item.expect
    if not expect:
        return None
    answer = str(result.get("answer") or "")
    prose = f" {normalize_answer(strip_citations(answer))} "
    ok = True
    if "starts_with" in expect:
        ok &= normalize_answer(answer).startswith(normalize_answer(str(expect["starts_with"])))
    for value in [*expect.get("contains_all", []), *expect.get("earlier", [])]:
        ok &= f" {normalize_answer(str(value))} " in prose
    if "disagreement" in expect:
        ok &= bool(result.get("disagreements")) == bool(expect["disagreement"])
    return float(ok)


YES_NO_KINDS = frozenset({"yes-no", "yes-no-negative"})
_VERDICT = re.compile(r"\s*(yes|no)\b(?![.\s]*\d)", re.IGNORECASE)  # "No." opens a verdict, "No. 10" does not


def verdict(answer: str) -> str | None:
    """'Yes' or 'No' when the answer opens with that word, else None."""
    found = _VERDICT.match(answer)
    return found.group(1).capitalize() if found else None


def wrong_yes_no(item: Item, answer: str) -> bool:
    """The answer opens with Yes/No contrary to the item's `starts_with`, or opens with one on a yes/no item that
    expects no verdict (its evidence does not settle the question)."""
    said = verdict(answer)
    if said is None:
        return False
    expected = str(item.expect.get("starts_with", "")).strip().capitalize()
    if expected in ("Yes", "No"):
        return said != expected
    return item.kind in YES_NO_KINDS and not expected


def false_disagreement(item: Item, result: dict[str, Any]) -> bool:
    """The answer says the sources disagree where the item expects no disagreement."""
    return bool(result.get("disagreements")) and item.expect.get("disagreement") is not True


def failures(record: dict[str, Any]) -> list[str]:
    """Why an item counts as failed (empty when it passed)."""
    s = record["scores"]
    found: list[str] = []
    if record.get("error"):
        found.append(f"error: {record['error']}")
    if record["answerable"]:
        if not record.get("error") and not any(s.get("hit_curve", [])):
            found.append("no retrieved passage contains the evidence")
        if record["refused"]:
            found.append("refused an answerable question")
        elif s.get("gold_contained") == 0.0:
            found.append("answer lacks every gold answer")
    elif not record["refused"]:
        found.append("answered an unanswerable question")
    if s.get("behaviour_ok") == 0.0:
        found.append("answer does not read as expected (see the item's expect)")
    if s.get("wrong_yes_no"):
        found.append("opens with a yes/no verdict the item does not expect")
    if s.get("false_disagreement"):
        found.append("says the sources disagree where they do not")
    if s["phantom_citations"]:
        found.append(f"{s['phantom_citations']} phantom citation(s)")
    return found


# --- summaries -------------------------------------------------------------------------------------------

def _block(records: list[dict[str, Any]], k: int, prefix: str = "") -> dict[str, float | None]:
    answerable = [r for r in records if r["answerable"]]
    answered = [r for r in answerable if not r["refused"]]
    s = [r["scores"] for r in answerable]
    block: dict[str, float | None] = {}
    for j in sorted({*(c for c in HIT_CUTOFFS if c <= k), k}):
        block[f"hit@{j}"] = mean(x["hit_curve"][j - 1] for x in s)
    block.update({
        f"recall@{k}": mean(x["recall"] for x in s),
        "mrr": mean(x["rr"] for x in s),
        f"ndcg@{k}": mean(x["ndcg"] for x in s),
        "gold_contained": mean(x["gold_contained"] for x in s),
        "token_f1": mean(x["token_f1"] for x in s),
        "answered_correct": mean(r["scores"]["gold_contained"] for r in answered),
        "citation_precision": mean(r["scores"]["citation_precision"] for r in answered),
        "citation_recall": mean(r["scores"]["citation_recall"] for r in answered),
    })
    if any(r["scores"].get("behaviour_ok") is not None for r in records):  # only sets with `expect` (eval/news)
        block["behaviour_ok"] = mean(r["scores"].get("behaviour_ok") for r in records)
    refusal = refusal_scores([r["refused"] for r in records], [r["answerable"] for r in records])
    block["answer_coverage"] = refusal["answer_coverage"]
    block["false_refusal"] = sum(1 for r in answerable if r["refused"]) / len(answerable) if answerable else None
    if any(not r["answerable"] for r in records):
        block["refusal_precision"] = refusal["refusal_precision"]
        block["refusal_recall"] = refusal["refusal_recall"]
    return {f"{prefix}{name}": value for name, value in block.items()}


def summarise(records: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """Metrics of the standalone questions, of dialog follow-ups (prefixed), latency, hit curve, per kind."""
    questions = [r for r in records if r["dialog"] is None]
    followups = [r for r in records if r["turn"] > 0]
    metrics: dict[str, float | None] = {}
    if questions:
        metrics.update(_block(questions, k))
    if followups:
        metrics.update(_block(followups, k, "followup."))
    metrics["phantom_citations"] = float(sum(r["scores"]["phantom_citations"] for r in records))
    metrics["unused_citations"] = float(sum(r["scores"]["unused_citations"] for r in records))
    metrics["errors"] = float(sum(1 for r in records if r.get("error")))
    metrics["false_disagreement"] = float(sum(1 for r in records if r["scores"].get("false_disagreement")))
    metrics["wrong_yes_no"] = float(sum(1 for r in records if r["scores"].get("wrong_yes_no")))
    scored = [r["scores"]["hit_curve"] for r in questions if r["answerable"]]
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in dict.fromkeys(r["kind"] for r in records):
        group = [r for r in records if r["kind"] == kind]
        answerable = [r["scores"] for r in group if r["answerable"]]
        by_kind[kind] = {
            "n": len(group), f"hit@{k}": mean(x["hit_curve"][-1] for x in answerable),
            "gold_contained": mean(x["gold_contained"] for x in answerable),
            "token_f1": mean(x["token_f1"] for x in answerable),
            "refused": sum(1 for r in group if r["refused"]) / len(group),
            "behaviour_ok": mean(r["scores"].get("behaviour_ok") for r in group),
        }
    return {
        "n_items": len(records), "n_questions": len(questions), "n_followups": len(followups),
        "metrics": metrics,
        "latency_ms": latency_summary(r["timings_ms"] for r in records if not r.get("error")),
        "hit_curve": [mean(curve[j] for curve in scored) for j in range(k)],
        "context_chars": mean(sum(len(p["text"] or "") for p in r["passages"]) for r in records),
        "by_kind": by_kind,
        "failed": sum(1 for r in records if r["failures"]),
    }
