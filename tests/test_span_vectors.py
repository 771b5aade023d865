"""Sentence vectors pooled from the chunk's forward pass: the real ONNX embedder, real Chroma and SQLite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.embedding.onnx import MAX_TOKENS, OnnxMiniLMEmbedding
from qa.service import Service, build_service
from qa.sources.files import load_articles
from tests.conftest import make_settings
from tests.support import ROOT, SEEDS, sql_rows, wait_until

TEXT = ("The council met on Monday. It voted to close the old bridge for repairs. "
        "Traffic will use the ferry until March.")


@pytest.fixture(scope="module")
def embedder() -> OnnxMiniLMEmbedding:
    return OnnxMiniLMEmbedding()


def _token_mean(embedder: OnnxMiniLMEmbedding, text: str, start: int, end: int) -> np.ndarray:
    """The mean of the last hidden states of the tokens inside text[start:end], found character by character."""
    encoding = embedder._tokenizer.encode(text)
    hidden, _ = embedder._forward([encoding])
    rows = [t for t, (s, e) in enumerate(encoding.offsets)
            if not encoding.special_tokens_mask[t] and s >= start and e <= end]
    vector = hidden[0, rows].mean(axis=0)
    return vector / np.linalg.norm(vector)


def test_text_vectors_are_embeds_and_spans_are_their_tokens_mean(embedder: OnnxMiniLMEmbedding) -> None:
    texts = [TEXT, "A second, shorter text about the ferry."]
    spans = [[(0, 26), (27, 72), (73, len(TEXT))], []]
    vectors, span_vectors, whole = embedder.embed_with_spans(texts, spans)
    np.testing.assert_allclose(vectors, embedder.embed(texts), atol=1e-6)
    assert whole[0].tolist() == [True, True, True] and len(whole[1]) == 0
    for (start, end), vector in zip(spans[0], span_vectors[0], strict=True):
        np.testing.assert_allclose(vector, _token_mean(embedder, TEXT, start, end), atol=1e-5)
    assert np.allclose(np.linalg.norm(span_vectors[0], axis=1), 1.0, atol=1e-5)
    # contextual: the same sentence pooled in its text is not the sentence embedded alone, but close to it
    alone = embedder.embed([TEXT[27:72]])[0]
    assert 0.5 < float(span_vectors[0][1] @ alone) < 0.999


def test_parallel_batches_give_each_text_its_own_vector_in_order(embedder: OnnxMiniLMEmbedding) -> None:
    """Two single-threaded runs at once (the default on two cores) write each batch's rows where they belong:
    the same vectors, text for text, as one batch at a time on one worker."""
    assert embedder.workers >= 2  # one per core: CI and laptops have at least two
    one_worker = OnnxMiniLMEmbedding(threads=1)
    texts = [f"Report {i}: " + "the ferry resumed service after the storm. " * (1 + i % 9) for i in range(70)]
    parallel, serial = embedder.embed(texts), one_worker.embed(texts)
    np.testing.assert_allclose(parallel, serial, atol=1e-6)
    assert float(parallel[0] @ parallel[1]) < 0.999  # rows are distinct texts, not one vector copied
    spans = [[(0, 9)] for _ in texts]
    vectors, span_vectors, _ = embedder.embed_with_spans(texts, spans)
    serial_vectors, serial_spans, _ = one_worker.embed_with_spans(texts, spans)
    np.testing.assert_allclose(vectors, serial_vectors, atol=1e-6)
    np.testing.assert_allclose(np.stack([v[0] for v in span_vectors]), np.stack([v[0] for v in serial_spans]),
                               atol=1e-6)


def test_batches_bound_rows_token_slots_and_padding() -> None:
    """Full chunks go four to a batch, short sentences many more, and lengths far apart never share one."""
    from qa.embedding.onnx import BATCH_TOKENS, PADDING_SLACK, _batches

    lengths = [256] * 10 + [30] * 100 + [120, 130]
    batches = _batches(lengths, max_size=64)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) <= 64 and (len(batch) == 1 or len(batch) * width <= BATCH_TOKENS)
        assert len(batch) * width <= (1 + PADDING_SLACK) * sum(lengths[i] for i in batch)
    assert max(len(b) for b in batches if lengths[b[0]] == 256) == BATCH_TOKENS // 256
    assert max(len(b) for b in batches if lengths[b[0]] == 30) == BATCH_TOKENS // 30


def test_a_span_cut_by_truncation_is_not_whole(embedder: OnnxMiniLMEmbedding) -> None:
    long = " ".join(f"Word{i} is here." for i in range(MAX_TOKENS))  # far more than 256 tokens
    tail = (len(long) - len("Word255 is here."), len(long))
    _, span_vectors, whole = embedder.embed_with_spans([long], [[(0, 13), tail]])
    assert whole[0].tolist() == [True, False]
    assert not span_vectors[0][1].any()
    with pytest.raises(ValueError):
        embedder.embed_with_spans([long], [])


def stored_sentences(service: Service) -> dict[tuple[str, int, int], np.ndarray]:
    rows = sql_rows(service.docs, """SELECT doc_id, start, "end", vector FROM spans WHERE kind='sentence'""")
    return {(d, s, e): np.frombuffer(v, dtype=np.float16).astype(np.float32) for d, s, e, v in rows}


def expected_pooled(service: Service, doc_id: str, start: int, end: int) -> np.ndarray:
    """The rule, computed chunk by chunk: mean of the sentence's pooled vectors in every chunk holding it whole
    (and not cut by truncation), renormalised; the sentence embedded alone when there is none."""
    embedder = service.indexer.embedder
    text = service.docs.get_document(doc_id).text
    rows = sql_rows(service.docs, 'SELECT start, "end" FROM chunks WHERE doc_id=?', (doc_id,))
    found = []
    for chunk_start, chunk_end in rows:
        if chunk_start <= start and end <= chunk_end:
            _, vectors, whole = embedder.embed_with_spans([text[chunk_start:chunk_end]],
                                                          [[(start - chunk_start, end - chunk_start)]])
            if whole[0][0]:
                found.append(vectors[0][0])
    if not found:
        return embedder.embed([text[start:end]])[0]
    vector = np.sum(found, axis=0)
    return vector / np.linalg.norm(vector)


def test_ingest_pools_sentences_from_the_chunk_pass(tmp_path: Path) -> None:
    """One forward pass over the chunks gives every sentence a vector; only sentences that no chunk holds whole
    are embedded alone; the stored vector of each sentence is the one its chunks give it (no shifted slices)."""
    service = build_service(make_settings(tmp_path / "pooled", chunk_size=600, chunk_overlap=64,
                                          sentence_vectors="pooled"))
    alone: list[list[str]] = []
    embed = service.indexer.embedder.embed
    service.indexer.embedder.embed = lambda texts: (alone.append(texts), embed(texts))[1]  # type: ignore[method-assign]
    report = service.indexer.ingest(load_articles([SEEDS]))
    assert len(report.added) == 5
    stored = stored_sentences(service)
    assert len(stored) > 100
    # 600-token chunks exceed the model's 256: their tail sentences can only be embedded alone
    assert 0 < sum(len(t) for t in alone) < len(stored)
    for (doc_id, start, end), vector in stored.items():
        expected = expected_pooled(service, doc_id, start, end)
        assert float(vector @ expected) > 0.999, (doc_id, start, end)


def test_separate_sentence_vectors_and_switching_re_indexes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    separate = build_service(make_settings(data, sentence_vectors="separate"))
    first = separate.indexer.ingest(load_articles([SEEDS]))
    assert len(first.added) == 5
    stored = stored_sentences(separate)
    texts = {key: separate.docs.get_document(key[0]).text[key[1] : key[2]] for key in stored}
    fresh = separate.indexer.embedder.embed(list(texts.values()))
    cosine = (np.stack(list(stored.values())) * fresh).sum(axis=1)
    assert cosine.min() > 0.999  # each sentence embedded alone, as before pooling
    assert len(separate.indexer.ingest(load_articles([SEEDS])).unchanged) == 5
    pooled = build_service(make_settings(data, sentence_vectors="pooled"))
    again = pooled.indexer.ingest(load_articles([SEEDS]))
    assert len(again.replaced) == 5  # the vectors are derived differently: the fingerprint says so
    assert stored_sentences(pooled).keys() == stored.keys()


def test_lazy_and_background_sentence_vectors_answer_as_ingest_time_ones(tmp_path: Path) -> None:
    """QA_SENTENCE_VECTORS=lazy: an ingest embeds nothing but the chunks and stores the same sentence spans
    without vectors; answers to every eval question are the ones ingest-time vectors give. `background` (the
    default) stores those vectors after the ingest, and answers the same from them."""
    import json

    separate = build_service(make_settings(tmp_path / "separate", sentence_vectors="separate"))
    assert len(separate.indexer.ingest(load_articles([SEEDS])).added) == 5
    lazy = build_service(make_settings(tmp_path / "lazy", sentence_vectors="lazy"))
    embedded: list[str] = []
    embed = lazy.indexer.embedder.embed
    lazy.indexer.embedder.embed = lambda texts: (embedded.extend(texts), embed(texts))[1]  # type: ignore[method-assign]
    report = lazy.indexer.ingest(load_articles([SEEDS]))
    assert len(report.added) == 5
    lazy.indexer.embedder.embed = embed  # type: ignore[method-assign]
    chunks = sql_rows(lazy.docs, 'SELECT doc_id, start, "end" FROM chunks')
    texts = {d: lazy.docs.get_document(d).text for d, _, _ in chunks}
    assert sorted(embedded) == sorted(texts[d][s:e] for d, s, e in chunks)  # chunks only, each once
    rows = sql_rows(lazy.docs, """SELECT doc_id, start, "end", length(vector) FROM spans""")
    assert {r[:3] for r in rows} == set(stored_sentences(separate)) and {r[3] for r in rows} == {0}

    questions = [json.loads(line)["question"] for line in (ROOT / "eval/data/questions.jsonl").open()]
    cache = lazy.answerer.answerers[0].on_use  # type: ignore[attr-defined]
    answers = {q: (a.answer, a.refused) for q in questions for a in [separate.ask(q)]}
    for question in questions:
        got = lazy.ask(question)
        assert (got.answer, got.refused) == answers[question], question
    assert 0 < len(cache._cache) < len(rows)  # only the sentences of passages that were read
    before = len(cache._cache)
    lazy.ask(questions[0])
    assert len(cache._cache) == before  # a second read costs no embedding

    # QA_SENTENCE_VECTORS=background (the default) on the same folder, which it reads as is (same fingerprint):
    # the serving process's fill stores every span's vector, each sentence's own, as `separate` stores it ...
    background = build_service(make_settings(tmp_path / "lazy", sentence_vectors="background"))
    assert background.fill is not None and background.health().spans_waiting is None
    background.start_background()
    try:
        wait_until(lambda: background.health().spans_waiting == 0, 120, "the background fill finishing", every=0.05)
        filled, want = stored_sentences(background), stored_sentences(separate)
        assert filled.keys() == want.keys()
        assert max(float(np.abs(filled[k] - want[k]).max()) for k in want) < 2e-3  # float16 steps, batch order
        # ... and answers read them: the same answers, none of their sentences embedded again
        for question in questions:
            got = background.ask(question)
            assert (got.answer, got.refused) == answers[question], question
        assert not background.answerer.answerers[0].on_use._cache  # type: ignore[attr-defined]
        # an article ingested through the service wakes the fill: every one of its spans gets its vector
        text = "Harbour cranes\n\nThe Tokyo harbour master said 14 cranes were repaired in March. " * 3
        assert background.ingest_files([("cranes.txt", text.encode())]).added == ["cranes"]
        wait_until(lambda: background.docs.spans_waiting("sentence") == 0 and background.fill.waiting == 0, 120,
                   "the background fill finishing", every=0.05)
        spans = background.docs.spans_in("sentence", "cranes", 0, len(text))
        assert len(spans) >= 3 and all(s.vector.size == 384 for s in spans)  # type: ignore[union-attr]
    finally:
        background.close()


def test_lazy_cache_is_bounded_and_embeds_each_text_once() -> None:
    from qa.answering.enrichments import LazySentenceVectors

    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    cache = LazySentenceVectors(embed, capacity=3)
    first = cache.vectors(["a", "bb", "a"])
    assert calls == [["a", "bb"]] and [v.tolist() for v in first] == [[1, 1], [2, 1], [1, 1]]
    cache.vectors(["bb", "ccc", "dddd"])  # "a" is the least recently used: evicted
    assert calls[-1] == ["ccc", "dddd"] and list(cache._cache) == ["bb", "ccc", "dddd"]
    cache.vectors(["a"])
    assert calls[-1] == ["a"]
