"""Upstream faults: the real `chroma run` server stopped, killed mid-ingest and started again on the same port
and folder; the LLM endpoint refusing connections, hanging, failing and returning garbage, then coming back.
The API answers with a clear 503 JSON error (or the documented extractive fallback), /health reports the
outage without a 500, and everything recovers by itself, without restarting the API."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from qa.service import Service, build_service
from tests.conftest import make_settings
from tests.fake_llm import FakeLLM, Reply
from tests.reliability_support import assert_consistent, docstore_count, write_corpus
from tests.support import SEEDS, api_server, chroma_server, free_port, stop, wait_until

pytestmark = pytest.mark.server

KEY = "faults-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MISSILES = {"question": "How many Tomahawk missiles did the US fire at the Shayrat Airbase?"}
FAULTS: list[str] = []


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"].startswith("vector store unavailable")


def test_chroma_server_down_and_back(tmp_path: Path) -> None:
    chroma_dir, data_dir, root = tmp_path / "chroma", tmp_path / "data", tmp_path / "root"
    shutil.copytree(SEEDS, root / "seeds")
    # ~57 bulletins fill an embedding group, and a group's articles commit in one burst after its Chroma
    # upsert: 80 make a second group, still being embedded when the first group's commits show.
    facts = write_corpus(root / "batch", 80)
    port = free_port()
    with ExitStack() as stack:
        first = chroma_server(chroma_dir, port)
        chroma_url, chroma = first.__enter__()
        stack.callback(first.__exit__, None, None, None)
        api = stack.enter_context(api_server(data_dir, QA_CHROMA_URL=chroma_url, QA_API_KEY=KEY,
                                             QA_INGEST_ROOT=str(root)))
        client = stack.enter_context(httpx.Client(base_url=api, timeout=120))

        # seeds go in through the API, into the Chroma server
        ingested = client.post("/documents/ingest-path", json={"paths": ["seeds"]}, headers=AUTH)
        assert ingested.status_code == 201 and len(ingested.json()["added"]) == 5, ingested.text
        assert "59" in client.post("/ask", json=MISSILES).json()["answer"]

        # 1. Chroma stopped: clear 503s, /health degraded (not a 500), writes refused, nothing half-written
        stop(chroma)
        FAULTS.append("chroma run stopped (SIGTERM) between requests")
        assert_unavailable(client.post("/ask", json=MISSILES))
        assert_unavailable(client.post("/chat", json=MISSILES))  # before the stream starts: a plain JSON 503
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded" and health.json()["documents"] == 5
        assert health.json()["error"].startswith("vector store unavailable")
        assert_unavailable(client.post("/documents/ingest-path", json={"paths": ["batch"]}, headers=AUTH))
        assert client.get("/documents").status_code == 200  # the docstore still serves reads
        assert len(client.get("/documents").json()["documents"]) == 5

        # 2. Chroma back on the same port and folder: the API recovers by itself
        with chroma_server(chroma_dir, port) as (_, chroma):
            answer = wait_until(lambda: client.post("/ask", json=MISSILES), 60,
                                "a 200 from /ask after Chroma restarted", every=0.1)
            assert answer.status_code == 200 and "59" in answer.json()["answer"]
            assert client.get("/health").json()["status"] == "ok"

            # 3. Chroma killed (-9) in the middle of an ingest through the API
            outcome: dict[str, httpx.Response] = {}
            worker = threading.Thread(target=lambda: outcome.setdefault("r", client.post(
                "/documents/ingest-path", json={"paths": ["batch"]}, headers=AUTH)))
            worker.start()
            wait_until(lambda: docstore_count(data_dir) >= 5 + 3, 120, "3 articles of the batch committed", every=0.1)
            chroma.send_signal(signal.SIGKILL)
            chroma.wait()
            FAULTS.append("chroma run killed (SIGKILL) mid-ingest")
            worker.join(timeout=120)
            assert_unavailable(outcome["r"])
            assert 5 + 3 <= docstore_count(data_dir) < 5 + len(facts)
        assert_unavailable(client.post("/ask", json=MISSILES))

        with chroma_server(chroma_dir, port) as (chroma_url, _):
            answer = wait_until(lambda: client.post("/ask", json=MISSILES), 60,
                                "a 200 from /ask after the second restart", every=0.1)
            assert "59" in answer.json()["answer"]
            again = client.post("/documents/ingest-path", json={"paths": ["batch"]}, headers=AUTH)
            assert again.status_code == 201, again.text
            assert len(again.json()["added"]) + len(again.json()["unchanged"]) == len(facts)
            # nothing lost, nothing doubled: the API's Chroma, docstore and BM25 agree exactly
            pipeline = build_service(make_settings(data_dir, chroma_url=chroma_url))
            assert_consistent(pipeline, {p.stem for p in SEEDS.glob("*.txt")} | set(facts))
            code = facts["bulletin-0005"].rsplit(" ", 1)[1].rstrip(".")  # a token only that article has
            result = client.post("/ask", json={"question": f"Which bulletin has the ledger code {code}?"}).json()
            assert any(facts["bulletin-0005"] in p["text"] for p in result["passages"])


# ---- the LLM: refused connections, hangs, errors, garbage; then back on the same address ----

def fake_llm_on(port: int) -> FakeLLM:
    """A FakeLLM bound to a given port, so "the LLM came back" means the same URL answers again."""
    llm = FakeLLM()
    handler = llm.server.RequestHandlerClass
    llm.server.server_close()
    llm.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    llm.server.daemon_threads = True
    llm.url = f"http://127.0.0.1:{port}/v1"
    llm._thread = threading.Thread(target=llm.server.serve_forever, daemon=True)
    return llm


def _done(response: httpx.Response) -> dict[str, Any]:
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        if lines["event"] in ("done", "error"):
            return {"event": lines["event"], **json.loads(lines["data"])}
    raise AssertionError(response.text[:300])


@pytest.fixture
def llm_port() -> Iterator[int]:
    yield free_port()


def test_llm_faults_fall_back_then_recover(copy_seeded: Callable[..., Service], llm_port: int) -> None:
    settings = copy_seeded(llm_base_url=f"http://127.0.0.1:{llm_port}/v1", llm_timeout=1.0,
                           llm_max_retries=0).settings
    strict = make_settings(settings.data_dir, llm_base_url=settings.llm_base_url, llm_timeout=1.0,
                           llm_max_retries=0, llm_fallback=False)
    good = Reply("At least 59 Tomahawk missiles were fired [1].")
    with TestClient(create_app(settings)) as client, TestClient(create_app(strict)) as strict_client:
        # down: nothing listens on the LLM's port
        FAULTS.append("LLM endpoint refusing connections")
        down = client.post("/ask", json=MISSILES).json()
        assert down["mode"] == "extractive" and "59" in down["answer"]
        assert "cannot be reached" in down["notice"]
        streamed = _done(client.post("/chat", json=MISSILES))
        assert streamed["event"] == "done" and streamed["mode"] == "extractive" and "cannot be reached" in \
            streamed["notice"]
        refused = strict_client.post("/ask", json=MISSILES)
        assert refused.status_code == 503 and refused.json() == {"error": "the language model server cannot be reached"}

        with fake_llm_on(llm_port) as llm:  # back, on the same address: no restart, no reconfiguration
            llm.replies.append(good)
            back = client.post("/ask", json=MISSILES).json()
            assert back["mode"] == "llm" and back["notice"] is None and [c["n"] for c in back["citations"]] == [1]

            faults = [(Reply("too late [1]", delay=3), "did not answer in time"),
                      (Reply(status=500), "HTTP 500"), (Reply(status=429), "HTTP 429"),
                      (Reply(garbage=True), "unusable reply"), (Reply("   "), None)]
            for reply, notice in faults:
                FAULTS.append(f"LLM reply: {reply.status} delay={reply.delay} garbage={reply.garbage} "
                              f"content={reply.content!r}")
                llm.replies.append(reply)
                started = time.monotonic()
                result = client.post("/ask", json=MISSILES).json()
                assert time.monotonic() - started < 10  # bounded by QA_LLM_TIMEOUT, not by the LLM
                if notice is None:  # an empty reply is the model declining: a refusal, not an error
                    assert result["refused"] and result["mode"] == "llm"
                else:
                    assert result["mode"] == "extractive" and notice in result["notice"] and "59" in result["answer"]
                llm.replies.append(reply)
                failed = strict_client.post("/ask", json=MISSILES)
                if notice is not None:
                    assert failed.status_code == 503 and notice in failed.json()["error"]
            llm.replies.extend([Reply(status=502), good])
            FAULTS.append("LLM reply: 502 to a streamed /chat, no fallback")
            assert _done(strict_client.post("/chat", json=MISSILES))["status"] == 503  # an error event
            recovered = strict_client.post("/ask", json=MISSILES)
            assert recovered.status_code == 200 and recovered.json()["mode"] == "llm"


def teardown_module() -> None:
    print(f"\nfaults injected ({len(FAULTS)}):", *FAULTS, sep="\n  ")
