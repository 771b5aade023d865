"""Citation markers: the [n] syntax, checking a reply's markers against the passages, and refusal wording."""

from __future__ import annotations

import re
from collections.abc import Iterator

from qa.answering import Citation
from qa.retrieval import Passage

CITATION = re.compile(r"\[([0-9]{1,60})\]")  # the one spelling answers carry (after normalise_citations)
# Every other way a model writes a bracketed citation: "[2, 3]", "[2-4]", "[2][3]", "[Passage 2]", "[^2]",
# full-width "［１］", "【1】", Arabic-Indic "[٣]" (Python's \d is any Unicode decimal digit).
_ANY_CITATION = re.compile(
    r"[\[［【〔]\s*(?:(?:passages?|sources?|refs?|references?|citations?)\s*)?[#^]?\s*"
    r"(\d[\d\s,，、;；&–—-]{0,60}?|\d+(?:\s*(?:and|&)\s*\d+)+)\s*[\]］】〕]", re.I)
_NUMBER = re.compile(r"\d+")
_RANGE = re.compile(r"(\d+)\s*[–—-]\s*(\d+)")
MAX_RANGE = 10  # "[1-3]" is [1][2][3]; a wider "range" is its two ends
REFUSAL_PREFIX = "The articles don't say"


def last_sentence(question: str) -> str:
    """The question actually being asked (a conversation's standalone question ends with it)."""
    return re.split(r"(?<=[?.!])\s+", question.strip())[-1]


def refusal_text(question: str) -> str:
    """The plain statement shown when the articles hold no answer."""
    topic = last_sentence(question).rstrip("?").strip()
    return f"{REFUSAL_PREFIX} — no passage in the indexed articles answers “{topic}”."


def tokens_of(text: str) -> Iterator[str]:
    """Split an answer into word-sized stream tokens that join back to the exact text."""
    yield from re.findall(r"\S+\s*|\s+", text)


def _numbers(inner: str) -> list[int]:
    """The citation numbers inside one bracket, ranges expanded, in order, without repeats."""
    found: list[int] = []
    rest = inner
    for match in _RANGE.finditer(inner):
        first, last = int(match.group(1)), int(match.group(2))
        span = range(first, last + 1) if 0 <= last - first <= MAX_RANGE else (first, last)
        found.extend(span)
        rest = rest.replace(match.group(0), " ")
    found.extend(int(n) for n in _NUMBER.findall(rest))
    return list(dict.fromkeys(found))


def normalise_citations(text: str) -> str:
    """Rewrite every bracketed-number spelling as plain [n] markers with ASCII digits ("[2, 3]" -> "[2][3]",
    "［１］" -> "[1]", "[٣]" -> "[3]"), so one check validates them all and the page renders every one."""
    return _ANY_CITATION.sub(lambda m: "".join(f"[{n}]" for n in _numbers(m.group(1))), text)


def check_citations(text: str, passages: list[Passage]) -> tuple[str, list[Citation], list[int]]:
    """Normalise citation spellings, then keep only [n] markers that name a given passage; return (clean text,
    citations, phantom numbers)."""
    phantoms: list[int] = []
    text = normalise_citations(text)

    def keep(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if 1 <= n <= len(passages):
            return match.group(0)
        phantoms.append(n)
        return ""

    cleaned = CITATION.sub(keep, text)
    cleaned = re.sub(r"(\[[0-9]+\])(?:[ \t]*\1)+", r"\1", cleaned)  # "[1] [1]" once
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    cited = sorted({int(n) for n in CITATION.findall(cleaned)})
    citations = [Citation(n, passages[n - 1]) for n in cited]
    return cleaned, citations, phantoms
