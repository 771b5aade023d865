"""The typed contract: every body the service returns, as pydantic models. The HTTP API declares them as
response models (so /openapi.json documents them), `qa ask --json` prints them, `qa eval` reads them, and
the chat page reads the same field names. Fields are only ever added, never renamed or removed.

May import: qa.answering, qa.retrieval, qa.indexing.indexer (the records it converts), pydantic.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field

from qa.answering import Answer, Citation, Disagreement
from qa.retrieval import Passage


class QuoteOut(BaseModel):
    """The exact sentence(s) an answer took from a passage; offsets index into the article's text."""

    text: str
    start: int
    end: int


class CopyOut(BaseModel):
    """Where else an article was published: a syndicated copy recognised at ingest and not indexed itself."""

    url: str
    source: str | None = Field(description="The outlet (site name, else the feed's title, else the host).")
    published: str | None


class ArticleSpan(BaseModel):
    """A stretch of an article exactly as it stands, with its offsets and the article's metadata."""

    doc_id: str
    title: str
    source: str | None
    published: str | None = Field(description="Publication date, YYYY-MM-DD, when known.")
    text: str = Field(description="The passage, character for character (article text[start:end]).")
    start: int
    end: int
    score: float

    @staticmethod
    def fields_of(p: Passage) -> dict[str, Any]:
        return {"doc_id": p.doc_id, "title": p.title, "source": p.source, "published": p.published,
                "text": p.text, "start": p.start, "end": p.end, "score": round(p.score, 4)}


class CitationOut(ArticleSpan):
    """Source [n] of an answer: the passage it cites, and the sentence(s) quoted from it."""

    n: int
    quote: QuoteOut | None = None
    also_at: list[CopyOut] = Field(default_factory=list, description="Other outlets that ran the same story.")

    @classmethod
    def of(cls, citation: Citation) -> CitationOut:
        quote = QuoteOut(**vars(citation.quote)) if citation.quote else None
        return cls(n=citation.n, quote=quote, **cls.fields_of(citation.passage))


class PassageOut(ArticleSpan):
    """A retrieved passage, best first, with the rank each retriever gave it."""

    chunk_id: str
    ranks: dict[str, int] = Field(default_factory=dict)

    @classmethod
    def of(cls, p: Passage) -> PassageOut:
        return cls(chunk_id=p.chunk_id, ranks=dict(p.ranks), **cls.fields_of(p))


class DisagreementValueOut(BaseModel):
    """What one cited source says."""

    value: str = Field(description="The value as the source writes it (a day is also given as a date).")
    n: int = Field(description="The citation [n] it is shown under.")
    source: str | None
    published: str | None


class DisagreementOut(BaseModel):
    """Cited sources giving different values for the same quantity, date, time or name."""

    about: str
    kind: Literal["quantity", "date", "time", "name"]
    values: list[DisagreementValueOut]

    @classmethod
    def of(cls, found: Disagreement) -> DisagreementOut:
        return cls(about=found.about, kind=found.kind,  # type: ignore[arg-type]
                   values=[DisagreementValueOut(**vars(v)) for v in found.values])


class DroppedOut(BaseModel):
    """A sentence of the model's answer that was not shown: it cited no passage, or its passages do not say it."""

    text: str
    reason: str
    position: int = Field(description="Its place among the model's sentences (1-based).")


def _day(published: str | None) -> date | None:
    """A stored publication date (YYYY-MM-DD) as a date; None when missing or unreadable."""
    try:
        return date.fromisoformat(published[:10]) if published else None
    except ValueError:
        return None


