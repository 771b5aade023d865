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


def test_scripts_test_runs_each_tier_by_its_marker() -> None:
    script = (ROOT / "scripts" / "test").read_text("utf-8")
    for tier in TIERS:
        assert tier in script
    assert '-m "$tier"' in script
    result = subprocess.run(["bash", "-n", str(ROOT / "scripts" / "test")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
