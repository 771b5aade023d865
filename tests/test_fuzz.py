"""Property-based fuzz of the whole HTTP API from its own OpenAPI schema (schemathesis): schema-valid and
schema-violating requests to every operation, against the real app on a real index. Zero 5xx, and every
response matches what the schema documents (status codes, content types, bodies, Allow headers).

Bounded: FUZZ_EXAMPLES per operation and generation mode, derandomised so a CI run is reproducible
(`QA_FUZZ_EXAMPLES=500 pytest tests/test_fuzz.py` for a longer hunt with the same checks).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import allow_header_conformance, negative_data_rejection, positive_data_acceptance

from api.app import create_app
from tests.conftest import make_settings
from tests.reliability_support import assert_consistent
from tests.support import SEEDS

FUZZ_EXAMPLES = int(os.environ.get("QA_FUZZ_EXAMPLES", "30"))
WORK = Path(tempfile.gettempdir()) / f"qa-fuzz-{os.getpid()}"  # created by the fixture, not at import
SETTINGS = make_settings(WORK / "data", ingest_root=WORK / "root", max_upload_bytes=20_000)
APP = create_app(SETTINGS)

schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP  # requests go to the app in-process (ASGI); its lifespan builds the pipeline on first use
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=FUZZ_EXAMPLES, deterministic=True,
    database="none",
)
# Schema-valid input may still be refused with the documented 400 for what a schema cannot say: a question
# that is blank once control characters are stripped, longer than QA_MAX_QUESTION_CHARS, a date range that
# ends before it starts, a path that does not exist under QA_INGEST_ROOT.
schema.config.checks.positive_data_acceptance.expected_statuses = ["2xx", "400", "401", "403", "404", "409", "413"]
# A body over the size limit is refused with 413 before it is parsed: a rejection too.
schema.config.checks.negative_data_rejection.expected_statuses = [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429",
]
CALLS: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def fuzz_data(seeded_dir: Path) -> Iterator[Path]:
    """The app's data folder: a copy of the seeded index, plus a small ingest root with two articles."""
    shutil.rmtree(WORK, ignore_errors=True)
    shutil.copytree(seeded_dir, WORK / "data")
    (WORK / "root").mkdir()
    for name in ("000_9a3c7f577db017be.txt", "manifest.json"):
        shutil.copy(SEEDS / name, WORK / "root" / name)
    yield WORK / "data"
    shutil.rmtree(WORK, ignore_errors=True)


@schema.parametrize()
def test_api_fuzz(case: schemathesis.Case) -> None:
    operation = case.operation.label
    excluded = []
    if operation == "POST /documents":  # the schema cannot say "a non-empty UTF-8 text file" (a 422 answers
        excluded.append(positive_data_acceptance)  # that), and multipart parts are bytes whatever "type" the
        excluded.append(negative_data_rejection)  # negative mode meant: a part reading "null" is a fine file
    # GET/DELETE /documents/{doc_id} serve these URLs too, so a 405 truthfully lists them in Allow (no schema can)
    if operation in ("POST /documents/ingest-path", "POST /documents/ingest-url"):
        excluded.append(allow_header_conformance)
    response = case.call_and_validate(excluded_checks=excluded)
    CALLS[operation] = CALLS.get(operation, 0) + 1
    assert response.status_code < 500, response.text


def test_zero_5xx_and_index_intact() -> None:
    """Runs after the fuzz: it reached every operation, and what it wrote left the stores consistent."""
    from qa.service import build_service

    if not CALLS:
        pytest.skip("runs after test_api_fuzz, in the same session")
    print(f"\nfuzz requests: {sum(CALLS.values())}", *[f"{k}: {v}" for k, v in sorted(CALLS.items())], sep="\n  ")
    assert len(CALLS) == len([1 for path in APP.openapi()["paths"].values() for _ in path])
    assert_consistent(build_service(SETTINGS))
