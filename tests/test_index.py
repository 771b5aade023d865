"""Indexing against real embedded Chroma and the real embedder: idempotent, replaces, deletes, filters."""

from __future__ import annotations

import fcntl
import gc
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qa.indexing.indexer
from qa.errors import BadDocument, NotIndexed, StoreUnavailable
from qa.retrieval import Filters
from qa.service import Service, build_service
from qa.sources.article import Article
from qa.sources.files import load_articles
from qa.store.chroma import ChromaIndex
from qa.store.layout import DataLayout
from tests.conftest import make_settings
from tests.reliability_support import assert_consistent as audit
from tests.reliability_support import keyword_indexed, write_corpus
from tests.support import SEEDS, sql_rows


def chroma_ids(pipeline: Service) -> set[str]:
    store = pipeline.indexer.store
    return set(store._call(lambda col: col.get(include=[]))["ids"])


def docstore_ids(pipeline: Service) -> set[str]:
    return {row[0] for row in sql_rows(pipeline.docs, "SELECT chunk_id FROM chunks")}


def keyword_ids(pipeline: Service) -> set[str]:
    return set(keyword_indexed(pipeline))


def assert_consistent(pipeline: Service) -> None:
    """Chroma, the docstore and the keyword index hold exactly the same chunks."""
    ids = docstore_ids(pipeline)
    assert chroma_ids(pipeline) == ids
    assert keyword_ids(pipeline) == ids


def test_reingest_is_a_no_op(copy_seeded: Callable[..., Service]) -> None:
    pipeline = copy_seeded()
    before = docstore_ids(pipeline)
    report = pipeline.ingest_paths([SEEDS])
    assert len(report.unchanged) == 5 and not report.added and not report.replaced
    assert report.chunks_written == 0
    assert docstore_ids(pipeline) == before
    assert_consistent(pipeline)
    assert "_splitter" not in vars(pipeline.indexer.chunker)  # nothing to chunk: llama-index never loaded


def test_edited_article_replaces_exactly_its_chunks(copy_seeded: Callable[..., Service], tmp_path: Path) -> None:
    pipeline = copy_seeded()
    folder = tmp_path / "seeds"
    shutil.copytree(SEEDS, folder)
    target = folder / "004_7c33a6ff5fb8c658.txt"
    target.write_text(target.read_text("utf-8") + "\n\nLavrov added that the zebra talks were unprecedented.", "utf-8")
    before = docstore_ids(pipeline)
    report = pipeline.ingest_paths([folder])
    assert report.replaced == ["004_7c33a6ff5fb8c658"] and len(report.unchanged) == 4
    after = docstore_ids(pipeline)
    untouched = {i for i in before if not i.startswith("004_")}
    assert untouched <= after  # other articles' chunks are the same ids
    assert not {i for i in before if i.startswith("004_")} & after  # no orphans of the old version
    assert_consistent(pipeline)
    hits = pipeline.retriever.retrieve("zebra talks", 3, mode="bm25").passages
    assert hits and hits[0].doc_id == "004_7c33a6ff5fb8c658"


def test_delete_removes_everywhere(copy_seeded: Callable[..., Service]) -> None:
    pipeline = copy_seeded()
    pipeline.delete("002_5bbdd2f0c43ed421")
    assert pipeline.docs.get_document("002_5bbdd2f0c43ed421") is None
    assert not any(i.startswith("002_") for i in chroma_ids(pipeline))
    assert_consistent(pipeline)
    hits = pipeline.retriever.retrieve("Comey fired FBI", 5).passages
    assert all(p.doc_id != "002_5bbdd2f0c43ed421" for p in hits)


def test_collection_refuses_another_embedding_model(copy_seeded: Callable[..., Service]) -> None:
    pipeline = copy_seeded()
    other = ChromaIndex("some-other-model", pipeline.settings.collection, DataLayout(pipeline.settings.data_dir).chroma)
    with pytest.raises(NotIndexed, match="re-index"):
        other.check()


def test_filters_on_source_and_date(pipeline: Service) -> None:
    rt = pipeline.retriever.retrieve("Tillerson Lavrov talks", 10, Filters(source="rt")).passages
    assert rt and {p.source for p in rt} == {"RT"}
    may = pipeline.retriever.retrieve("Tillerson Lavrov talks", 10, Filters(published_from=date(2017, 5, 1))).passages
    assert may and {p.published for p in may} == {"2017-05-10"}
    april = Filters(published_from=date(2017, 4, 11), published_to=date(2017, 4, 11))
    only = pipeline.retriever.retrieve("Tillerson Lavrov talks", 10, april).passages
    assert only and {p.doc_id for p in only} == {"001_0859ef80a2bb3438"}
    for mode in ("dense", "bm25"):
        assert pipeline.retriever.retrieve("Syria", 5, Filters(source="nobody"), mode=mode).passages == []


