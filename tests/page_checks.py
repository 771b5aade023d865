"""Checks the browser tests share: axe-core (from the npm registry, installed in tests/js/) run in the page."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from tests.support import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Page

AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"


def axe(page: Page, state: str) -> None:
    """No serious or critical axe-core violation in this state (axe runs through the DevTools protocol, so the
    page's CSP does not block it)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm ci` in tests/js")
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text("utf-8") + "\n;true")
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})"
                           ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
                           " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))")
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe violations while {state}: {json.dumps(bad, indent=1)}"
