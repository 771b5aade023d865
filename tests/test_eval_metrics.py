"""Every eval metric against values worked out by hand (the comments show the arithmetic)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from eval import metrics as m
from eval.command import UsageError, gate, parse_fail_under, split_list, weight_pair
from eval.dataset import Item
from eval.runner import RunConfig, build_grid

F = frozenset
LOG3 = math.log2(3)  # discount at rank 2 is 1/log2(3) = 0.6309


# --- relevance by evidence containment ------------------------------------------------------------------

def test_containment_ignores_whitespace_quotes_dashes_and_case() -> None:
    passages = ["He said “very punitive\n\nsanctions” — now.", "Nothing here.", "Two quotes: A B and c d."]
    evidence = ['said "very punitive sanctions" - now', "a b", "C D"]
    assert m.quote_coverage(passages, evidence) == [F({0}), F(), F({1, 2})]


def test_hit_recall_and_reciprocal_rank() -> None:
    coverage = [F(), F({1}), F(), F({0, 1})]
    assert m.hit_at_k(coverage, 1) == 0.0
    assert m.hit_at_k(coverage, 2) == 1.0
    assert m.recall_at_k(coverage, 2, 2) == 0.5  # quote 1 of 2 found in the top 2
    assert m.recall_at_k(coverage, 2, 4) == 1.0
    assert m.recall_at_k(coverage, 3, 10) == pytest.approx(2 / 3)  # k beyond the list is fine
    assert m.reciprocal_rank(coverage) == 0.5
    assert m.reciprocal_rank([F(), F()]) == 0.0
    assert m.hit_at_k([], 5) == 0.0 and m.recall_at_k([], 1, 5) == 0.0 and m.recall_at_k([], 0, 5) == 0.0


def test_ndcg_single_quote() -> None:
    assert m.ndcg_at_k([F({0}), F()], 1, 5) == 1.0
    assert m.ndcg_at_k([F(), F({0})], 1, 5) == pytest.approx(1 / LOG3)  # 0.6309
    assert m.ndcg_at_k([F(), F(), F({0})], 1, 2) == 0.0  # below the cut-off
    assert m.ndcg_at_k([], 1, 5) == 0.0
    assert m.ndcg_at_k([F()], 0, 5) == 0.0  # nothing relevant exists


def test_ndcg_with_fewer_retrieved_than_relevant() -> None:
    # 2 quotes, k=3, one passage retrieved (relevant): DCG = 1; ideal = 1 + 1/log2(3) = 1.6309 -> 0.6131
    assert m.ndcg_at_k([F({0})], 2, 3) == pytest.approx(1 / (1 + 1 / LOG3))
    assert m.ndcg_at_k([F({0})], 2, 3) == pytest.approx(0.6131, abs=1e-4)


def test_ndcg_counts_duplicates_once() -> None:
    # the same quote at ranks 1 and 2, the second quote at rank 3:
    # DCG = 1 + 0 + 1/log2(4) = 1.5; ideal (2 quotes) = 1.6309 -> 0.9197
    assert m.ndcg_at_k([F({0}), F({0}), F({1})], 2, 3) == pytest.approx(1.5 / (1 + 1 / LOG3))
    assert m.ndcg_at_k([F({0}), F({0}), F({1})], 2, 3) == pytest.approx(0.9197, abs=1e-4)
    # a duplicate never lifts the score: an identical passage twice equals it once
    assert m.ndcg_at_k([F({0}), F({0})], 1, 5) == m.ndcg_at_k([F({0})], 1, 5) == 1.0


def test_ndcg_never_exceeds_one_when_a_passage_holds_several_quotes() -> None:
    # one passage containing both quotes gains 1 (ideal 1.6309): 0.6131, and never > 1
    assert m.ndcg_at_k([F({0, 1}), F({0, 1})], 2, 5) == pytest.approx(0.6131, abs=1e-4)


# --- answers --------------------------------------------------------------------------------------------

def test_squad_normalisation() -> None:
    assert m.normalize_answer("The U.S. fired  59 “Tomahawk” missiles!") == "us fired 59 tomahawk missiles"
    assert m.normalize_answer("An apple, a pear and THE end") == "apple pear and end"
    assert m.normalize_answer("") == ""


def test_gold_contained_on_word_boundaries() -> None:
    assert m.gold_contained("At least 59 Tomahawk missiles [1].", ["59"])
    assert m.gold_contained("It was the Shayrat Airbase.", ["shayrat airbase"])
    assert not m.gold_contained("Sixty people", ["six"])
    assert not m.gold_contained("", ["59"])  # empty answer
    assert not m.gold_contained("anything", [])


def test_token_f1() -> None:
    # pred tokens [at, least, 59, missiles] vs gold [59]: P = 1/4, R = 1 -> F1 = 2*0.25/1.25 = 0.4
    assert m.token_f1("at least 59 missiles", ["59"]) == pytest.approx(0.4)
    # best gold wins: vs [at, least, 59] -> P = 3/4, R = 1 -> 6/7
    assert m.token_f1("at least 59 missiles", ["59", "at least 59"]) == pytest.approx(6 / 7)
    # repeated tokens count once per occurrence: pred [six, six] vs gold [six] -> P = 1/2, R = 1 -> 2/3
    assert m.token_f1("six six", ["six"]) == pytest.approx(2 / 3)
    assert m.token_f1("", ["59"]) == 0.0  # empty answer
    assert m.token_f1("The", ["a"]) == 1.0  # both empty after normalisation (SQuAD)
    assert m.token_f1("nothing shared", ["59"]) == 0.0
    assert m.token_f1("59", []) == 0.0


def test_refusal_precision_recall_and_coverage() -> None:
    refused = [True, True, False, False, True]
    answerable = [False, True, True, False, False]
    # refused & unanswerable = 2 of 3 refusals; 2 of 3 unanswerable; answerable answered 1 of 2
    assert m.refusal_scores(refused, answerable) == pytest.approx(
        {"refusal_precision": 2 / 3, "refusal_recall": 2 / 3, "answer_coverage": 0.5})
    assert m.refusal_scores([False], [True]) == {"refusal_precision": None, "refusal_recall": None,
                                                 "answer_coverage": 1.0}


# --- citations ------------------------------------------------------------------------------------------

def test_citation_precision_and_recall() -> None:
    cited = ["the quote one is here", "unrelated", "quote two"]
    evidence = ["quote one", "quote two", "quote three"]
    assert m.citation_precision(cited, evidence) == pytest.approx(2 / 3)
    assert m.citation_recall(cited, evidence) == pytest.approx(2 / 3)
    assert m.citation_precision([], evidence) is None
    assert m.citation_recall([], evidence) == 0.0


ARTICLE = "Alpha beta. Gamma delta."


def _article(doc_id: str) -> str | None:
    return ARTICLE if doc_id == "d" else None


def test_phantom_citations() -> None:
    good = {"n": 1, "doc_id": "d", "start": 0, "end": 11, "text": "Alpha beta."}
    assert m.phantom_citations("Alpha beta [1].", [good], _article) == 0
    assert m.phantom_citations("Alpha [1] and [2].", [good], _article) == 1  # [2] names no citation
    assert m.phantom_citations("x [1]", [{**good, "text": "Alpha beta!"}], _article) == 1  # not the article text
    assert m.phantom_citations("x [1]", [{**good, "end": 12}], _article) == 1  # wrong offsets
    assert m.phantom_citations("x [1]", [{**good, "doc_id": "gone"}], _article) == 1  # unknown article
    assert m.phantom_citations("x [1]", [{**good, "start": None}], _article) == 1
    assert m.phantom_citations("", [], _article) == 0


def test_unused_citations() -> None:
    citations = [{"n": 1}, {"n": 2}]
    assert m.unused_citations("a [1] b [1]", citations) == 1
    assert m.unused_citations("a [1] b [2]", citations) == 0


# --- aggregation ----------------------------------------------------------------------------------------

def test_percentiles_interpolate_linearly() -> None:
    # p50 of 1..4: position 1.5 -> 2.5; p95: position 2.85 -> 3 + 0.85 = 3.85
    assert m.percentile([4, 1, 3, 2], 50) == 2.5
    assert m.percentile([4, 1, 3, 2], 95) == pytest.approx(3.85)
    assert m.percentile([7], 95) == 7
    assert m.percentile([], 50) is None


def test_latency_summary_per_stage() -> None:
    summary = m.latency_summary([{"retrieve": 10, "total": 20}, {"retrieve": 30, "total": 40, "x": "n/a"}])
    assert summary == {"retrieve": {"p50": 20.0, "p95": 29.0, "n": 2}, "total": {"p50": 30.0, "p95": 39.0, "n": 2}}


def test_mean_skips_undefined_values() -> None:
    assert m.mean([1.0, None, 0.0]) == 0.5
    assert m.mean([None]) is None


# --- one item and a run ---------------------------------------------------------------------------------

ITEM = Item("q1", "How many?", ("59",), ("fired 59 missiles",), ("d",), True, "number")
NO_ANSWER = Item("q2", "Who won?", answerable=False, kind="unanswerable")


def _result(answer: str, refused: bool, passages: list[str], cited: list[int]) -> dict:
    return {
        "answer": answer, "refused": refused,
        "passages": [{"doc_id": "d", "start": 0, "end": 0, "score": 0.1, "text": t} for t in passages],
        "citations": [{"n": n, "doc_id": "d", "start": 0, "end": 11, "text": "Alpha beta."} for n in cited],
        "timings_ms": {"retrieve": 5.0, "total": 9.0},
    }


def test_score_item_answerable() -> None:
    result = _result("It fired 59 missiles [1].", False, ["no", "they fired 59  missiles", "no"], [1])
    record = m.score_item(ITEM, result, 3, _article, 0.012)
    s = record["scores"]
    assert s["hit_curve"] == [0.0, 1.0, 1.0]
    assert (s["recall"], s["rr"], s["ndcg"]) == (1.0, 0.5, pytest.approx(1 / LOG3))
    assert s["gold_contained"] == 1.0
    assert s["token_f1"] == pytest.approx(0.4)  # [it, fired, 59, missiles] vs [59]: P 1/4, R 1 -> 0.4
    assert s["citation_precision"] == 0.0 and s["citation_recall"] == 0.0  # the cited text lacks the quote
    assert s["phantom_citations"] == 0 and s["unused_citations"] == 0
    assert record["timings_ms"]["roundtrip"] == 12.0
    assert [p["quotes"] for p in record["passages"]] == [[], [0], []]
    assert record["failures"] == []


def test_score_item_failures() -> None:
    refused = m.score_item(ITEM, _result("The articles don't say.", True, ["no"], []), 3, _article, 0.0)
    assert refused["failures"] == ["no retrieved passage contains the evidence", "refused an answerable question"]
    assert refused["scores"]["citation_precision"] is None
    answered = m.score_item(NO_ANSWER, _result("Alpha [1] [2].", False, [], [1]), 3, _article, 0.0)
    assert answered["failures"] == ["answered an unanswerable question", "1 phantom citation(s)"]
    assert "hit_curve" not in answered["scores"]


def test_summarise_a_tiny_run() -> None:
    hit = m.score_item(ITEM, _result("59 [1]", False, ["fired 59 missiles"], [1]), 2, _article, 0.0)
    miss = m.score_item(ITEM, _result("no idea [1]", False, ["x", "y"], [1]), 2, _article, 0.0)
    refusal = m.score_item(NO_ANSWER, _result("The articles don't say.", True, ["x"], []), 2, _article, 0.0)
    summary = m.summarise([hit, miss, refusal], 2)
    metrics = summary["metrics"]
    assert metrics["hit@1"] == 0.5 and metrics["hit@2"] == 0.5 and "hit@3" not in metrics
    assert metrics["mrr"] == 0.5 and metrics["recall@2"] == 0.5 and metrics["ndcg@2"] == 0.5
    assert metrics["gold_contained"] == 0.5 and metrics["token_f1"] == 0.5  # "59" exact, then 0
    assert metrics["refusal_precision"] == 1.0 and metrics["refusal_recall"] == 1.0
    assert metrics["answer_coverage"] == 1.0 and metrics["answered_correct"] == 0.5
    assert metrics["phantom_citations"] == 0.0
    assert summary["hit_curve"] == [0.5, 0.5]
    assert summary["by_kind"]["unanswerable"]["refused"] == 1.0
    assert summary["failed"] == 1


# --- flags and the gate ---------------------------------------------------------------------------------

def test_gate_reports_one_line_per_worse_metric() -> None:
    baseline = {"hit@5": 0.9, "mrr": 0.7, "phantom_citations": 0.0, "refusal_precision": 1.0, "label": "x"}
    current = {"hit@5": 0.885, "mrr": 0.6, "phantom_citations": 1.0, "refusal_precision": None}
    assert gate(current, baseline, 0.02) == [
        "mrr dropped: 0.600 < baseline 0.700 - 0.02",
        "phantom_citations rose: 1.000 > baseline 0.000 + 0.02",
        "refusal_precision: not measured in this run (baseline 1.000)",
    ]
    assert gate({"hit@5": 1.0}, {"hit@5": 0.9}, 0.02) == []
    assert gate({}, {"latency_ms": 3.0}, 0.02) == []  # latency is never gated


def test_fail_under_parsing() -> None:
    assert parse_fail_under(["hit@5=0.9", "followup.gold_contained=0.5"]) == {
        "hit@5": 0.9, "followup.gold_contained": 0.5}
    for spec, message in (("nope=1", "unknown metric 'nope'"), ("hit@5", "expected metric=value"),
                          ("mrr=high", "bad --fail-under value"), ("phantom_citations=0", "higher is better")):
        with pytest.raises(UsageError, match=message):
            parse_fail_under([spec])


def test_list_flags() -> None:
    assert split_list("3, 5,3,10", int, "--k") == [3, 5, 10]
    assert split_list(None, int, "--k") == []
    assert split_list("2:1,1:1", weight_pair, "--weights") == [(2.0, 1.0), (1.0, 1.0)]
    with pytest.raises(UsageError, match="bad --k value 'x'"):
        split_list("3,x", int, "--k")


BASE = RunConfig("hybrid", 256, 32, 5, 30, 1.0, 1.0, 0.5, 2)


def test_grid_product_keeps_base_first_and_groups_by_index() -> None:
    axes = {"chunk_size": [{"chunk_size": 512}, {"chunk_size": 256}], "top_k": [{"top_k": 3}, {"top_k": 5}]}
    grid = build_grid(BASE, axes)
    assert grid[0] == BASE
    assert [(c.chunk_size, c.top_k) for c in grid] == [(256, 5), (256, 3), (512, 3), (512, 5)]
    assert [c.label(BASE) for c in grid[:2]] == ["default", "k=3"]


def test_grid_axes_varies_one_flag_at_a_time() -> None:
    axes: dict[str, list[dict[str, Any]]] = {
        "retriever": [{"retriever": "bm25"}], "weights": [{"dense_weight": 2.0, "bm25_weight": 1.0}]}
    grid = build_grid(BASE, axes, product=False)
    assert [c.label(BASE) for c in grid] == ["default", "retriever=bm25", "dense_w=2.0"]
    assert build_grid(BASE, {}) == [BASE]


def test_behaviour_ok_checks_how_the_answer_reads() -> None:
    from eval.dataset import Item
    from eval.metrics import behaviour_ok

    item = Item("x", "Is the road still closed?", ("reopened",), ("reopened",),
                expect={"starts_with": "No", "contains_all": ["reopened"], "disagreement": False})
    assert behaviour_ok(item, {"answer": "No. The road reopened [1].", "disagreements": []}) == 1.0
    assert behaviour_ok(item, {"answer": "Yes. The road reopened [1].", "disagreements": []}) == 0.0
    assert behaviour_ok(item, {"answer": "No. It is open [1].", "disagreements": []}) == 0.0
    assert behaviour_ok(item, {"answer": "No. The road reopened [1].",
                               "disagreements": [{"about": "x", "values": []}]}) == 0.0
    assert behaviour_ok(Item("y", "Q?"), {"answer": "anything"}) is None


def test_wrong_yes_no_counts_only_verdicts_against_the_item() -> None:
    says_no = Item("n", "Did profits rise?", ("fell",), ("fell",), kind="yes-no-negative", expect={"starts_with": "No"})
    open_question = Item("o", "Did the talks succeed?", ("unclear",), ("unclear",), kind="yes-no")
    fact = Item("f", "Where does the prime minister live?", ("Downing Street",), ("Downing Street",))
    assert [m.verdict(a) for a in ("Yes. It rose", " no, it fell", "No. 10 Downing Street", "Nobody", "Not yet")] == [
        "Yes", "No", None, None, None]
    assert m.wrong_yes_no(says_no, "Yes. Profits fell [1].") and not m.wrong_yes_no(says_no, "No. They fell [1].")
    assert not m.wrong_yes_no(says_no, "Profits fell 40% [1].")  # no verdict: not wrong (gold and behaviour judge it)
    assert m.wrong_yes_no(open_question, "No. It is unclear [1].")  # a verdict where the item expects none
    assert not m.wrong_yes_no(open_question, "It is unclear [1].")
    assert not m.wrong_yes_no(fact, "No. 10 Downing Street [1].") and not m.wrong_yes_no(fact, "Yes, in London.")


def test_false_refusal_and_false_disagreement_in_the_summary() -> None:
    agree = Item("d", "How much?", ("59",), ("fired 59 missiles",), expect={"disagreement": True})
    disagreement = [{"about": "missiles", "values": []}]
    refused = m.score_item(ITEM, _result("The articles don't say.", True, ["x"], []), 2, _article, 0.0)
    claimed = m.score_item(ITEM, {**_result("59 [1]", False, ["fired 59 missiles"], [1]),
                                  "disagreements": disagreement}, 2, _article, 0.0)
    expected = m.score_item(agree, {**_result("59 [1]", False, ["fired 59 missiles"], [1]),
                                    "disagreements": disagreement}, 2, _article, 0.0)
    verdict = m.score_item(NO_ANSWER, _result("Yes. Alpha [1].", False, ["x"], [1]), 2, _article, 0.0)
    assert claimed["failures"] == ["says the sources disagree where they do not"]
    metrics = m.summarise([refused, claimed, expected, verdict], 2)["metrics"]
    assert metrics["false_refusal"] == pytest.approx(1 / 3)  # 1 refused of 3 answerable
    assert metrics["false_disagreement"] == 1.0  # `expected` asked for its disagreement
    assert metrics["wrong_yes_no"] == 0.0  # an unanswerable item of kind 'unanswerable' has no yes/no expectation
