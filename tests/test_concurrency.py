"""Concurrency against the real `qa serve` on 127.0.0.1: queries keep answering (no errors, bounded latency)
while a re-ingest replaces articles; concurrent uploads of one article end with one copy; a bounded load test
ends with zero errors. The figures are printed at the end of the module (`pytest -s`).

The suite sends QA_LOAD_REQUESTS (default 1,000) requests at concurrency 32; the full 5,000-request run is
`python -m tests.reliability_load` (about 70 s here, too long for every test run).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from qa.service import build_service
from tests.conftest import make_settings
from tests.reliability_load import LoadResult, run_load
from tests.reliability_support import assert_consistent, write_corpus
from tests.support import SEEDS, api_server

pytestmark = pytest.mark.server

LOAD_REQUESTS = int(os.environ.get("QA_LOAD_REQUESTS", "1000"))
LOAD_CONCURRENCY = 32
BATCH = 16
FIGURES: dict[str, object] = {}


class Served:
    """One `qa serve` for the module, on a private copy of the seeded index, with an ingest root."""

    def __init__(self, base: Path, seeded: Path) -> None:
        self.data_dir, self.root = base / "data", base / "root"
        shutil.copytree(seeded, self.data_dir)
        self.root.mkdir()
        self._stack = ExitStack()
        self.url = self._stack.enter_context(api_server(self.data_dir, QA_INGEST_ROOT=str(self.root)))
        self.expected = {p.stem for p in SEEDS.glob("*.txt")}

    def stop(self) -> None:
        self._stack.close()


@pytest.fixture(scope="module")
def served(seeded_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = Served(tmp_path_factory.mktemp("concurrency"), seeded_dir)
    try:
        yield server
    finally:
        server.stop()


def _merge(total: LoadResult, part: LoadResult) -> None:
    total.requests += part.requests
    total.latencies += part.latencies
    total.statuses.update(part.statuses)
    total.failures.update(part.failures)
    total.wall_seconds += part.wall_seconds


def test_queries_keep_answering_during_a_reingest(served: Served) -> None:
    facts = write_corpus(served.root / "batch", BATCH)
    first = httpx.post(f"{served.url}/documents/ingest-path", json={"paths": ["batch"]}, timeout=300)
    assert first.status_code == 201 and len(first.json()["added"]) == BATCH
    served.expected |= set(facts)

    new_facts = write_corpus(served.root / "batch", BATCH, edition=1)  # every article changes: a full re-ingest
    baseline = run_load(served.url, 64, 8)
    outcome: dict[str, httpx.Response] = {}

    def reingest() -> None:
        outcome["r"] = httpx.post(f"{served.url}/documents/ingest-path", json={"paths": ["batch"]}, timeout=300)

    worker = threading.Thread(target=reingest)
    during = LoadResult(0, 8)
    worker.start()
    while worker.is_alive():  # keep 8 queries in flight for as long as the re-ingest runs
        _merge(during, run_load(served.url, 24, 8))
    worker.join()
    assert outcome["r"].status_code == 201 and len(outcome["r"].json()["replaced"]) == BATCH, outcome["r"].text
    assert during.requests >= 24 and during.errors == 0, during.summary()
    assert max(during.latencies) < 30, during.summary()  # bounded: slower while ingest embeds, never stuck
    FIGURES["queries during re-ingest"] = during.summary()
    FIGURES["queries before (baseline)"] = baseline.summary()
    for doc_id in new_facts:  # every article is now its new edition, whole
        text = httpx.get(f"{served.url}/documents/{doc_id}", timeout=30).json()["text"]
        assert new_facts[doc_id] in text and facts[doc_id] not in text


def test_concurrent_uploads_of_one_article_end_with_one_copy(served: Served) -> None:
    body = b"Same article\n\nThe same article about the Zorbton ferry was uploaded by eight clients at once."
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def upload(content: bytes) -> None:
        barrier.wait()
        response = httpx.post(f"{served.url}/documents", files={"files": ("same-article.txt", content)}, timeout=120)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=upload, args=(body,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 7 + [201]  # one writer added it; the other seven found it unchanged
    served.expected.add("same-article")

    editions = [body.replace(b"eight", word) for word in (b"two", b"three", b"four", b"five")]
    barrier = threading.Barrier(len(editions))
    statuses.clear()
    threads = [threading.Thread(target=upload, args=(e,)) for e in editions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * len(editions)  # each replaced the previous one, one at a time
    document = httpx.get(f"{served.url}/documents/same-article", timeout=30).json()
    assert document["text"].encode() in editions  # exactly one whole edition, not a mix
    listed = [d["doc_id"] for d in httpx.get(f"{served.url}/documents", timeout=30).json()["documents"]]
    assert listed.count("same-article") == 1
    health = httpx.get(f"{served.url}/health", timeout=30).json()
    assert health["chunks"] == health["vectors"]
    FIGURES["concurrent uploads"] = "8 identical -> 1 added + 7 unchanged; 4 editions -> 1 copy of one edition"


@pytest.mark.timeout(180)
def test_bounded_load_has_zero_errors(served: Served) -> None:
    run_load(served.url, 50, 8)  # warm-up
    result = run_load(served.url, LOAD_REQUESTS, LOAD_CONCURRENCY)
    FIGURES[f"load: {LOAD_REQUESTS} x POST /ask at concurrency {LOAD_CONCURRENCY}"] = result.summary()
    assert result.errors == 0, result.summary()
    assert result.statuses == {200: LOAD_REQUESTS}


def test_afterwards_the_index_is_exact(served: Served) -> None:
    """Stop the server (the embedded store is one process's), then audit every store: nothing lost or doubled."""
    served.stop()
    state = assert_consistent(build_service(make_settings(served.data_dir)), served.expected)
    FIGURES["index after"] = f"{len(state.documents)} documents, {len(state.docstore_chunks)} chunks, consistent"


def teardown_module() -> None:
    print("\nconcurrency figures:", *[f"{k}: {v}" for k, v in FIGURES.items()], sep="\n  ")
