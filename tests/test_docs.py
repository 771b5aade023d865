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


DOCS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")])
TOP = "qa|api|bench|eval|tests|scripts|docs|seeds"
PATH = re.compile(rf"(?<![\w/.\-~$])(?:{TOP})/[\w.\-/]*")
MODULE = re.compile(r"(?<![\w/.\-])(?:qa|api|bench|eval|tests)(?:\.[A-Za-z_]\w*)+")


def missing_module(dotted: str) -> str | None:
    """Why `a.b.c` names nothing in the repository (a module, a package, or a name its module defines), or None."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:n])
        source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if source.is_file():
            rest = parts[n:]
            name = re.escape(rest[0]) if rest else ""
            defined = rf"^\s*(?:async def|def|class)\s+{name}\b|^\s*{name}\s*[:=]|^(?:from|import)\b[^\n]*\b{name}\b"
            if rest and not re.search(defined, source.read_text("utf-8"), re.M):
                return f"{'.'.join(parts[:n])} defines no {rest[0]}"
            return None
    return "no such module"


def named_in(text: str) -> tuple[set[str], set[str]]:
    """The repository paths and Python modules a document names (a path that goes on with a placeholder or a glob,
    `eval/runs/<timestamp>/`, `bench/results/ingest-*.json`, is not a name)."""
    paths = {m.group().rstrip(".-") for m in PATH.finditer(text) if text[m.end():m.end() + 1] not in ("<", "*", "{")}
    return paths, set(MODULE.findall(text))


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_docs_name_only_files_and_modules_that_exist() -> None:
    assert (ROOT / "CHANGELOG.md").is_file() and (ROOT / "docs" / "decisions").is_dir()
    wrong: list[str] = []
    for doc in DOCS:
        text = doc.read_text("utf-8")
        paths, modules = named_in(text)
        links = {link for link in LINK.findall(text) if "://" not in link and not link.startswith("mailto:")}
        wrong += [f"{doc.relative_to(ROOT)}: link {link}" for link in sorted(links) if not (doc.parent / link).exists()]
        wrong += [f"{doc.relative_to(ROOT)}: {p}" for p in sorted(paths) if not (ROOT / p).exists()]
        wrong += [f"{doc.relative_to(ROOT)}: {m} ({why})" for m in sorted(modules) if (why := missing_module(m))]
    assert not wrong, "docs name files or modules that do not exist:\n" + "\n".join(wrong)


def test_the_docs_check_catches_a_stale_name() -> None:
    paths, modules = named_in("See `qa/index.py`, tests/test_api.py::test_x, `python -m bench.ingest` and qa.docstore; "
                               "eval/runs/<timestamp>/ and bench/results/ingest-*.json are patterns.")
    assert paths == {"qa/index.py", "tests/test_api.py"} and modules == {"bench.ingest", "qa.docstore"}
    assert not (ROOT / "qa/index.py").exists() and missing_module("qa.docstore") == "qa defines no docstore"
    assert missing_module("bench.ingest") is None and missing_module("qa.retrieval.RERANKERS") is None
    assert missing_module("qa.nothing.here") == "qa defines no nothing" and missing_module("x.y") == "no such module"
    assert LINK.findall("[a](decisions/0001-x.md) [b](#anchor) [c](benchmarks.md#scale) [d](https://x.org/a)") == [
        "decisions/0001-x.md", "benchmarks.md", "https://x.org/a"]
    assert missing_module("qa.retrieval.NO_SUCH_NAME") == "qa.retrieval defines no NO_SUCH_NAME"
