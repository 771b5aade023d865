"""Citation markers: the [n] syntax, checking a reply's markers against the passages, and refusal wording."""

from __future__ import annotations

import re
from collections.abc import Iterator

from qa.answering import Citation
from qa.retrieval import Passage

CITATION = re.compile(r"\[(\d{1,3})\]")
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


def check_citations(text: str, passages: list[Passage]) -> tuple[str, list[Citation], list[int]]:
    """Keep only [n] markers that name a given passage; return (clean text, citations, phantom numbers)."""
    phantoms: list[int] = []

    def keep(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if 1 <= n <= len(passages):
            return match.group(0)
        phantoms.append(n)
        return ""

    cleaned = CITATION.sub(keep, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    cited = sorted({int(n) for n in CITATION.findall(cleaned)})
    citations = [Citation(n, passages[n - 1]) for n in cited]
    return cleaned, citations, phantoms
