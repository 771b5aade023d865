"""Crash safety: `kill -9` a real `qa ingest` in the middle of a large batch (new articles, then a batch of
edits); running it again ends with exactly the right documents and chunks, and Chroma, the docstore and
BM25 agree. Plus the narrowest window, a crash between Chroma's delete and the docstore commit, replayed; and
`kill -9` of a process applying the keyword index's change feed (tantivy), then a damaged index: the next
process replays or rebuilds it from the SQL store, with nothing lost and no phantom hit."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from qa.errors import BadDocument
from qa.indexing.chunking import Chunker
from qa.service import Service, build_service
from qa.sources.files import load_articles
from tests.conftest import make_settings
from tests.reliability_support import assert_consistent, docstore_count, write_corpus
from tests.support import ROOT, qa_env, sql_rows, wait_until

BATCH = 32
GROUP_TEXTS = 64  # ~7 bulletins per embedding group, so the batch is several pipelined groups, not one
FAULTS: list[str] = []  # what was injected, printed at the end of the module (`pytest -s`)


def _expected_chunks(folder: Path) -> set[str]:
    """The chunk ids a clean ingest of `folder` produces (chunk ids are deterministic)."""
    settings = make_settings(Path("unused"))
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    ids: set[str] = set()
    for article in load_articles([folder]):
        assert not isinstance(article, BadDocument)
        ids |= {c.chunk_id for c in chunker.chunks(article)}
    return ids


def _ingest(data_dir: Path, folder: Path) -> subprocess.Popen[str]:
    """`qa ingest` with small embedding groups: a group's articles commit in one quick burst, so with the
    default size (the whole batch in one group) the kill points below could be overrun."""
    cli = (f"import qa.indexing.indexer; qa.indexing.indexer.EMBED_GROUP_TEXTS = {GROUP_TEXTS}; "
           "from qa.cli import app; app(prog_name='qa')")
    return subprocess.Popen(
        [sys.executable, "-c", cli, "ingest", str(folder), "--json"], cwd=ROOT, env=qa_env(data_dir),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _versions(data_dir: Path) -> set[tuple[str, str]]:
    """(doc_id, fingerprint) of every committed article: a new pair is a committed add or replace."""
    import sqlite3

    with sqlite3.connect(f"file:{data_dir / 'docstore.sqlite'}?mode=ro", uri=True, timeout=5) as conn:
        return set(conn.execute("SELECT doc_id, content_hash FROM documents").fetchall())


def _kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """SIGKILL the process as soon as `ready()` holds (polled every 20 ms); fail if it finished first."""

    def reached() -> bool:
        if ready():
            return True
        if proc.poll() is not None:
            pytest.fail(f"ingest finished before the kill point ({what}); make the batch larger")
        return False

    wait_until(reached, timeout, f"progress to {what}")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    FAULTS.append(f"kill -9 qa ingest at {what}")


def _run_to_end(data_dir: Path, folder: Path) -> str:
    proc = _ingest(data_dir, folder)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


def test_kill_9_mid_batch_then_rerun_is_exact(tmp_path: Path) -> None:
    folder, data_dir = tmp_path / "batch", tmp_path / "data"
    facts = write_corpus(folder, BATCH)
    expected_docs, first_chunks = set(facts), _expected_chunks(folder)

    # 1. a batch of new articles, killed twice at different points, then run again to the end
    _kill_when(_ingest(data_dir, folder), lambda: docstore_count(data_dir) >= BATCH // 4,
               f">= {BATCH // 4}/{BATCH} new articles committed")
    _kill_when(_ingest(data_dir, folder), lambda: docstore_count(data_dir) >= 2 * BATCH // 3,
               f">= {2 * BATCH // 3}/{BATCH} new articles committed")
    pipeline = build_service(make_settings(data_dir))
    pipeline.startup()  # what `qa ingest` does before ingesting (in-process: saves a second of imports)
    report = pipeline.ingest_paths([folder])
    assert 0 < len(report.added) <= BATCH - 2 * BATCH // 3 and not report.replaced and not report.failed
    state = assert_consistent(pipeline, expected_docs)
    assert set(state.docstore_chunks) == first_chunks  # exactly what a clean ingest writes: no more, no less

    # 2. every article edited: a batch of replacements, killed midway, then `qa ingest` again to the end
    new_facts = write_corpus(folder, BATCH, edition=1)
    second_chunks = _expected_chunks(folder)
    assert not second_chunks & first_chunks
    start = _versions(data_dir)
    _kill_when(_ingest(data_dir, folder), lambda: len(_versions(data_dir) - start) >= BATCH // 2,
               f">= {BATCH // 2}/{BATCH} replacements committed")
    out = _run_to_end(data_dir, folder)
    assert '"failed": []' in out
    pipeline = build_service(make_settings(data_dir))
    state = assert_consistent(pipeline, expected_docs)
    assert set(state.docstore_chunks) == second_chunks  # no chunk of the old edition survives anywhere

    # 3. nothing lost: every article is its new edition, whole, and found by its own unique code
    for doc_id, fact in new_facts.items():
        text = pipeline.get_document(doc_id).model_dump()["text"]
        assert fact in text and facts[doc_id] not in text
        code = fact.rsplit(" ", 1)[1].rstrip(".")
        assert fact in pipeline.retriever.retrieve(code, 1, mode="bm25").passages[0].text
    assert pipeline.ingest_paths([folder]).chunks_written == 0  # and nothing is left to do


@pytest.mark.parametrize("operation", ["replace", "delete"])
def test_crash_between_chroma_delete_and_docstore_commit(
    copy_seeded: Callable[..., Service], operation: str
) -> None:
    """The state a kill leaves after `store.delete_doc` but before the docstore transaction (the only window
    where Chroma has lost vectors the docstore still lists), replayed exactly; a restart must repair it."""
    pipeline = copy_seeded()
    doc_id = "002_5bbdd2f0c43ed421"
    before = assert_consistent(pipeline)
    pipeline.docs.mark_pending(doc_id)
    pipeline.indexer.store.delete_doc(doc_id)
    if operation == "replace":  # the new version's vectors were half written too
        vector = np.ones((1, 384), dtype=np.float32) / np.sqrt(384)
        pipeline.indexer.store.upsert([f"{doc_id}:0123456789:0"], vector, [{"doc_id": doc_id, "idx": 0}])
    FAULTS.append(f"crash state after Chroma delete, before docstore commit ({operation})")

    restarted = copy_seeded()  # a new process on the same data folder: start-up runs the repair
    restarted.startup()
    after = assert_consistent(restarted)
    assert set(after.chroma_chunks) == set(before.chroma_chunks)
    hits = restarted.retriever.retrieve("How many people have died in the Syrian conflict?", 5, mode="dense")
    assert doc_id in {p.doc_id for p in hits.passages}  # its vectors are back, not just its rows


KEYWORD_WRITER = """
import sys
from pathlib import Path
from qa.sources.article import Article
from qa.store import ChunkRow
from qa.store.documents import sqlite_store

