"""The `qa` command as a user runs it: real subprocesses, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from qa.service import Service
from tests.support import ROOT, SEEDS, qa_env


def qa(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=ROOT, env=qa_env(data_dir),
                          capture_output=True, text=True, timeout=180)


def test_ingest_twice_then_ask_json(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = qa(data, "ingest", str(SEEDS))
    assert first.returncode == 0, first.stderr
    assert "added 5, replaced 0, unchanged 0, failed 0" in first.stdout
    assert _spans_waiting(data) > 0  # the sentence vectors are left to `qa serve` (QA_SENTENCE_VECTORS=background)
    second = qa(data, "ingest", str(SEEDS), "--json", "--fill")
    report = json.loads(second.stdout)
    assert len(report["unchanged"]) == 5 and report["chunks_written"] == 0
    assert _spans_waiting(data) == 0  # --fill: stored before exiting
    assert f"{report['chunks_total']} in the index" in first.stdout
    ask = qa(data, "ask", "How many Tomahawk missiles did the US fire at the Shayrat Airbase?", "--json", "-k", "5")
    result = json.loads(ask.stdout)
    assert any("at least 59 Tomahawk" in p["text"] for p in result["passages"][:3])
    assert "59" in result["answer"] and result["citations"]
    human = qa(data, "ask", "Who won the 2018 FIFA World Cup?")
    assert human.returncode == 0 and "The articles don't say" in human.stdout


def _spans_waiting(data: Path) -> int:
    with sqlite3.connect(data / "docstore.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM spans WHERE length(vector) = 0").fetchone()[0]


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


def test_ask_without_an_index_says_so_and_creates_nothing(tmp_path: Path) -> None:
    """Run outside the project (no QA_DATA_DIR): the missing index and its folder are named, exit 1, no ./data."""
    env = {k: v for k, v in qa_env(tmp_path).items() if k != "QA_DATA_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    run = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "Where is the Shayrat Airbase?"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 1 and "does not exist" in run.stderr and str(tmp_path / "data") in run.stderr
    assert not (tmp_path / "data").exists() and "Traceback" not in run.stderr


def test_empty_or_unsupported_folder_fails_and_a_busy_port_is_said_before_serving(tmp_path: Path) -> None:
    import socket

    data = tmp_path / "data"
    folder = tmp_path / "pdfs"
    folder.mkdir()
    (folder / "report.pdf").write_bytes(b"%PDF-1.7\n%\xe2\xe3\n")
    nothing = qa(data, "ingest", str(folder))
    assert nothing.returncode == 1 and "nothing to ingest" in nothing.stderr, nothing.stderr
    empty = qa(data, "ask", "Where is the Shayrat Airbase?")  # the folder exists now, but holds no article
    assert empty.returncode == 1 and "is empty" in empty.stderr and str(data) in empty.stderr
    pdf = qa(data, "ingest", str(folder / "report.pdf"))
    assert pdf.returncode == 1 and "PDF is not supported" in pdf.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        served = qa(data, "serve", "--port", str(port))
    assert served.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in served.stderr
    assert "Serving on" not in served.stdout


def test_sources_short_full_none(pipeline: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """`qa ask` prints short sources by default: title, outlet, date and the quoted sentence, not whole passages."""
    import io

    from rich.console import Console

    from qa import cli

    result = pipeline.ask("How many Tomahawk missiles did the US fire at the Shayrat Airbase?")
    assert result.citations
    shown = {}
    for mode in cli.SOURCES:
        buffer = io.StringIO()
        monkeypatch.setattr(cli, "out", Console(file=buffer, width=200, highlight=False, soft_wrap=True))
        cli._print_answer(result, mode)
        shown[mode] = buffer.getvalue()
    first = result.citations[0]
    assert f"[1] {first.title} — {first.source}" in shown["short"] and first.quote is not None
    assert f"“{first.quote.text}”" in shown["short"] or first.quote.text[:100] in shown["short"]
    assert first.text not in shown["short"] and first.text in shown["full"]
    assert len(shown["short"]) < len(shown["full"]) and "[1]" not in shown["none"].replace(result.answer, "")
    assert all(len(line) <= 400 for line in shown["short"].splitlines()[1:])


def test_chat_has_line_editing_and_history_in_a_terminal(seeded_dir: Path, tmp_path: Path) -> None:
    """In a pseudo-terminal, Up recalls the previous question (no `^[[A`), the history outlives the session, and
    the suggested follow-ups are listed with a number that asks them."""
    import os
    import pty
    import select
    import time

    data = tmp_path / "data"
    shutil.copytree(seeded_dir, data)
    pid, fd = pty.fork()
    if pid == 0:  # the child: `qa chat` on the terminal
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "qa.cli", "chat", "--sources", "none"],
                  {**qa_env(data), "TERM": "xterm"})
    seen = b""
    cursor = 0

    def until(text: bytes, timeout: float = 90) -> None:
        """Read the terminal until `text` appears after what the previous wait matched."""
        nonlocal seen, cursor
        deadline = time.monotonic() + timeout
        while (at := seen.find(text, cursor)) < 0:
            assert time.monotonic() < deadline, seen.decode(errors="replace")[-800:]
            if select.select([fd], [], [], 0.5)[0]:
                seen += os.read(fd, 4096)
        cursor = at + len(text)

    try:
        until(b"> ")
        os.write(fd, b"Where is the Shayrat Airbase?\r")
        until(b"Syria")
        until(b"> ")
        mark = cursor
        os.write(fd, b"\x1b[A\r")  # Up brings the previous question back; Enter sends it again
        until(b"Syria")
        until(b"Ask next (type its number):")
        until(b"  1. ")
        suggested = seen[cursor:].split(b"\r\n", 1)[0].decode()
        until(b"> ")
        os.write(fd, b"1\r")  # the number asks the first suggested question
        until(f"> {suggested}".encode())
        until(b"> ")
        os.write(fd, b"\r")  # an empty line quits
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    later = seen[mark:]
    assert b"^[[A" not in later and b"Where is the Shayrat Airbase?" in later and b"Syria" in later
    assert os.waitstatus_to_exitcode(status) == 0
    assert suggested.startswith(("What ", "How ")) and suggested.endswith("?"), suggested
    history = (data / "chat_history").read_text("utf-8").splitlines()
    assert history[-2:] == ["Where is the Shayrat Airbase?", suggested]  # the question a number stood for
