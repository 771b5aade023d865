"""The `qa` command as a user runs it: real subprocesses, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, SEEDS, qa_env


def qa(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=ROOT, env=qa_env(data_dir),
                          capture_output=True, text=True, timeout=180)


def test_ingest_twice_then_ask_json(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = qa(data, "ingest", str(SEEDS))
    assert first.returncode == 0, first.stderr
    assert "added 5, replaced 0, unchanged 0, failed 0" in first.stdout
    second = qa(data, "ingest", str(SEEDS), "--json")
    report = json.loads(second.stdout)
    assert len(report["unchanged"]) == 5 and report["chunks_written"] == 0
    assert f"{report['chunks_total']} in the index" in first.stdout
    ask = qa(data, "ask", "How many Tomahawk missiles did the US fire at the Shayrat Airbase?", "--json", "-k", "5")
    result = json.loads(ask.stdout)
    assert any("at least 59 Tomahawk" in p["text"] for p in result["passages"][:3])
    assert "59" in result["answer"] and result["citations"]
    human = qa(data, "ask", "Who won the 2018 FIFA World Cup?")
    assert human.returncode == 0 and "The articles don't say" in human.stdout


def test_edit_one_article_replaces_it(tmp_path: Path) -> None:
    folder = tmp_path / "seeds"
    shutil.copytree(SEEDS, folder)
    data = tmp_path / "data"
    assert qa(data, "ingest", str(folder)).returncode == 0
    target = folder / "003_a22345d48b9559f9.txt"
    target.write_text(target.read_text("utf-8").replace("low level of trust", "low level of confidence"), "utf-8")
    report = json.loads(qa(data, "ingest", str(folder), "--json").stdout)
    assert report["replaced"] == ["003_a22345d48b9559f9"] and len(report["unchanged"]) == 4


def test_errors_are_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    missing = qa(data, "ingest", str(tmp_path / "nope"))
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error: no such file or folder")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_text("")
    only_bad = qa(data, "ingest", str(bad))
    assert only_bad.returncode == 1 and "empty.txt: file is empty" in only_bad.stderr
    for args in (("ask", "   "), ("ask", "hi?", "--since", "last week"), ("ask", "hi?", "-k", "0")):
        result = qa(data, *args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 6, result.stderr