class AsOfOut(BaseModel):
    """The publication dates of the sources an answer cites: the answer is as of `to`."""

    start: str = Field(description="The earliest cited source's date, YYYY-MM-DD.")
    end: str = Field(description="The latest cited source's date, YYYY-MM-DD.")
    text: str = Field(description="As shown: 'as of 12 Apr 2017', or 'as of 7-9 Oct 2026' for a range.")

    @classmethod
    def of(cls, citations: list[Citation]) -> AsOfOut | None:
        days = sorted(d for d in (_day(c.passage.published) for c in citations) if d)
        if not days:
            return None
        first, last = days[0], days[-1]

        def shown(day: date, year: bool = True) -> str:
            return f"{day.day} {day.strftime('%b')}" + (f" {day.year}" if year else "")

        if first == last:
            text = shown(last)
        elif (first.year, first.month) == (last.year, last.month):
            text = f"{first.day}–{shown(last)}"
        elif first.year == last.year:
            text = f"{shown(first, year=False)} – {shown(last)}"
        else:
            text = f"{shown(first)} – {shown(last)}"
        return cls(start=first.isoformat(), end=last.isoformat(), text=f"as of {text}")


class AnswerOut(BaseModel):
    """An answer with its citations (POST /ask, the `done` event of POST /chat, `qa ask --json`)."""

    question: str
    standalone_question: str = Field(description="The question as searched (a follow-up made self-contained).")
    answer: str = Field(description="The answer text; [n] markers point to `citations`.")
    refused: bool = Field(description="True when the articles do not hold the answer.")
    refusal_reason: str | None = Field(
        None, description="Why it refused: empty_index (nothing indexed, or nothing matches the filters), "
                          "not_english (only English is understood), entity_not_found (no passage mentions a "
                          "name the question asks about), weak_evidence (no sentence answers well enough); "
                          "null when answered.")
    citations: list[CitationOut]
    passages: list[PassageOut]
    conversation_id: str
    mode: str = Field(description="The answerer that wrote the answer (extractive, llm).")
    notice: str | None = Field(None, description="Something the reader should know (fallback, removed markers).")
    timings_ms: dict[str, float]
    as_of: AsOfOut | None = Field(None, description="The date range of the cited sources (None when none is "
                                                    "dated or nothing is cited).")
    disagreements: list[DisagreementOut] = Field(
        default_factory=list, description="Values the cited sources disagree on, each with its source and date.")
    dropped: list[DroppedOut] = Field(
        default_factory=list, description="Sentences of the model's answer that were not shown, and why (LLM mode).")
    follow_ups: list[str] = Field(
        default_factory=list, description="Suggested next questions, made offline from other sentences and the "
                                          "headlines of the cited articles; each was checked to find its source "
                                          "passage in the index. Empty for a refusal.")

    @classmethod
    def of(
        cls, question: str, standalone: str, conversation_id: str, answer: Answer, passages: list[Passage],
        timings_ms: dict[str, float],
    ) -> AnswerOut:
        return cls(question=question, standalone_question=standalone, answer=answer.text, refused=answer.refused,
                   refusal_reason=answer.refusal_reason if answer.refused else None,
                   citations=[CitationOut.of(c) for c in answer.citations],
                   passages=[PassageOut.of(p) for p in passages], conversation_id=conversation_id,
                   mode=answer.mode, notice=answer.notice, timings_ms=timings_ms,
                   as_of=AsOfOut.of(answer.citations),
                   disagreements=[DisagreementOut.of(d) for d in answer.disagreements],
                   dropped=[DroppedOut(text=d.text, reason=d.reason, position=d.position) for d in answer.dropped])


class SourcesEvent(BaseModel):
    """The first server-sent event of POST /chat: what was searched and the passages found."""

    question: str
    standalone_question: str
    conversation_id: str
    passages: list[PassageOut]


class TokenEvent(BaseModel):
    """A piece of the answer text (POST /chat `token` events)."""

    text: str


class StreamError(BaseModel):
    """An `error` event of POST /chat: the stream ends after it."""

    error: str
    status: int


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    source: str | None
    published: str | None
    url: str | None
    n_chunks: int
    chars: int
    indexed_at: str


class DocumentList(BaseModel):
    documents: list[DocumentSummary]


class DocumentOut(BaseModel):
    """One cleaned article: citation offsets index into `text`."""

    doc_id: str
    title: str
    source: str | None
    published: str | None
    url: str | None
    text: str
    n_chunks: int
    indexed_at: str
    author: str | None = None
    also_at: list[CopyOut] = Field(default_factory=list, description="Syndicated copies of this article.")


