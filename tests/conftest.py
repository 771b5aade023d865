"""Shared fixtures: a real index of the seed articles (embedded Chroma, real embedder), built once; and the
tier of every test module (`scripts/test unit|integration|system`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from qa.config import Settings
from qa.service import Service, build_service
from qa.store.locks import FileLock
from tests.fake_llm import FakeLLM
from tests.support import CHROMIUM, SEEDS, api_server

# Every test module in exactly one tier (tests/test_tiers.py holds this list to the files on disk).
# unit: no server, no index build, no browser (seconds). integration: the seeded index, the app in process or
# one `qa serve`, scripted LLM and web servers on 127.0.0.1, CLI subprocesses. system: browsers, PostgreSQL,
# docker-compose, `kill -9` and crash audits, `chroma run` server mode, faults and load.
TIERS: dict[str, frozenset[str]] = {
    "unit": frozenset({
        "test_answer_types", "test_dedupe", "test_docs", "test_documents", "test_entities", "test_eval_data",
        "test_eval_metrics", "test_extraction", "test_filters", "test_grounding", "test_rules", "test_store_plans",
        "test_store_upgrade", "test_tiers",
    }),
    "integration": frozenset({
        "test_answers", "test_api", "test_architecture", "test_bad_input", "test_chat", "test_chat_edits", "test_cli",
        "test_conversations_api", "test_diversity", "test_eval_run", "test_fuzz", "test_index", "test_llm",
        "test_llm_grounded", "test_news_answers", "test_ownership", "test_reliability", "test_retrieval",
        "test_span_vectors", "test_web_ingest", "test_web_sources",
    }),
    "system": frozenset({
        "test_browser", "test_chat_app", "test_compose", "test_concurrency", "test_crash", "test_faults",
        "test_hostile", "test_postgres", "test_security", "test_server_mode", "test_web_browser",
    }),
}


def tier_of(module: str) -> list[str]:
    """The tiers a test module is listed in (exactly one, for a module on disk)."""
    return [tier for tier, modules in TIERS.items() if module in modules]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With `-m <tier>`, other tiers' modules are not even imported (importing them all costs ~10 s)."""
    tier = config.getoption("markexpr", "")
    if tier in TIERS and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return collection_path.stem not in TIERS[tier] or None
    return None


FIRST = {"system": 0, "integration": 1, "unit": 2}


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark each test with its module's tier as it is collected, so `-m unit` (or integration, system) selects a
    tier (`-m` deselects in pytest_collection_modifyitems, before the hook below)."""
    for tier in tier_of(item.path.stem):
        item.add_marker(getattr(pytest.mark, tier))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slow tiers' modules first (a module's own order kept), so with `-n 2 --dist loadfile
    --no-loadscope-reorder` the last modules a worker picks up are short ones instead of the longest."""
    items.sort(key=lambda item: min((FIRST[t] for t in tier_of(item.path.stem)), default=1))


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings isolated from the developer's environment (.env, QA_*, OPENAI_API_KEY)."""
    values: dict[str, object] = {"data_dir": data_dir, "chroma_url": None, "api_key": None,
                                 "llm_base_url": None, "openai_api_key": None}
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    """pytest-playwright launches Debian's Chromium instead of a downloaded browser."""
    return {
        "executable_path": str(CHROMIUM),
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"],
    }


def _index_seeds(data_dir: Path) -> None:
    pipeline = build_service(make_settings(data_dir))
    report = pipeline.ingest_paths([SEEDS])
    assert len(report.added) == 5 and not report.failed
    # the default (QA_SENTENCE_VECTORS=background) has `qa serve` store the sentence vectors after an ingest:
    # done here once, so a server on a copy of this folder finds nothing to fill
    assert pipeline.fill is not None and pipeline.fill.run() > 0


@pytest.fixture(scope="session")
def seeded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the seeds, indexed once for the session (copy it before mutating). Under
    pytest-xdist the first worker indexes them once for the run and every worker takes a copy."""
    data_dir = tmp_path_factory.mktemp("seeded") / "data"
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        _index_seeds(data_dir)
        return data_dir
    shared = tmp_path_factory.getbasetemp().parent / "seeded-shared"  # this run's folder, shared by its workers
    with FileLock(shared.with_name("seeded-shared.lock")).hold():
        if not (shared / "indexed").exists():
            _index_seeds(shared / "data")
            (shared / "indexed").touch()
    shutil.copytree(shared / "data", data_dir)
    return data_dir


@pytest.fixture(scope="session")
def pipeline(seeded_dir: Path) -> Service:
    """A read-only pipeline over the seeds (tests must not ingest or delete through it)."""
    return build_service(make_settings(seeded_dir))


@pytest.fixture
def copy_seeded(seeded_dir: Path, tmp_path: Path) -> Callable[..., Service]:
    """A private, mutable copy of the seeded index: call with setting overrides to get a pipeline."""
    data_dir = tmp_path / "data"
    shutil.copytree(seeded_dir, data_dir)

    def make(**overrides: object) -> Service:
        return build_service(make_settings(data_dir, **overrides))

    return make


@pytest.fixture(scope="module")
def data_dir(seeded_dir: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A private copy of the seeded data folder for one module, whose tests may write to it (and see each other's
    writes: assert on what a test made itself)."""
    target = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]) / "data"
    shutil.copytree(seeded_dir, target)
    return target


@pytest.fixture(scope="module")
def seeded_app(data_dir: Path) -> Iterator[Callable[..., TestClient]]:
    """Start the HTTP app (lifespan run) on the module's seeded copy: call with setting overrides; every client
    started is closed when the module ends."""
    with ExitStack() as stack:

        def start(**overrides: object) -> TestClient:
            return stack.enter_context(TestClient(create_app(make_settings(data_dir, **overrides))))

        yield start


@dataclass
class LLMServer:
    """`qa serve` on a copy of the seeds whose answers come from a scripted OpenAI-protocol model."""

    url: str
    llm: FakeLLM
    data_dir: Path


@pytest.fixture(scope="session")
def llm_server(seeded_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """One LLM-backed server for the session (starting one costs seconds): tests queue their own replies and
    must not rely on what other tests stored in it."""
    data_dir = tmp_path_factory.mktemp("llm-server") / "data"
    shutil.copytree(seeded_dir, data_dir)
    with FakeLLM() as llm, api_server(data_dir, QA_LLM_BASE_URL=llm.url, OPENAI_API_KEY="test",
                                      QA_LLM_FALLBACK="false") as url:
        yield LLMServer(url, llm, data_dir)
