"""Shared fixtures: a real index of the seed articles (embedded Chroma, real embedder), built once."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qa.config import Settings
from qa.service import Service, build_service
from tests.fake_llm import FakeLLM
from tests.support import CHROMIUM, SEEDS, api_server


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


@pytest.fixture(scope="session")
def seeded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the seeds, indexed once for the session (copy it before mutating)."""
    data_dir = tmp_path_factory.mktemp("seeded") / "data"
    pipeline = build_service(make_settings(data_dir))
    report = pipeline.ingest_paths([SEEDS])
    assert len(report.added) == 5 and not report.failed
    # the default (QA_SENTENCE_VECTORS=background) has `qa serve` store the sentence vectors after an ingest:
    # done here once, so a server on a copy of this folder finds nothing to fill
    assert pipeline.fill is not None and pipeline.fill.run() > 0
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
