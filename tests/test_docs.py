"""The README is part of the product: every setting and endpoint must be documented there."""

from __future__ import annotations

import re
from pathlib import Path

from api.app import create_app
from api.errors import api_routes
from qa.config import Settings
from tests.conftest import make_settings
from tests.support import ROOT

README = (ROOT / "README.md").read_text("utf-8")


def env_name(field: str) -> str:
    return "OPENAI_API_KEY" if field == "openai_api_key" else f"QA_{field.upper()}"


def test_every_setting_is_in_the_configuration_table() -> None:
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, re.M))
    expected = {env_name(name) for name in Settings.model_fields}
    assert expected == documented, f"missing: {expected - documented}, stale: {documented - expected}"


def test_every_endpoint_is_documented(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    routes = {(m, r.path) for r in api_routes(app.routes) if r.include_in_schema for m in r.methods - {"HEAD"}}
    assert len(routes) >= 15  # the routers' routes are found (an included router is one route in newer FastAPI)
    for method, path in routes:
        assert f"`{method} {path}`" in README, f"{method} {path} is not in the README"


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert "scripts/serve" in first_block and "scripts/test" in first_block
    assert (ROOT / "scripts/serve").stat().st_mode & 0o111 and (ROOT / "scripts/test").stat().st_mode & 0o111
    assert "scripts/test" in (ROOT / ".ci/run").read_text()
