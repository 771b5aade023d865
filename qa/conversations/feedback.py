"""Readers' ratings of answers, kept beside the conversations (qa.db), and their export as eval items."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import delete, func, select

from qa.conversations.store import STORED_CHARS, bounded
from qa.db import Database
from qa.db.schema import feedback
from qa.errors import QuotaReached

NOTE_CHARS = 2000
EVIDENCE_QUOTES = 10  # a rating keeps at most this many of the answer's cited quotes...
QUOTE_CHARS = 1000  # ...each cut to this (a quote is a sentence or two of a cited passage)
DOC_IDS = 20


@dataclass(frozen=True)
class Feedback:
    """One thumbs up or down on an answer, with what was asked, answered and cited."""

    rating: str  # "up" or "down"
    question: str
    answer: str = ""
    refused: bool = False
    note: str | None = None
    conversation_id: str | None = None
    client: str = ""
    evidence: tuple[str, ...] = field(default_factory=tuple)  # the quotes the answer cited
    doc_ids: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class StoredFeedback:
    """A kept rating as `qa feedback export` reads it (fields bounded as stored_fields() kept them)."""

    id: int
    rating: str
    question: str
    answer: str
    refused: bool
    note: str | None
    conversation_id: str | None
    client: str
    evidence: list[str]
    doc_ids: list[str]
    created: str


def stored_fields(item: Feedback) -> tuple[str, str, str, int, str | None, str | None, str, str, str]:
    """The row a rating is kept as, each field bounded: question and answer as a conversation turn's, the note to
    NOTE_CHARS, the evidence to the first EVIDENCE_QUOTES cited quotes (JSON as UTF-8, not \\u escapes)."""
    note = (item.note or "").strip()[:NOTE_CHARS] or None
    evidence = [bounded(quote, QUOTE_CHARS) for quote in item.evidence[:EVIDENCE_QUOTES]]
    doc_ids = [bounded(doc_id, 300) for doc_id in item.doc_ids[:DOC_IDS]]
    return (item.rating, bounded(item.question, STORED_CHARS), bounded(item.answer, STORED_CHARS), int(item.refused),
            note, item.conversation_id, item.client, json.dumps(evidence, ensure_ascii=False),
            json.dumps(doc_ids, ensure_ascii=False))


def check_room(kept: int, limit: int) -> None:
    """Refuse a new rating when `limit` (QA_MAX_FEEDBACK; 0: none) are kept already."""
    if limit and kept >= limit:
        raise QuotaReached(f"no more ratings can be kept now (the service keeps at most {limit}); nothing was saved")


class Feedbacks(Protocol):
    """Where ratings are kept (FeedbackStore)."""

    def add(self, item: Feedback) -> int: ...
    def all(self) -> list[StoredFeedback]: ...


class FeedbackStore:
    """The `feedback` table beside the conversations (the same SQLite file, or PostgreSQL): every process's
    ratings in one place, exported by `qa feedback export`."""

    def __init__(self, database: Database, limit: int = 0) -> None:
        """`limit`: the most ratings kept (QA_MAX_FEEDBACK; 0: no limit); a client re-rating an answer is not new."""
        self.db = database
        self.limit = limit

    def add(self, item: Feedback) -> int:
        """Store a rating; returns its id. A client's new rating of the same answer replaces its earlier one (the
        page saves the thumb at once and the note after it): one row per reader and answer."""
        row = stored_fields(item)
        with self.db.write() as conn:
            if item.client:
                conn.execute(delete(feedback).where(
                    feedback.c.client == item.client, feedback.c.question == row[1], feedback.c.answer == row[2],
                    func.coalesce(feedback.c.conversation_id, "") == (item.conversation_id or "")))
            if self.limit:  # after the replaced rating is gone; a raise rolls that back
                check_room(conn.execute(select(func.count()).select_from(feedback)).scalar_one(), self.limit)
            names = ("rating", "question", "answer", "refused", "note", "conversation_id", "client", "evidence",
                     "doc_ids")
            return int(conn.execute(feedback.insert().values(dict(zip(names, row, strict=True)))
                                    .returning(feedback.c.id)).scalar_one())

    def all(self) -> list[StoredFeedback]:
        """Every kept rating, oldest first."""
        columns = [c for c in feedback.c if c.name != "created"]
        with self.db.read() as conn:
            rows = conn.execute(select(*columns, self.db.iso_time(feedback.c.created).label("created"))
                                .order_by(feedback.c.id)).all()
        return [StoredFeedback(**{**r._mapping, "refused": bool(r.refused), "evidence": json.loads(r.evidence),
                                  "doc_ids": json.loads(r.doc_ids)}) for r in rows]


def as_eval_items(rows: list[StoredFeedback]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(eval items, items to review) in eval/data's questions.jsonl format.

    A thumbs-up on an answer becomes an answerable item whose evidence is what the answer quoted; a thumbs-up
    on a refusal an unanswerable one. A thumbs-down says the answer was wrong but not what is right, so it
    goes to the review list for a person to write the gold answer and evidence."""
    items, review = [], []
    for row in rows:
        item: dict[str, Any] = {"id": f"fb{row.id:04d}", "question": row.question,
                                "kind": f"feedback-{row.rating}", "rated_answer": row.answer,
                                "note": row.note, "created": row.created}
        if row.rating == "up" and row.refused:
            items.append({**item, "answerable": False})
        elif row.rating == "up" and row.evidence:
            items.append({**item, "answerable": True, "evidence": row.evidence, "doc_ids": row.doc_ids})
        else:
            review.append({**item, "cited_evidence": row.evidence, "cited_doc_ids": row.doc_ids})
    return items, review


def export(rows: list[StoredFeedback], folder: Path) -> tuple[int, int]:
    """Write folder/questions.jsonl (loadable by `qa eval --data folder`) and folder/review.jsonl."""
    items, review = as_eval_items(rows)
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in (("questions.jsonl", items), ("review.jsonl", review)):
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        (folder / name).write_text(text, "utf-8")
    return len(items), len(review)
