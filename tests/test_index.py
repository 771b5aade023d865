"""Indexing against real embedded Chroma and the real embedder: idempotent, replaces, deletes, filters."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from qa.errors import NotIndexed
from qa.pipeline import Pipeline
from qa.retrieve import Filters
from qa.vectors import VectorStore
from tests.support import SEEDS


def chroma_ids(pipeline: Pipeline) -> set[str]:
    store = pipeline.indexer.store
    return set(store._call(lambda col: col.get(include=[]))["ids"])


def docstore_ids(pipeline: Pipeline) -> set[str]:
    return {row[0] for row in pipeline.docs._conn().execute("SELECT chunk_id FROM chunks")}


def keyword_ids(pipeline: Pipeline) -> set[str]:
    loaded = pipeline.indexer.keyword._current()
    return set(loaded.chunk_ids) if loaded else set()


def assert_consistent(pipeline: Pipeline) -> None:
    """Chroma, the docstore and the keyword index hold exactly the same chunks."""
    ids = docstore_ids(pipeline)
    assert chroma_ids(pipeline) == ids
    assert keyword_ids(pipeline) == ids


def test_reingest_is_a_no_op(copy_seeded: Callable[..., Pipeline]) -> None:
    pipeline = copy_seeded()
    before = docstore_ids(pipeline)
    report = pipeline.ingest_paths([SEEDS])
    assert len(report.unchanged) == 5 and not report.added and not report.replaced
    assert report.chunks_written == 0
    assert docstore_ids(pipeline) == before
    assert_consistent(pipeline)


def test_edited_article_replaces_exactly_its_chunks(copy_seeded: Callable[..., Pipeline], tmp_path: Path) -> None:
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


def test_delete_removes_everywhere(copy_seeded: Callable[..., Pipeline]) -> None:
    pipeline = copy_seeded()
    pipeline.delete("002_5bbdd2f0c43ed421")
    assert pipeline.docs.get_document("002_5bbdd2f0c43ed421") is None
    assert not any(i.startswith("002_") for i in chroma_ids(pipeline))
    assert_consistent(pipeline)
    hits = pipeline.retriever.retrieve("Comey fired FBI", 5).passages
    assert all(p.doc_id != "002_5bbdd2f0c43ed421" for p in hits)


def test_collection_refuses_another_embedding_model(copy_seeded: Callable[..., Pipeline]) -> None:
    pipeline = copy_seeded()
    other = VectorStore("some-other-model", pipeline.settings.collection, pipeline.settings.data_dir)
    with pytest.raises(NotIndexed, match="re-index"):
        other.check()


def test_filters_on_source_and_date(pipeline: Pipeline) -> None:
    rt = pipeline.retriever.retrieve("Tillerson Lavrov talks", 10, Filters(source="rt")).passages
    assert rt and {p.source for p in rt} == {"RT"}
    may = pipeline.retriever.retrieve("Tillerson Lavrov talks", 10, Filters(published_from=date(2017, 5, 1))).passages
    assert may and {p.published for p in may} == {"2017-05-10"}
    april = Filters(published_from=date(2017, 4, 11), published_to=date(2017, 4, 11))
    only = pipeline.retriever.retrieve("Tillerson Lavrov talks", 10, april).passages
    assert only and {p.doc_id for p in only} == {"001_0859ef80a2bb3438"}
    for mode in ("dense", "bm25"):
        assert pipeline.retriever.retrieve("Syria", 5, Filters(source="nobody"), mode=mode).passages == []


def test_passage_text_is_the_article_slice(pipeline: Pipeline) -> None:
    for passage in pipeline.retriever.retrieve("chemical attack Idlib", 5).passages:
        article = pipeline.docs.get_document(passage.doc_id)
        assert article["text"][passage.start : passage.end] == passage.text