def test_passage_text_is_the_article_slice(pipeline: Service) -> None:
    for passage in pipeline.retriever.retrieve("chemical attack Idlib", 5).passages:
        article = pipeline.docs.get_document(passage.doc_id)
        assert article.text[passage.start : passage.end] == passage.text


# Pipelined ingest: each embedding group is written (one Chroma upsert) on a writer thread while the next
# group is embedded. Small groups (EMBED_GROUP_TEXTS patched to 10: two ~9-text bulletins) make several groups.


def _fresh(tmp_path: Path, name: str = "data", **overrides: object) -> Service:
    return build_service(make_settings(tmp_path / name, **overrides))


def _articles(folder: Path) -> list[Article]:
    """The folder's articles in the order an ingest reads them."""
    return [a for a in load_articles([folder]) if isinstance(a, Article)]


def _group_spy(pipeline: Service, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Records the doc ids of every group handed to the writer thread."""
    groups: list[list[str]] = []
    write = pipeline.indexer._write_group

    def spy(group: Any, vectors: np.ndarray) -> None:
        groups.append([article.doc_id for article, *_ in group.articles])
        write(group, vectors)

    monkeypatch.setattr(pipeline.indexer, "_write_group", spy)
    return groups


def _rows(pipeline: Service) -> dict[str, list[tuple]]:
    """Every docstore row that an ingest writes (not the timestamps)."""
    return {
        "documents": sql_rows(pipeline.docs,
            "SELECT doc_id, title, source, published, text, content_hash, n_chunks, embed_model FROM documents"
            " ORDER BY doc_id"),
        "chunks": sql_rows(pipeline.docs, 'SELECT chunk_id, doc_id, idx, start, "end" FROM chunks ORDER BY 1'),
        "sentences": sql_rows(pipeline.docs, 'SELECT kind, doc_id, start, "end" FROM spans ORDER BY 1, 2, 3'),
    }


def _sentence_vectors(pipeline: Service) -> tuple[list[str], np.ndarray]:
    """Each stored sentence's text and its stored vector."""
    texts, vectors = [], []
    for text, start, end, vector in sql_rows(
        pipeline.docs, 'SELECT d.text, s.start, s."end", s.vector FROM spans s JOIN documents d USING (doc_id)'
        " ORDER BY 1, 2"):
        texts.append(text[start:end])
        vectors.append(np.frombuffer(vector, dtype=np.float16).astype(np.float32))
    return texts, np.stack(vectors)


def _assert_same_direction(stored: np.ndarray, fresh: np.ndarray) -> None:
    """Stored vectors are those of their own texts (a shifted slice would pair a vector with another text)."""
    cosine = (stored * fresh).sum(axis=1) / np.linalg.norm(stored, axis=1) / np.linalg.norm(fresh, axis=1)
    assert cosine.min() > 0.99, f"{int((cosine <= 0.99).sum())} vectors do not match their text"


def _chroma(pipeline: Service) -> dict[str, tuple[dict, np.ndarray]]:
    got = pipeline.indexer.store._call(lambda col: col.get(include=["metadatas", "embeddings"]))
    return {i: (m, np.asarray(e)) for i, m, e in zip(got["ids"], got["metadatas"], got["embeddings"], strict=True)}


def test_progress_hears_of_each_article_when_it_is_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside one group, `embedded` names each article as soon as its texts are embedded (what `qa ingest`'s bar
    counts), before the group's last embedding call; `progress` still hears of each input once it is written."""
    from qa.sources import FileSource

    folder = tmp_path / "corpus"
    write_corpus(folder, 3)
    monkeypatch.setattr(qa.indexing.indexer, "PROGRESS_TEXTS", 1)  # one text per embedding call
    service = _fresh(tmp_path)
    events: list[str] = []
    embed = service.indexer.embedder.embed
    monkeypatch.setattr(service.indexer.embedder, "embed", lambda texts: events.append("embed") or embed(texts))
    report = service.ingest(FileSource([folder], service.settings.max_upload_bytes),
                            progress=lambda name: events.append(f"written {name}"),
                            embedded=lambda name: events.append(f"embedded {name}"))
    ids = report.added
    assert len(ids) == 3
    assert [e for e in events if e.startswith("embedded")] == [f"embedded {i}" for i in ids]
    assert [e for e in events if e.startswith("written")] == [f"written {i}" for i in ids]
    last_embed = max(i for i, e in enumerate(events) if e == "embed")
    assert events.index(f"embedded {ids[0]}") < events.index(f"embedded {ids[1]}") < last_embed  # moved per article
    assert all(events.index(f"embedded {i}") < events.index(f"written {i}") for i in ids)


def test_pipelined_groups_write_what_one_group_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several groups (writes overlapping the next embedding) give the same chunk ids, docstore rows, vectors,
    metadata and answers as a single group, and every vector belongs to its own text (no slicing shift)."""
    folder = tmp_path / "corpus"
    write_corpus(folder, 8)
    for seed in ("001_0859ef80a2bb3438.txt", "002_5bbdd2f0c43ed421.txt"):  # long: several chunks each
        shutil.copy(SEEDS / seed, folder / seed)
    ids = [a.doc_id for a in _articles(folder)]
    monkeypatch.setattr(qa.indexing.indexer, "EMBED_GROUP_TEXTS", 10**6)
    single = _fresh(tmp_path, "single", sentence_vectors="separate")  # sentence vectors made at ingest too
    single_groups = _group_spy(single, monkeypatch)
    single_report = single.ingest_paths([folder])
    monkeypatch.setattr(qa.indexing.indexer, "EMBED_GROUP_TEXTS", 10)
    piped = _fresh(tmp_path, "piped", sentence_vectors="separate")
    piped_groups = _group_spy(piped, monkeypatch)
    progress: list[str] = []
    report = piped.ingest_paths([folder], progress=progress.append)

    assert len(single_groups) == 1 and len(piped_groups) >= 5
    assert [i for g in piped_groups for i in g] == ids
    assert report.added == single_report.added == progress == ids
    assert report.chunks_written == single_report.chunks_written == report.chunks_total > len(ids)
    assert _rows(piped) == _rows(single)
    audit(piped, set(ids))
    one, many = _chroma(single), _chroma(piped)
    assert many.keys() == one.keys()
    for chunk_id, (metadata, vector) in many.items():
        assert metadata == one[chunk_id][0]
        np.testing.assert_allclose(vector, one[chunk_id][1], atol=1e-3)
    texts = piped.docs.get_chunks(many)
    embed = piped.indexer.embedder.embed
    _assert_same_direction(np.stack([v for _, v in many.values()]), embed([texts[i].text for i in many]))
    sentences, stored = _sentence_vectors(piped)
    np.testing.assert_allclose(stored, _sentence_vectors(single)[1], atol=1e-2)
    _assert_same_direction(stored, embed(sentences))
    for question in ("Tillerson Lavrov talks", "ledger code of bulletin 7", "chemical attack"):
        for mode in ("dense", "bm25", "hybrid"):
            got = [(p.chunk_id, p.text) for p in piped.retriever.retrieve(question, 5, mode=mode).passages]
            assert got == [(p.chunk_id, p.text) for p in single.retriever.retrieve(question, 5, mode=mode).passages]


@pytest.mark.parametrize("edition", [0, 1], ids=["new", "replace"])
def test_writer_error_surfaces_and_next_ingest_repairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edition: int
) -> None:
    """The 2nd group's Chroma upsert lands, then raises (like a crash before the docstore commit): ingest()
    raises it, stops (no later group written), reports only the first group, leaves the second pending;
    start-up puts back what the docstore holds, and the next ingest completes with every vector once."""
    folder = tmp_path / "corpus"
    pipeline = _fresh(tmp_path)
    old_facts = write_corpus(folder, 8) if edition else {}
    if edition:
        pipeline.ingest_paths([folder])
    facts = write_corpus(folder, 8, edition=edition)
    ids = [a.doc_id for a in _articles(folder)]
    monkeypatch.setattr(qa.indexing.indexer, "EMBED_GROUP_TEXTS", 10)
    groups = _group_spy(pipeline, monkeypatch)
    store = pipeline.indexer.store
    upsert = store.upsert
    calls: list[int] = []

    def failing(chunk_ids: Any, vectors: np.ndarray, metadatas: Any) -> None:
        calls.append(len(chunk_ids))
        upsert(chunk_ids, vectors, metadatas)
        if len(calls) == 2:
            raise StoreUnavailable("disk full")

    monkeypatch.setattr(store, "upsert", failing)
    progress: list[str] = []
    with pytest.raises(StoreUnavailable, match="disk full"):
        pipeline.ingest_paths([folder], progress=progress.append)
    assert len(calls) == 2 and len(groups) == 2  # the error stopped the ingest at the next group
    first, second = groups
    assert progress == first  # reported: only what was written
    assert sorted(pipeline.docs.pending()) == sorted(second)
    stale = set(chroma_ids(pipeline)) - docstore_ids(pipeline)
    assert stale and {i.split(":")[0] for i in stale} == set(second)  # the new vectors, without docstore rows

    monkeypatch.setattr(store, "upsert", upsert)
    restarted = build_service(make_settings(pipeline.settings.data_dir))
    restarted.startup()  # the repair: Chroma matches the docstore again (old vectors re-embedded for replaces)
    audit(restarted, set(ids) if edition else set(first))
    for doc_id in second:  # what the docstore held before: the old edition, or nothing
        document = restarted.docs.get_document(doc_id)
        assert (old_facts[doc_id] in document.text) if edition else document is None
    report = restarted.ingest_paths([folder])
    rest = [i for i in ids if i not in first]
    assert report.unchanged == first and (report.replaced if edition else report.added) == rest
    state = audit(restarted, set(facts))
    chunker = restarted.indexer.chunker
    expected = {c.chunk_id for a in _articles(folder) for c in chunker.chunks(a)}
    assert set(state.docstore_chunks) == expected
    assert len(state.chroma_chunks) == restarted.indexer.store.check() == len(expected)
    for doc_id, fact in facts.items():
        code = fact.rsplit(" ", 1)[1].rstrip(".")
        hit = restarted.retriever.retrieve(code, 1, mode="bm25").passages[0]
        assert hit.doc_id == doc_id and fact in hit.text


def test_error_in_the_reading_thread_waits_for_the_write_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the input fails while a group is being written, ingest() raises only after that write finished,
    and the writer lock is held throughout (another writer could otherwise interleave with it)."""
    folder = tmp_path / "corpus"
    write_corpus(folder, 3)
    articles = _articles(folder)
    pipeline = _fresh(tmp_path)
    monkeypatch.setattr(qa.indexing.indexer, "EMBED_GROUP_TEXTS", 1)  # every article is a group of its own
    store = pipeline.indexer.store
    upsert = store.upsert
    started, finished, lock_free_during_write = threading.Event(), threading.Event(), []

    def slow(ids: Any, vectors: np.ndarray, metadatas: Any) -> None:
        started.set()
        lock_free_during_write.append(_lock_is_free(pipeline.indexer.lock.path))
        time.sleep(0.5)  # meanwhile the reading thread raises
        lock_free_during_write.append(_lock_is_free(pipeline.indexer.lock.path))
        upsert(ids, vectors, metadatas)
        finished.set()

    def items() -> Iterator[Article]:
        yield articles[0]
        assert started.wait(30)  # the first article's group is in the writer's hands
        raise OSError("the upload connection dropped")

    monkeypatch.setattr(store, "upsert", slow)
    with pytest.raises(OSError, match="connection dropped"):
        pipeline.indexer.ingest(items())
    assert finished.is_set()  # not left behind, still writing
    assert lock_free_during_write == [False, False]
    assert _lock_is_free(pipeline.indexer.lock.path)
    assert not pipeline.docs.pending() and pipeline.docs.content_hash(articles[0].doc_id)
    pipeline.startup()
    audit(pipeline, {articles[0].doc_id})


def test_a_failed_write_is_noted_on_the_reading_threads_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both threads fail: the input's error is raised, and the write's error travels with it as a note."""
    folder = tmp_path / "corpus"
    write_corpus(folder, 2)
    articles = _articles(folder)
    pipeline = _fresh(tmp_path)
    monkeypatch.setattr(qa.indexing.indexer, "EMBED_GROUP_TEXTS", 1)
    started = threading.Event()

    def broken(ids: Any, vectors: np.ndarray, metadatas: Any) -> None:
        started.set()
        time.sleep(0.3)
        raise StoreUnavailable("chroma went away")

    def items() -> Iterator[Article]:
        yield articles[0]
        assert started.wait(30)
        raise OSError("the upload connection dropped")

    monkeypatch.setattr(pipeline.indexer.store, "upsert", broken)
    with pytest.raises(OSError, match="connection dropped") as raised:
        pipeline.indexer.ingest(items())
    assert any("chroma went away" in note for note in raised.value.__notes__)
    assert pipeline.docs.pending() == [articles[0].doc_id]  # left for repair, as after a crash


def test_a_replaced_article_never_leaves_dense_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its new vectors are in Chroma before the old ones are deleted: at no moment does it have none."""
    folder = tmp_path / "corpus"
    write_corpus(folder, 3)
    pipeline = _fresh(tmp_path)
    pipeline.ingest_paths([folder])
    write_corpus(folder, 3, edition=1)
    store = pipeline.indexer.store
    delete_doc = store.delete_doc
    present: list[int] = []

    def watched(doc_id: str, keep: set[str] | None = None) -> None:
        present.append(len(set(store.ids_for(doc_id)) & (keep or set())))  # new vectors already there
        delete_doc(doc_id, keep)

    monkeypatch.setattr(store, "delete_doc", watched)
    report = pipeline.ingest_paths([folder])
    assert len(report.replaced) == 3 and len(present) == 3 and all(present)
    pipeline.startup()
    audit(pipeline, set(report.replaced))


def _lock_is_free(path: Path) -> bool:
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def test_progress_and_report_keep_input_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unchanged, bad, duplicate and changed inputs mixed over several groups, with writes still in flight when
    later inputs are skipped: progress is called once per input, in input order, on the caller's thread."""
    folder = tmp_path / "corpus"
    write_corpus(folder, 8)
    articles = _articles(folder)
    pipeline = _fresh(tmp_path)
    pipeline.indexer.ingest(articles[::2])  # the even ones are indexed, so they come back unchanged
    monkeypatch.setattr(qa.indexing.indexer, "EMBED_GROUP_TEXTS", 10)
    groups = _group_spy(pipeline, monkeypatch)
    store = pipeline.indexer.store
    upsert = store.upsert

    def slow(ids: Any, vectors: np.ndarray, metadatas: Any) -> None:
        time.sleep(0.2)  # the reading thread moves on to the next inputs meanwhile
        upsert(ids, vectors, metadatas)

    monkeypatch.setattr(store, "upsert", slow)
    bad = BadDocument("broken.txt", "no text")
    items: list[Article | BadDocument] = [*articles[:6], bad, articles[1], *articles[6:]]
    calls: list[tuple[str, str]] = []
    report = pipeline.indexer.ingest(items, lambda name: calls.append((name, threading.current_thread().name)))

    assert len(groups) >= 2
    expected = [getattr(item, "doc_id", None) or item.name for item in items]
    expected[7] = articles[1].path  # the duplicate is reported as a bad file
    assert [name for name, _ in calls] == expected
    assert {thread for _, thread in calls} == {threading.current_thread().name}
    assert report.added == [a.doc_id for a in articles[1::2]]
    assert report.unchanged == [a.doc_id for a in articles[::2]]
    assert [f.name for f in report.failed] == ["broken.txt", articles[1].path]
    assert report.chunks_written == sum(len(pipeline.docs.chunk_ids(a.doc_id)) for a in articles[1::2])
    audit(pipeline, {a.doc_id for a in articles})


def test_no_writer_thread_or_connection_outlives_an_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ingest starts its writer thread and ends it: no thread, and no SQLite connection (the docstore
    opens one per thread), is left behind, without waiting for the garbage collector."""
    folder = tmp_path / "corpus"
    # lazy: no background fill thread, so only the ingest's threads use the store's pooled connections
    pipeline = _fresh(tmp_path, sentence_vectors="lazy")
    monkeypatch.setattr(qa.indexing.indexer, "EMBED_GROUP_TEXTS", 10)

    def docstore_handles() -> int:
        fds = Path("/proc/self/fd")
        return sum(1 for fd in fds.iterdir() if _target(fd).startswith(str(pipeline.docs.db.engine.url.database)))

    gc.disable()  # an unclosed sqlite3 connection is a reference cycle: only a collection would free it
    try:
        handles = []
        for edition in range(4):
            write_corpus(folder, 4, edition=edition)
            assert pipeline.ingest_paths([folder]).chunks_written > 0
            handles.append(docstore_handles())  # the first ingest creates the WAL file the main thread keeps
            assert not [t for t in threading.enumerate() if t.name.startswith("ingest-writer")]
        assert handles[1] == handles[2] == handles[3] == handles[0]
    finally:
        gc.enable()


def _target(fd: Path) -> str:
    try:
        return os.readlink(fd)
    except OSError:
        return ""
