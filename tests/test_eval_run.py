"""`qa eval` end to end: a fresh index of the seeds, the run folder, the gate, --url, and one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from qa.cli import app
from tests.support import ROOT, api_server, free_port, qa_env

Eval = Callable[..., Result]  # `qa eval ARGS...` run in process

QUESTIONS = [
    {"id": "q01", "question": "How many Tomahawk missiles did the US fire at the Shayrat Airbase?",
     "answers": ["59"], "evidence": ["the US fired at least 59 Tomahawk cruise missiles at the Shayrat Airbase"],
     "doc_ids": ["000_9a3c7f577db017be"], "answerable": True, "kind": "number"},
    {"id": "html", "question": "Who is Vladimir Putin's press spokesman? <script>alert(1)</script>",
     "answers": ["<i>nobody</i>"], "evidence": ["Dmitry Peskov"], "answerable": True, "kind": "fact"},
    {"id": "q40", "question": "Who won the 2018 FIFA World Cup?", "answers": [], "evidence": [],
     "answerable": False, "kind": "unanswerable"},
]
DIALOG = {"id": "d02", "turns": [
    {"question": "Which Syrian airbase did the US hit with cruise missiles?", "answers": ["Shayrat"],
     "evidence": ["Shayrat Airbase"], "answerable": True},
    {"question": "Where is it located?", "answers": ["Homs"], "evidence": ["Shayrat Airbase in Homs Province"],
     "answerable": True},
]}


@pytest.fixture
def small_data(tmp_path: Path) -> Path:
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in [*QUESTIONS, DIALOG]))
    return path


@pytest.fixture
def index(seeded_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session's seeded index."""
    return Path(shutil.copytree(seeded_dir, tmp_path / "index"))


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Eval:
    """`qa ...` in process, isolated from the developer's QA_* environment and .env."""
    for name in [n for n in os.environ if n.startswith("QA_") or n == "OPENAI_API_KEY"]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("QA_DATA_DIR", str(tmp_path / "unused"))

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, ["eval", *args])

    return run


def _run_folder(out: Path) -> Path:
    folders = sorted(out.iterdir())
    assert len(folders) == 1
    return folders[0]


def test_default_run_on_a_fresh_index_of_the_seeds(tmp_path: Path) -> None:
    """What a fresh clone does: `qa eval` with no flags (output redirected to tmp)."""
    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "qa.cli", "eval", "--out", str(out), "--save-baseline", str(tmp_path / "b.json")],
        cwd=ROOT, env=qa_env(tmp_path / "unused"), capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for title in ("Retrieval", "Answers", "Citations", "* default"):
        assert title in proc.stdout
    folder = _run_folder(out)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "per_item.jsonl", "report.html", "summary.json"]
    records = [json.loads(line) for line in (folder / "per_item.jsonl").read_text().splitlines()]
    assert len(records) == 51 + 16
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["primary"] == "default"
    metrics = summary["configs"][0]["metrics"]
    assert metrics["phantom_citations"] == 0 and metrics["errors"] == 0
    assert metrics["hit@5"] >= 0.8  # a floor far below today's value: catches a broken pipeline, not drift
    config = json.loads((folder / "config.json").read_text())
    assert config["mode"] == "in-process" and config["configs"][0]["config"]["chunk_size"] > 0
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and "Failed items" in page
    baseline = json.loads((tmp_path / "b.json").read_text())
    assert baseline["metrics"] == {name: round(value, 4) for name, value in metrics.items()}
    assert baseline["label"] == "default"


