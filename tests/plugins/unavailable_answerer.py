"""An answerer whose service is always down: the fallback chain must hand over to the next answerer."""

from __future__ import annotations

from collections.abc import Iterator

from qa.answering import Answer, AnswerContext
from qa.errors import AnswererUnavailable
from qa.retrieval import Retrieval


class DownAnswerer:
    name = "down"
    enrichments = ()

    def answer(self, question: str, retrieval: Retrieval) -> Answer:
        raise AnswererUnavailable("the down service is down")

    def stream(self, question: str, retrieval: Retrieval) -> Iterator[str | Answer]:
        raise AnswererUnavailable("the down service is down")
        yield  # pragma: no cover - makes this a generator


def build(context: AnswerContext) -> DownAnswerer:
    return DownAnswerer()