class FailedFile(BaseModel):
    file: str
    error: str
    status: int = Field(422, description="422: the input cannot be used; 409: its document id already holds "
                                         "the article of another file name (delete that one first, or rename)")


class DuplicateOut(BaseModel):
    """An article not indexed because it is a syndicated copy of `of` (listed in that article's also_at)."""

    doc_id: str
    of: str


class UrlOutcomeOut(BaseModel):
    """What became of one URL of a web ingest (a feed's or sitemap's articles each get one)."""

    url: str
    status: Literal["added", "replaced", "unchanged", "duplicate", "failed"]
    doc_id: str | None = None
    of: str | None = Field(None, description="For a duplicate: the article it copies.")
    error: str | None = Field(None, description="For a failure: why, in one line.")


class IngestReportOut(BaseModel):
    """What an ingest did (POST /documents, POST /documents/ingest-path, `qa ingest --json`, a job's report)."""

    added: list[str]
    replaced: list[str]
    unchanged: list[str]
    failed: list[FailedFile]
    chunks_written: int
    chunks_total: int
    duplicate: list[DuplicateOut] = Field(default_factory=list)
    urls: list[UrlOutcomeOut] = Field(default_factory=list, description="Web ingests: one entry per URL.")
    error: str | None = Field(None, description="Set (with status 422) when no input could be used.")


class JobProgress(BaseModel):
    done: int
    total: int | None


class JobOut(BaseModel):
    """A long-running ingest (POST /documents/ingest-url answers 202 with one): poll GET /jobs/{job_id}."""

    job_id: str
    kind: str
    status: Literal["running", "done", "failed"]
    created: str
    progress: JobProgress
    report: IngestReportOut | None = None
    error: str | None = None


class DeletedOut(BaseModel):
    deleted: str


class ConversationSummary(BaseModel):
    """One of the caller's conversations (GET /conversations, PATCH /conversations/{id})."""

    id: str
    created: str = Field(description="When its first question was asked (UTC, ISO 8601).")
    title: str = Field(description="What the conversation is about: the names its first question asks about and "
                                   "the headline of the article that answered it (the question itself when it "
                                   "was not answered), unless renamed.")


class ConversationList(BaseModel):
    """The caller's conversations, newest first."""

    conversations: list[ConversationSummary]


class ConversationTurnOut(BaseModel):
    """A kept turn: the question and the answer object as it was given (null for turns stored before answer
    objects were kept, or too large to keep; `answer_text` is always there)."""

    question: str
    answer_text: str
    answer: AnswerOut | None = None
    created: str


class ConversationOut(ConversationSummary):
    """One conversation with its kept turns (the last QA_CONVERSATION_TURNS), oldest first."""

    turns: list[ConversationTurnOut]


class FeedbackOut(BaseModel):
    """A stored rating of an answer (POST /feedback)."""

    id: int
    rating: Literal["up", "down"]


class IngestProgressOut(BaseModel):
    """The ingest holding the writer lock: texts (chunks and sentences) embedded so far in its current group."""

    document: str
    done: int
    total: int
    started: float = Field(description="Unix time the ingest took the writer lock.")
    updated: float


class HealthOut(BaseModel):
    """GET /health: 200 with status ok, or 503 with status degraded and the error."""

    status: Literal["ok", "degraded"]
    error: str | None = None
    documents: int | None
    chunks: int | None
    vectors: int | None
    store: Literal["embedded", "server"]
    embed_model: str
    llm_configured: bool
    answer_mode: str
    max_question_chars: int
    ingest: IngestProgressOut | None = Field(None, description="Progress of a running ingest (any worker).")
    spans_waiting: int | None = Field(
        None, description="Sentence spans stored without a vector that this process's background fill has yet to "
        "embed (QA_SENTENCE_VECTORS=background; counted at each fill round and counted down as it stores; 0 when "
        "done); null in other modes or before the first round.")


class ErrorDetail(BaseModel):
    loc: list[str]
    msg: str


class ErrorOut(BaseModel):
    """Every error body: a one-line message (and, for invalid input, where it was)."""

    error: str
    details: list[ErrorDetail] | None = None


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as JSON-ready data (None fields kept: the contract shows them)."""
    return model.model_dump(mode="json")
