"""Every test module is in exactly one tier, so `scripts/test unit`, `integration` and `system` together run the
whole suite (a new module left out of tests/conftest.py's TIERS would run only in the full run)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import TIERS, tier_of
from tests.support import ROOT


def test_every_module_has_exactly_one_tier() -> None:
    modules = {path.stem for path in (ROOT / "tests").glob("test_*.py")}
    wrong = {module: tier_of(module) for module in modules if len(tier_of(module)) != 1}
    assert not wrong, f"modules in no tier or in several (tests/conftest.py TIERS): {wrong}"
    listed = set().union(*TIERS.values())
    assert listed <= modules, f"TIERS names modules that do not exist: {sorted(listed - modules)}"


def test_each_test_carries_its_module_tier_as_a_marker(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("integration") is None and request.node.get_closest_marker("system") is None


class _Collected:
    """A plugin for an in-process pytest run that keeps the ids of the tests it selected."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.ids = [item.nodeid for item in session.items]


def test_a_tier_selects_its_modules_and_only_them() -> None:
    """`-m unit` keeps the unit modules' tests (markers are set before `-m` deselects) and nothing else (test_api
    is integration)."""
    collected = _Collected()
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT), "-m", "unit",
                        str(ROOT / "tests" / "test_rules.py"), str(ROOT / "tests" / "test_docs.py"),
                        str(ROOT / "tests" / "test_api.py")],
                       plugins=[collected])
    assert code == 0 and collected.ids
    assert {nodeid.split("::")[0] for nodeid in collected.ids} == {"tests/test_rules.py", "tests/test_docs.py"}


def test_scripts_test_runs_each_tier_by_its_marker() -> None:
    script = (ROOT / "scripts" / "test").read_text("utf-8")
    for tier in TIERS:
        assert tier in script
    assert '-m "$tier"' in script
    result = subprocess.run(["bash", "-n", str(ROOT / "scripts" / "test")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
