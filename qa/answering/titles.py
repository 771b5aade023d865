"""A conversation's title, made offline when its first answer is given: what the question asks about (its
names) and the headline of the article that answered it, so the list of conversations says what each is
about rather than how its first question began."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from qa.answering.question import entities_of

if TYPE_CHECKING:
    from qa.answering import Answer

MAX_NAMES = 3  # names of the question put before the headline
MAX_CHARS = 160  # the page shows two lines and the whole title as a tooltip; the store keeps 200


def _one_line(text: str) -> str:
    return " ".join(text.split())


def conversation_title(question: str, answer: Answer) -> str:
    """"Shayrat Airbase: Tillerson visits Moscow as tensions spike after US strike on Syria base": the names the
    question asks about that the headline of the first cited article does not already say, then that headline.
    A refusal cites nothing, so its conversation is titled by the question itself."""
    question = _one_line(question)
    headline = ""
    if not answer.refused:
        headline = next((_one_line(c.passage.title) for c in answer.citations if c.passage.title.strip()), "")
    if not headline:
        return question[:MAX_CHARS]
    names = [n for n in entities_of(question)
             if not re.search(rf"\b{re.escape(n)}\b", headline, re.IGNORECASE)][:MAX_NAMES]
    title = f"{', '.join(names)}: {headline}" if names else headline
    return title if len(title) <= MAX_CHARS else title[: MAX_CHARS - 1].rstrip() + "…"
