"""The question, parsed once into what every answering step reads: its form, the kind of answer it expects,
the names and predicate it asks about, its parts, and the conversation it follows (a field, not text glued
onto it). The extractive answerer, the refusal policy and the LLM answerer all read this object."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qa.answering.answer_types import Expectation
from qa.answering.citations import last_sentence
from qa.answering.news import (
    about_topic,
    asks_latest,
    describer_terms,
    question_form,
    resolve_what_about,
    split_parts,
)
from qa.lexicon import CALENDAR_WORDS, SEQUENCE_CUE_PATTERN, predicate_terms, question_terms
from qa.text.language import language_of

_SEQUENCE = re.compile(SEQUENCE_CUE_PATTERN, re.I)
_TOKEN = re.compile(r"[\w’'.-]+")
_NOT_ENTITY = CALENDAR_WORDS | {"i"}


def entities_of(sentence: str) -> tuple[str, ...]:
    """The names a question asks about: runs of capitalised words past its first word ("How much did *Time
    Warner*'s profit jump?" -> ("Time Warner",)); months, weekdays and "I" are not names."""
    found: list[str] = []
    run: list[str] = []
    for position, token in enumerate(_TOKEN.findall(sentence)):
        word = token.strip(".'’-").removesuffix("’s").removesuffix("'s")
        if position > 0 and word[:1].isupper() and word.lower() not in _NOT_ENTITY:
            run.append(word)
            if token.endswith(("’s", "'s")):
                found.append(" ".join(run))
                run = []
            continue
        if run:
            found.append(" ".join(run))
            run = []
    if run:
        found.append(" ".join(run))
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class Question:
    """A question as asked (`text`, the standalone form searched), the sentence actually asked (`asked`) and
    what came before it in the conversation (`context`), with everything read from them once."""

    text: str
    asked: str
    context: str
    form: str  # "yes-no", "why", "description" or "other"
    expect: Expectation
    entities: tuple[str, ...]
    predicate: list[set[str]]
    terms: frozenset[str]  # content terms of the whole text (context included)
    follow_up_terms: frozenset[str]  # the asked sentence's own terms, when there is a context
    topic: frozenset[str]  # "What about Iran?" -> the terms of Iran
    describer: frozenset[str]  # "How did Lavrov describe ..." -> the terms of Lavrov
    parts: tuple[str, ...]
    latest: bool  # the answer may change from report to report: the latest leads
    sequence: bool  # "What did Russia do in response?": not what the previous turn quoted
    language: str | None = field(default=None)  # None: English

    @classmethod
    def parse(cls, text: str, asked: str | None = None) -> Question:
        """Read a standalone question (a follow-up carries the earlier turn before its last sentence); `asked`
        names one part of a multi-part question."""
        text = text.strip()
        last = last_sentence(text)
        context = text[: len(text) - len(last)].strip()
        asked = (asked or resolve_what_about(text)).strip()
        form = question_form(asked)
        return cls(
            text=text, asked=asked, context=context, form=form, expect=Expectation.of(asked),
            entities=entities_of(asked),
            predicate=predicate_terms(asked) if form in ("why", "yes-no") else [],
            terms=frozenset(question_terms(text)),
            follow_up_terms=frozenset(question_terms(last)) if context else frozenset(),
            topic=frozenset(about_topic(text)),
            describer=frozenset(describer_terms(asked)) if form == "description" else frozenset(),
            parts=tuple(split_parts(asked)), latest=asks_latest(asked), sequence=bool(_SEQUENCE.search(asked)),
            language=language_of(asked),
        )

    @classmethod
    def of(cls, question: str | Question) -> Question:
        return question if isinstance(question, Question) else cls.parse(question)

    def part(self, asked: str) -> Question:
        """One part of a multi-part question, read in the same conversation."""
        return Question.parse(f"{self.context} {asked}".strip(), asked)

    @property
    def must_match(self) -> bool:
        """Whether only a sentence holding the asked kind of answer may answer (else it only ranks lower)."""
        return (self.expect.strict or self.form in ("why", "yes-no") or bool(self.topic)
                or bool(self.describer))
