"""Audit every compiled regex that runs on article text or questions: time each one on pathological inputs
at two sizes and flag those whose time grows faster than the input (ratio well above the size ratio).

    python -m bench.regex_audit            # table of the worst input per pattern, super-linear ones first
"""

from __future__ import annotations

import importlib
import inspect
import re
import time
from collections.abc import Callable

MODULES = (
    "qa.sources.sanitize", "qa.retrieval.keyword", "qa.retrieval.fusion", "qa.answering.enrichments",
    # after issue 11
    "qa.sources.cleaning", "qa.answering.answer_types", "qa.answering.entities", "qa.answering.extractive",
    "qa.answering.citations", "qa.answering.llm", "qa.conversations.rewrite", "qa.conversations.store",
    "qa.lexicon", "qa.store.documents", "qa.indexing.chunking", "qa.service", "api.app", "api.models",
    # before it
    "qa.documents", "qa.answer_types", "qa.entities", "qa.chat", "qa.answer", "qa.keyword", "qa.pipeline",
    "qa.llm", "qa.index",
)
SMALL, LARGE = 20_000, 80_000

INPUTS: dict[str, Callable[[int], str]] = {
    "Capitalised words": lambda n: ("Zorbton " * n)[:n],
    "lower words": lambda n: ("word " * n)[:n],
    "one long word": lambda n: "a" * n,
    "digits and commas": lambda n: ("1," * n)[:n],
    "name-ish tokens": lambda n: ("Ab-c' " * n)[:n],
    "dotted words": lambda n: ("A.b " * n)[:n],
    "spaces": lambda n: "x" + " " * (n - 2) + "x",
    "words then slash": lambda n: ("Zorbton " * n)[: n - 10] + "/Reuters x",
    "how much ...": lambda n: "how much " + ("money " * n)[: n - 9],
    "which ...": lambda n: "which " + ("big " * n)[: n - 6],
    "who ... as": lambda n: "who " + ("was " * n)[: n - 8] + " as",
    "according to ...": lambda n: "according to " + ("Zorbton " * n)[: n - 13],
    "dates": lambda n: ("12 April " * n)[:n],
    "brackets": lambda n: ("[1" * n)[:n],
}


def _patterns() -> dict[str, tuple[re.Pattern[str], bool]]:
    """Every module-level compiled pattern, and whether the code only ever anchors it (.match/.fullmatch):
    those are timed with one anchored attempt, the rest with a full scan."""
    found: dict[str, tuple[re.Pattern[str], bool]] = {}
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        source = inspect.getsource(module)
        for attr, value in vars(module).items():
            if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
                uses = set(re.findall(rf"\b{re.escape(attr)}\.(\w+)\(", source))
                anchored = bool(uses) and uses <= {"match", "fullmatch"}
                found.setdefault(f"{name}.{attr}", (value, anchored))
    return found


def _time(pattern: re.Pattern[str], text: str, anchored: bool) -> float:
    """Seconds for one full scan (finditer consumed; one match() when anchored), repeated until 50 ms have
    passed to beat timer noise."""
    runs, started = 0, time.perf_counter()
    while True:
        if anchored:
            pattern.match(text)
        else:
            for _ in pattern.finditer(text):
                pass
        runs += 1
        elapsed = time.perf_counter() - started
        if elapsed > 0.05 or elapsed > 1.0 / runs:
            return elapsed / runs


def audit() -> list[tuple[str, str, float, float]]:
    rows = []
    for name, (pattern, anchored) in _patterns().items():
        worst = ("", 0.0, 0.0)
        for label, make in INPUTS.items():
            small = _time(pattern, make(SMALL), anchored)
            if small > 2.0:
                worst = max(worst, (label, small, float("inf")), key=lambda w: w[2])
                continue
            large = _time(pattern, make(LARGE), anchored)
            ratio = large / max(small, 1e-5)
            if large > 2e-4 and ratio > worst[2]:
                worst = (label, large, ratio)
        rows.append((name + (" (match)" if anchored else ""), *worst))
    rows.sort(key=lambda r: -r[3])
    return rows


def main() -> None:
    rows = audit()
    size_ratio = LARGE / SMALL
    print(f"time ratio for a {size_ratio:g}x longer input (linear ~{size_ratio:g}, quadratic ~{size_ratio ** 2:g})")
    print(f"{'pattern':<48} {'worst input':<20} {f'{LARGE} chars s':>14} {'ratio':>7}  verdict")
    for name, label, seconds, ratio in rows:
        verdict = ("SUPER-LINEAR" if ratio > 2 * size_ratio and seconds > 0.01
                   else ("linear" if label else "fast (<0.2 ms)"))
        print(f"{name:<48} {label:<20} {seconds:>14.4f} {ratio:>7.1f}  {verdict}")


if __name__ == "__main__":
    main()
