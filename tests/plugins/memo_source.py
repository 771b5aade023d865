"""A source type a reviewer would add: `memo:Title|text` targets on the command line become articles. What it
takes is this module and one line in qa.sources.SOURCE_TYPES (tests/test_architecture.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from qa.config import Settings
from qa.errors import BadDocument, BadRequest
from qa.sources import Article, LocalSource


@dataclass
class MemoSource(LocalSource):
    targets: list[str]
    name: str = "memo"

    def check(self) -> None:
        if any("|" not in t for t in self.targets):
            raise BadRequest("a memo is memo:Title|text")

    def count(self) -> int:
        return len(self.targets)

    def articles(self) -> Iterator[Article | BadDocument]:
        for target in self.targets:
            title, text = target.removeprefix("memo:").split("|", 1)
            yield Article(doc_id=f"memo-{title.lower()}", title=title, text=text)


def claims(target: str) -> bool:
    return target.startswith("memo:")


def open_memos(targets: Sequence[str], settings: Settings) -> MemoSource:
    return MemoSource(list(targets))
