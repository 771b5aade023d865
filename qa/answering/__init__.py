"""Stage 5, answering: turn a question and its passages into an answer that cites them as [n].

Answerers are registered by name (ANSWERERS) and tried in an explicit fallback chain built from the
settings, e.g. llm -> extractive: when one is unavailable (AnswererUnavailable) the next answers, with a
notice. An answerer that needs data computed at ingest declares it as `enrichments` (the extractive
answerer's sentence vectors), which the service hands to the indexer.

May import: qa.retrieval (Passage, Retrieval: each passage comes with its sentence spans, so answering reads
no store), qa.store (protocol types), qa.embedding, qa.lexicon, qa.text, qa.errors, qa.config, qa.registry.
Adding an answerer = a module with a `build(context, **options)` factory, and a line in ANSWERERS (its options
come from QA_PART_OPTIONS["answerer:<name>"], qa.registry).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from qa.config import Settings
from qa.embedding import Embedder
from qa.errors import AnswererUnavailable
from qa.indexing import Enrichment
from qa.registry import Registry
from qa.retrieval import Passage, Retrieval
from qa.store import DocumentStore

if TYPE_CHECKING:
    from qa.answering.question import Question
    from qa.answering.refusal import RefusalPolicy


@dataclass
class Quote:
    """The exact sentence(s) an answer took from a passage, with offsets in the article."""

    text: str
    start: int
    end: int


@dataclass
class Citation:
    """A numbered source: the passage exactly as it stands in the article, and what was quoted from it."""

    n: int
    passage: Passage
    quote: Quote | None = None


@dataclass
class DisagreementValue:
    """What one source says: the value as written, the citation it is shown under, its outlet and date."""

    value: str
    n: int
    source: str | None
    published: str | None


@dataclass
class Disagreement:
    """Cited sources that give different values for the same quantity, date, time or name."""

    about: str
    kind: str  # quantity, date, time, name
    values: list[DisagreementValue]


@dataclass
class Answer:
    """The answer text, whether it is a refusal, and the citations its [n] markers point to."""

    text: str
    refused: bool
    citations: list[Citation] = field(default_factory=list)
    notice: str | None = None
    confidence: float | None = None
    mode: str = ""  # the answerer that wrote it (set by the chain)
    disagreements: list[Disagreement] = field(default_factory=list)
    refusal_reason: str | None = None  # qa.answering.refusal.REASONS; None when answered
    dropped: list[Any] = field(default_factory=list)  # qa.answering.grounding.Dropped: sentences not shown


class Answerer(Protocol):
    """Turns a question and its retrieved passages into an Answer, whole or as a token stream."""

    name: str
    enrichments: Sequence[Enrichment]

    def answer(self, question: Question, retrieval: Retrieval) -> Answer: ...

    def stream(self, question: Question, retrieval: Retrieval) -> Iterator[str | Answer]:
        """Text tokens, then the finished Answer last."""
        ...


@dataclass
class AnswerContext:
    """What answerer factories may use."""

    settings: Settings
    docs: DocumentStore
    embedder: Embedder
    llm: Any = None  # a qa.answering.llm.ChatModel when an LLM is configured
    policy: Any = None  # the qa.answering.refusal.RefusalPolicy every answerer shares (None: from settings)

    def refusal_policy(self) -> RefusalPolicy:
        from qa.answering.refusal import RefusalPolicy

        return self.policy or RefusalPolicy.of(self.settings.refusal_threshold)


# name -> "module:factory"; the factory takes an AnswerContext (the settings, the stores, the model client) and
# the answerer's QA_PART_OPTIONS as keyword arguments.
ANSWERERS = Registry("answerer", {
    "extractive": "qa.answering.extractive:build",
    "llm": "qa.answering.llm:build",
})


def chain_names(settings: Settings) -> list[str]:
    """The fallback chain the settings ask for: llm -> extractive (or llm alone without QA_LLM_FALLBACK)."""
    if not settings.use_llm:
        return ["extractive"]
    return ["llm", "extractive"] if settings.llm_fallback else ["llm"]


def build_answerer(name: str, context: AnswerContext) -> Answerer:
    """The answerer registered under `name`, built from the context and its options."""
    answerer: Answerer = ANSWERERS.build(name, context.settings, context)
    return answerer


class AnswerChain:
    """Answerers tried in order: an unavailable one hands over to the next, whose answer says so. The question
    is parsed once here, and the refusal policy's checks that need no evidence (empty index, not English, an
    asked name no passage mentions) are made once for every answerer."""

    def __init__(self, answerers: Sequence[Answerer], policy: RefusalPolicy | None = None) -> None:
        from qa.answering.refusal import RefusalPolicy

        if not answerers:
            raise ValueError("an answer chain needs at least one answerer")
        self.answerers = list(answerers)
        self.policy = policy or RefusalPolicy()

    def _refused(self, question: Question, retrieval: Retrieval) -> Answer | None:
        refusal = self.policy.before(question, retrieval, retrieval.filtered)
        if refusal is None:
            return None
        answer = Answer(refusal.message, True, refusal_reason=refusal.reason)
        answer.mode = self.answerers[0].name
        return answer

    @property
    def name(self) -> str:
        return self.answerers[0].name

    @property
    def enrichments(self) -> list[Enrichment]:
        found: dict[str, Enrichment] = {}
        for answerer in self.answerers:
            for enrichment in answerer.enrichments:
                found.setdefault(enrichment.kind, enrichment)
        return list(found.values())

    def get(self, name: str) -> Answerer | None:
        return next((a for a in self.answerers if a.name == name), None)

    def answer(self, question: str | Question, retrieval: Retrieval) -> Answer:
        from qa.answering.question import Question

        question = Question.of(question)
        refused = self._refused(question, retrieval)
        if refused is not None:
            return refused
        failure: AnswererUnavailable | None = None
        for answerer in self.answerers:
            try:
                answer = answerer.answer(question, retrieval)
            except AnswererUnavailable as error:
                failure = failure or error
                continue
            return self._finish(answer, answerer, failure)
        assert failure is not None
        raise failure

    def stream(self, question: str | Question, retrieval: Retrieval) -> Iterator[str | Answer]:
        """Tokens, then the Answer. The tokens are a draft: when the answerer that sent them fails (a deadline,
        an answer its citations do not support), the next one's whole answer is the Answer."""
        from qa.answering.citations import tokens_of
        from qa.answering.question import Question

        question = Question.of(question)
        refused = self._refused(question, retrieval)
        if refused is not None:
            yield from tokens_of(refused.text)
            yield refused
            return
        failure: AnswererUnavailable | None = None
        sent = False
        for answerer in self.answerers:
            try:
                if sent:  # the reader has a draft already: the fallback's answer comes whole, in `done`
                    yield self._finish(answerer.answer(question, retrieval), answerer, failure)
                    return
                for item in answerer.stream(question, retrieval):
                    if isinstance(item, Answer):
                        yield self._finish(item, answerer, failure)
                        return
                    sent = True
                    yield item
            except AnswererUnavailable as error:
                failure = failure or error
        assert failure is not None
        raise failure

    @staticmethod
    def _finish(answer: Answer, answerer: Answerer, failure: AnswererUnavailable | None) -> Answer:
        answer.mode = answerer.name
        if failure is not None and not answer.dropped:
            answer.dropped = list(getattr(failure, "dropped", []))
        if failure is not None:
            fallback = f"{failure} — showing an {answerer.name} answer from the articles instead."
            answer.notice = f"{fallback} {answer.notice}" if answer.notice else fallback
        return answer