folder, edition = Path(sys.argv[1]), int(sys.argv[2])
store = sqlite_store(folder / "docstore.sqlite", folder / "keyword-index")
for i in range(int(sys.argv[3])):
    doc_id = f"a{i}"
    if i % 5 == edition % 5:
        store.delete(doc_id)
        continue
    text = f"Bulletin {i}. The code is e{edition}x{i}. " + "Harbour cranes were repaired in March. " * 20
    half = len(text) // 2
    chunks = [ChunkRow(f"{doc_id}:{edition}:{n}", doc_id, n, s, e) for n, (s, e) in enumerate([(0, half),
                                                                                              (half, len(text))])]
    store.put(Article(doc_id, f"Bulletin {i}", text), f"{edition}", chunks, {}, "m")
print("applying", flush=True)
store.keyword_catch_up()
print("applied", flush=True)
"""


def backup(source: Path, target: Path) -> None:
    """SQLite's online backup, from one database file into another (a restore too)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def test_kill_9_while_the_keyword_index_applies_changes(tmp_path: Path) -> None:
    """Rounds of edits and deletes, each process killed at another moment while tantivy applies them (the
    first round while it builds the index from nothing); each time a new process ends with the index holding
    exactly the SQL store's chunks, each article's current edition found by its code, no old or deleted one.
    Then a damaged index is rebuilt from the store, and so is one ahead of a store restored from a backup."""
    from qa.store.documents import sqlite_store

    articles, folder = 150, tmp_path / "data"
    folder.mkdir()

    def audit(edition: int) -> None:
        store = sqlite_store(folder / "docstore.sqlite", folder / "keyword-index")
        store.keyword_catch_up()
        sql = {r[0] for r in sql_rows(store, "SELECT chunk_id FROM chunks")}
        indexed = store.keyword.chunk_ids()
        assert len(indexed) == len(set(indexed)) and set(indexed) == sql
        for i in range(0, articles, 7):
            hits = {c.split(":")[0] for c, _ in store.keyword_search(f"e{edition}x{i}", 5)}
            assert hits == (set() if i % 5 == edition % 5 else {f"a{i}"}), (edition, i)
            assert store.keyword_search(f"e{edition - 1}x{i}", 5) == []  # no phantom of the edition before

    for edition, delay in enumerate((0.0, 0.05, 0.12)):
        proc = subprocess.Popen([sys.executable, "-c", KEYWORD_WRITER, str(folder), str(edition), str(articles)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "applying", proc.stderr
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        FAULTS.append(f"kill -9 {delay * 1000:.0f} ms into applying keyword changes (edition {edition})"
                      + ("" if proc.returncode == -signal.SIGKILL else ": it had finished"))
        audit(edition)
        if edition == 1:  # a backup of the SQL store, restored below under a newer index
            backup(folder / "docstore.sqlite", tmp_path / "backup.sqlite")

    (folder / "keyword-index" / "meta.json").write_text("{ not json")
    FAULTS.append("keyword index meta.json overwritten with garbage")
    audit(edition)
    backup(tmp_path / "backup.sqlite", folder / "docstore.sqlite")
    FAULTS.append("SQL store restored from an older backup under a newer keyword index")
    audit(1)  # the index was ahead of the store: rebuilt from it, nothing of the later edition left


def teardown_module() -> None:
    print(f"\nfaults injected ({len(FAULTS)}):", *FAULTS, sep="\n  ")
