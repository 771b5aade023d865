"""Syndicated copies vs different stories: the pairs that chose the containment threshold (run with -s to see them)."""

from __future__ import annotations

import itertools

import pytest

from qa.sources.dedupe import CONTAINMENT, MIN_SHINGLES, NearDuplicates, Signature, shingles, signature
from qa.sources.extract import extract_html
from tests.web_fixtures.build_pages import pages, story

BASE = "http://news.example"
STORIES = ["bridge-reopens", "bridge-tolls", "bridge-cyclists", "bridge-first-week", "river-flood-warning",
           "flood-insurance", "flood-cleanup", "council-budget"]
TOPIC = {"bridge": "bridge", "river": "flood", "flood": "flood", "council": "council"}
EXTRA = ("Readers can send their own photographs and stories to the newsdesk, and a full gallery of the day will "
         "appear in Saturday's print edition alongside reaction from local councillors.")


def _page_text(rel: str) -> str:
    _, page = pages()[rel]
    extracted = extract_html(page.replace("{{BASE}}", BASE), f"{BASE}/{rel}")
    assert extracted is not None
    return extracted.text


def _body(name: str) -> list[str]:
    return story(name)[3]


def build_pairs() -> list[tuple[bool, str, str, str]]:
    """(is a copy, description, indexed article, new article); a description starts with its story's name."""
    ledger = _page_text("ledger/2026/03/14/harbour-bridge-reopens.html")
    tribune = _page_text("tribune/news/bridge-back-open.html")
    courier = _page_text("courier/stories/bridge-open-again")
    pairs = [
        (True, "bridge-reopens page: Ledger -> Tribune (new headline, last 2 paras cut)", ledger, tribune),
        (True, "bridge-reopens page: Ledger -> Courier (new headline, extra para)", ledger, courier),
        (True, "bridge-reopens page: Tribune -> Courier (cut, then extended)", tribune, courier),
        (True, "bridge-reopens page: Courier -> Tribune (the longer one first)", courier, tribune),
        (True, "river-flood-warning page: Ledger -> Tribune (wire edits)",
         _page_text("ledger/2026/02/09/eden-flood-warning.html"), _page_text("tribune/news/eden-towns-warned.html")),
    ]
    for name in STORIES:
        body = _body(name)
        full = "\n".join(body)
        half = max(2, len(body) // 2)
        pairs += [
            (True, f"{name}: last para cut", full, "\n".join(body[:-1])),
            (True, f"{name}: extra para", full, "\n".join([*body, EXTRA])),
            (True, f"{name}: last para cut + extra", full, "\n".join([*body[:-1], EXTRA])),
            (True, f"{name}: first half only", full, "\n".join(body[:half])),
        ]
    pairs += [
        (False, "follow-up reusing 2 background paras", "\n".join(_body("bridge-reopens")),
         "\n".join(_body("bridge-first-week"))),
        (False, "follow-up reusing 1 background para", "\n".join(_body("river-flood-warning")),
         "\n".join(_body("flood-cleanup"))),
    ]
    for a, b in itertools.permutations(STORIES, 2):
        same_topic = TOPIC[a.split("-")[0]] == TOPIC[b.split("-")[0]]
        pairs.append((False, f"{'same topic' if same_topic else 'other topic'}: {a} vs {b}",
                      "\n".join(_body(a)), "\n".join(_body(b))))
    return pairs


PAIRS = build_pairs()


def test_threshold_separates_copies_from_different_stories() -> None:
    rows = []
    for is_copy, name, old, new in PAIRS:
        a, b = shingles(new), shingles(old)
        exact = len(a & b) / len(a)
        estimate = signature(new).containment_in(signature(old))
        rows.append((is_copy, name, exact, estimate))
    print(f"\n{'kind':9} {'pair (indexed -> new)':58} {'containment':>11} {'MinHash est.':>12}")
    for is_copy, name, exact, estimate in rows:
        print(f"{'copy' if is_copy else 'different':9} {name[:58]:58} {exact:>11.2f} {estimate:>12.2f}")
    copies = [r[3] for r in rows if r[0]]
    others = [r[3] for r in rows if not r[0]]
    print(f"copies: min {min(copies):.2f}; different stories: max {max(others):.2f}; threshold {CONTAINMENT}")
    assert min(copies) >= CONTAINMENT + 0.1, "a copy is too close to the threshold"
    assert max(others) <= CONTAINMENT - 0.15, "a different story is too close to the threshold"


@pytest.mark.parametrize(("is_copy", "name", "old", "new"), PAIRS, ids=[p[1] for p in PAIRS])
def test_lsh_index_finds_copies_and_only_copies(is_copy: bool, name: str, old: str, new: str) -> None:
    index = NearDuplicates()
    for other in STORIES:  # the other stories are indexed too, so the right one must be picked
        text = "\n".join(_body(other))
        if text not in (old, new) and not name.startswith((f"{other}:", f"{other} page:")):
            index.add(f"story-{other}", signature(text))
    index.add("kept", signature(old))
    found = index.match(signature(new))
    if is_copy:
        assert found is not None and found[0] == "kept", name
    else:
        assert found is None or found[0] != "kept", name


def test_signature_round_trips_and_excludes_itself() -> None:
    text = "\n".join(_body("bridge-tolls"))
    sig = signature(text)
    again = Signature.from_bytes(sig.to_bytes())
    assert again.size == sig.size and again.containment_in(sig) == pytest.approx(1.0)
    index = NearDuplicates()
    index.add("tolls", sig)
    assert index.match(again, exclude="tolls") is None  # an edited version of the same page is not its copy
    assert index.match(again) == ("tolls", pytest.approx(1.0))
    index.remove("tolls")
    assert index.match(again) is None and len(index) == 0


def test_short_texts_are_never_copies() -> None:
    index = NearDuplicates()
    text = "Photograph: the bridge at dawn on Saturday, seen from the north bank."
    index.add("a", signature(text))
    assert signature(text).size < MIN_SHINGLES
    assert index.match(signature(text)) is None