def test_gate_passes_on_its_own_baseline_and_fails_on_a_drop(cli: Eval, index: Path, small_data: Path,
                                                             tmp_path: Path) -> None:
    out, baseline = tmp_path / "runs", tmp_path / "baseline.json"
    first = cli("--index", str(index), "--data", str(small_data), "--out", str(out), "--save-baseline", str(baseline))
    assert first.exit_code == 0, first.output
    again = cli("--index", str(index), "--data", str(small_data), "--out", str(out), "--baseline", str(baseline))
    assert again.exit_code == 0, again.output
    assert "gate on 'default': passed" in again.stdout

    raised = json.loads(baseline.read_text())
    raised["metrics"].update({"mrr": 1.5, "gold_contained": 1.5, "latency_ms": 0.0})
    baseline.write_text(json.dumps(raised))
    worse = cli("--index", str(index), "--data", str(small_data), "--out", str(out), "--baseline", str(baseline),
                "--fail-under", "hit@1=1.01")
    assert worse.exit_code == 1
    fails = [line for line in worse.stderr.splitlines() if line.startswith("FAIL")]
    assert fails == [
        f"FAIL mrr dropped: {latest_metric(out, 'mrr'):.3f} < baseline 1.500 - 0.02",
        f"FAIL gold_contained dropped: {latest_metric(out, 'gold_contained'):.3f} < baseline 1.500 - 0.02",
        f"FAIL hit@1 is under its floor: {latest_metric(out, 'hit@1'):.3f} < 1.01",
    ]


def latest_metric(out: Path, name: str) -> float:
    """The metric of the latest run in `out`."""
    latest = sorted(out.iterdir())[-1]
    return json.loads((latest / "summary.json").read_text())["configs"][0]["metrics"][name]


def test_report_escapes_text_and_lists_failures(cli: Eval, index: Path, small_data: Path, tmp_path: Path) -> None:
    result = cli("--index", str(index), "--data", str(small_data), "--out", str(tmp_path / "runs"), "--k", "3,5")
    assert result.exit_code == 0, result.output
    folder = _run_folder(tmp_path / "runs")
    page = (folder / "report.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "&lt;i&gt;nobody&lt;/i&gt;" in page and "answer lacks every gold answer" in page
    summary = json.loads((folder / "summary.json").read_text())
    assert [c["label"] for c in summary["configs"]] == ["default", "k=3"]
    assert "hit@3" in summary["configs"][1]["metrics"] and "hit@5" not in summary["configs"][1]["metrics"]
    records = [json.loads(line) for line in (folder / "per_item.jsonl").read_text().splitlines()]
    assert {r["config"] for r in records} == {"default", "k=3"}
    assert all(len(r["passages"]) <= 3 for r in records if r["config"] == "k=3")


def test_against_a_running_server_with_conversations(seeded_dir: Path, small_data: Path, tmp_path: Path) -> None:
    data_dir = Path(shutil.copytree(seeded_dir, tmp_path / "data"))
    out = tmp_path / "runs"
    with api_server(data_dir) as url:
        proc = subprocess.run(
            [sys.executable, "-m", "qa.cli", "eval", "--url", url, "--data", str(small_data), "--out", str(out)],
            cwd=ROOT, env=qa_env(tmp_path / "unused"), capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    folder = _run_folder(out)
    records = {r["id"]: r for r in map(json.loads, (folder / "per_item.jsonl").read_text().splitlines())}
    follow_up = records["d02.2"]
    assert follow_up["standalone_question"] != follow_up["question"]  # the server saw the earlier turn
    assert json.loads((folder / "config.json").read_text())["mode"] == "http"
    assert records["q01"]["scores"]["phantom_citations"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-under", "nope=1"], "error: unknown metric 'nope' in --fail-under"),
        (["--fail-under", "hit@5"], "error: bad --fail-under 'hit@5' (expected metric=value"),
        (["--data", "missing.jsonl"], "error: no such data file or folder: missing.jsonl"),
        (["--retriever", "dense,magic"], "error: bad --retriever value 'magic'"),
        (["--chunk-size", "8"], "error: invalid configuration: chunk_size: Input should be greater than"),
        (["--url", "http://127.0.0.1:9", "--chunk-size", "512"], "error: --url asks a running server"),
        (["--baseline", "missing.json"], "error: no such baseline file: missing.json"),
        (["--seeds", "nowhere"], "error: no such seeds folder or file: nowhere"),
        (["--index", "nowhere"], "error: nowhere is not a QA data folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli: Eval, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # not a crash
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr


def test_unreachable_server_is_one_line(cli: Eval, small_data: Path) -> None:
    result = cli("--url", f"http://127.0.0.1:{free_port()}", "--data", str(small_data))
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: cannot reach http://127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1
