"""Conversations: the turns of each conversation and its owner, bounded (retention and quotas), in a database of
the SQL layer (qa.db): a SQLite file shared by the workers on one data folder, or PostgreSQL so that a
conversation continues on any API replica."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, delete, exists, func, select, union, update

from qa.db import Database
from qa.db.schema import conversations, turns
from qa.errors import BadRequest, NotFound

CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LOCAL_CLIENT = "local"  # the owner of conversations started in-process (CLI, `qa eval` without --url)
TITLE_CHARS = 200
STORED_CHARS = 4000  # each of a turn's question, standalone question and answer is kept to this many characters
RESULT_CHARS = 30_000  # a turn's answer object (JSON, to re-show it with its citations) is kept up to this size
STORED_PASSAGES = 10  # the nearest passages a stored turn keeps (the page shows them under a refusal)
PASSAGE_CHARS = 3000  # each kept passage's text, cut to this (a default chunk is ~1,200 characters)
SWEEP_EVERY = 3600.0  # seconds between two retention sweeps of one process (the first runs at start-up)


@dataclass(frozen=True)
class Limits:
    """How much the conversation store may hold, so anonymous clients cannot grow it without end (0: no limit)."""

    retention_days: int = 0  # conversations idle for longer are deleted by the sweep
    per_client: int = 0  # a client's new conversation beyond this deletes its least recently used one
    total_turns: int = 0  # beyond this, the least recently used conversations go, down to 90% of it


def to_free(total: int, limit: int) -> int:
    """Turns to delete once `total` exceeds `limit`: down to 90% of it, so the search for the least recently
    used conversations runs once per tenth of the limit, not on every turn."""
    return total - limit * 9 // 10 if limit and total > limit else 0


def least_recent(rows: Iterable[tuple[str, int]], turns: int) -> list[str]:
    """The first conversations of `rows` (id, turn count; least recently used first) that hold `turns` turns."""
    chosen, freed = [], 0
    for conversation_id, count in rows:
        if freed >= turns:
            break
        chosen.append(conversation_id)
        freed += count
    return chosen


def bounded(text: str, limit: int = STORED_CHARS) -> str:
    """`text` cut to `limit` characters (an ellipsis marks the cut): what a stored record may hold."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def title_of(question: str) -> str:
    """A conversation's title: its first question on one line, bounded."""
    return " ".join(question.split())[:TITLE_CHARS]


def new_title(turn: Turn) -> str:
    """The title a conversation starting with `turn` gets: the one computed for it, else its question."""
    return title_of(turn.title or turn.question)


def no_turn(position: int) -> NotFound:
    return NotFound(f"no turn {position} in this conversation")


def check_id(conversation_id: str) -> None:
    if not CONVERSATION_ID.match(conversation_id):
        raise BadRequest("conversation_id must be 1-64 characters of letters, digits, '-' or '_'")


def new_id() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits


@dataclass(frozen=True)
class Turn:
    """One question, the standalone form it was searched as, and the answer given."""

    question: str
    standalone: str
    answer: str
    result: str | None = None  # the answer object as JSON, so the turn can be shown again with its citations
    title: str | None = None  # what the conversation is about, if it starts here (default: the question)


def _trimmed_passages(passages: object) -> object:
    """At most STORED_PASSAGES passages, each text at most PASSAGE_CHARS (what a reopened turn shows)."""
    if not isinstance(passages, list):
        return passages
    kept = []
    for passage in passages[:STORED_PASSAGES]:
        if isinstance(passage, dict) and isinstance(passage.get("text"), str):
            passage = {**passage, "text": bounded(passage["text"], PASSAGE_CHARS)}
        kept.append(passage)
    return kept


def bounded_result(result: str | None) -> str | None:
    """The answer object with its passages bounded, if it fits RESULT_CHARS; else the same without its passages;
    else nothing (the turn is then shown again as its answer text alone)."""
    if result is None:
        return None
    try:
        data = json.loads(result)
    except ValueError:
        return result if len(result) <= RESULT_CHARS else None
    if isinstance(data, dict) and "passages" in data:
        trimmed = _trimmed_passages(data["passages"])
        if trimmed != data["passages"]:
            data["passages"] = trimmed
            result = json.dumps(data, ensure_ascii=False)
    if len(result) <= RESULT_CHARS:
        return result
    data["passages"] = []
    smaller = json.dumps(data, ensure_ascii=False)
    return smaller if len(smaller) <= RESULT_CHARS else None


class Conversations(Protocol):
    """Where conversations are kept, each owned by the client that started it (SQLite or PostgreSQL)."""

    def resolve_id(self, conversation_id: str | None, client: str = LOCAL_CLIENT) -> str: ...
    def list_for(self, client: str) -> list[ConversationRow]: ...
    def get(self, conversation_id: str, client: str) -> StoredConversation: ...
    def rename(self, conversation_id: str, client: str, title: str) -> ConversationRow: ...
    def delete(self, conversation_id: str, client: str) -> None: ...
    def history(self, conversation_id: str, before: int | None = None) -> list[Turn]: ...
    def add(self, conversation_id: str, turn: Turn, client: str = LOCAL_CLIENT) -> None: ...
    def replace(self, conversation_id: str, position: int, turn: Turn, client: str = LOCAL_CLIENT) -> None: ...
    def sweep(self) -> int: ...


@dataclass(frozen=True)
class ConversationRow:
    """One of a client's conversations as GET /conversations lists it."""

    id: str
    created: str
    title: str


@dataclass(frozen=True)
class StoredTurn:
    """A kept turn as GET /conversations/{id} shows it: the answer object parsed from its JSON (None when it was
    not kept or is unreadable)."""

    question: str
    answer_text: str
    answer: dict[str, Any] | None
    created: str


@dataclass(frozen=True)
class StoredConversation:
    """One conversation with its kept turns, oldest first."""

    id: str
    created: str
    title: str
    turns: list[StoredTurn]


def stored_turn(question: str, answer: str, result: str | None, created: str) -> StoredTurn:
    """A turn from its row (question, answer text, stored answer object as JSON or None, created); an unreadable
    answer object is shown as missing."""
    try:
        parsed = json.loads(result) if result else None
    except ValueError:
        parsed = None
    return StoredTurn(question, answer, parsed if isinstance(parsed, dict) else None, created)


class ConversationStore:
    """Turns per conversation (survives restarts; shared by every process on the same database).

    Conversation ids are issued here (192 random bits) and each belongs to the client that started it: an id
    that does not exist and one that belongs to another client get the same NotFound, so nothing leaks.
    """

    def __init__(self, database: Database, max_turns: int, kept_turns: int | None = None,
                 limits: Limits | None = None) -> None:
        """`max_turns`: the last turns given as context; `kept_turns` (default `max_turns`): the turns kept for
        reopening a conversation, older ones deleted; `limits`: retention and quotas."""
        self.db = database
        self.max_turns = max_turns
        self.kept_turns = max_turns if kept_turns is None else kept_turns
        self.limits = limits or Limits()
        self._next_sweep = 0.0  # the first write sweeps, if start-up did not

    def resolve_id(self, conversation_id: str | None, client: str = LOCAL_CLIENT) -> str:
        """A new id when none is given; else the given one, if it exists and belongs to `client`."""
        if conversation_id is None:
            return new_id()
        check_id(conversation_id)
        with self.db.read() as conn:
            owner = conn.execute(select(conversations.c.client).where(conversations.c.id == conversation_id)).scalar()
        if owner != client:
            raise NotFound("no such conversation")
        return conversation_id

    def list_for(self, client: str) -> list[ConversationRow]:
        """A client's conversations, newest first (id, created, title)."""
        order = self.db.insertion_order(conversations)
        with self.db.read() as conn:
            rows = conn.execute(select(conversations.c.id, self.db.iso_time(conversations.c.created),
                                       conversations.c.title).where(conversations.c.client == client)
                                .order_by(conversations.c.created.desc(), order.desc())).all()
        return [ConversationRow(*row) for row in rows]

    def _owned(self, conn: Connection, conversation_id: str, client: str) -> tuple[str, str]:
        """(created, title) of a conversation of `client`; NotFound for a malformed, unknown or foreign id."""
        row = None
        if CONVERSATION_ID.match(conversation_id):
            row = conn.execute(select(self.db.iso_time(conversations.c.created), conversations.c.title).where(
                conversations.c.id == conversation_id, conversations.c.client == client)).first()
        if row is None:
            raise NotFound("no such conversation")
        return row[0], row[1]

    def get(self, conversation_id: str, client: str) -> StoredConversation:
        """One of `client`'s conversations with its kept turns, oldest first (each with its answer object when
        it was stored); NotFound for another client's."""
        with self.db.read() as conn:
            created, title = self._owned(conn, conversation_id, client)
            rows = conn.execute(select(turns.c.question, turns.c.answer, turns.c.result,
                                       self.db.iso_time(turns.c.created, precise=False))
                                .where(turns.c.conversation_id == conversation_id).order_by(turns.c.idx)).all()
        return StoredConversation(conversation_id, created, title, [stored_turn(*row) for row in rows])

    def rename(self, conversation_id: str, client: str, title: str) -> ConversationRow:
        """Give one of `client`'s conversations a new title (whitespace collapsed, at most TITLE_CHARS)."""
        title = " ".join(title.split())[:TITLE_CHARS]
        if not title:
            raise BadRequest("title is empty")
        with self.db.write() as conn:
            created, _ = self._owned(conn, conversation_id, client)
            conn.execute(update(conversations).where(conversations.c.id == conversation_id,
                                                     conversations.c.client == client).values(title=title))
        return ConversationRow(conversation_id, created, title)

    def delete(self, conversation_id: str, client: str) -> None:
        """Remove one of `client`'s conversations and all its turns (one transaction)."""
        with self.db.write() as conn:
            self._owned(conn, conversation_id, client)
            self._remove(conn, [conversation_id])

    def history(self, conversation_id: str, before: int | None = None) -> list[Turn]:
        """The last `max_turns` turns given as context; with `before`, those before the kept turn at that position
        (an edited question continues from there)."""
        kept = select(turns.c.idx, turns.c.question, turns.c.standalone, turns.c.answer) \
            .where(turns.c.conversation_id == conversation_id).order_by(turns.c.idx)
        if before is not None:
            kept = kept.limit(before)
        earlier = kept.subquery()
        with self.db.read() as conn:
            rows = conn.execute(select(earlier.c.question, earlier.c.standalone, earlier.c.answer)
                                .order_by(earlier.c.idx.desc()).limit(self.max_turns)).all()
        return [Turn(*row) for row in reversed(rows)]

    def replace(self, conversation_id: str, position: int, turn: Turn, client: str = LOCAL_CLIENT) -> None:
        """Put `turn` in place of the kept turn at `position` (0 is the oldest kept) and delete every later turn,
        in one transaction (under the conversation's lock): an edited question (or a regenerated answer)
        continues the conversation from there. Replacing the first turn gives the conversation the new turn's
        title."""
        with self.db.write() as conn:
            self.db.lock_key(conn, conversation_id)
            self._owned(conn, conversation_id, client)
            idx = conn.execute(select(turns.c.idx).where(turns.c.conversation_id == conversation_id)
                               .order_by(turns.c.idx).limit(1).offset(position)).scalar() if position >= 0 else None
            if idx is None:
                raise no_turn(position)
            conn.execute(delete(turns).where(turns.c.conversation_id == conversation_id, turns.c.idx >= idx))
            conn.execute(turns.insert().values(
                conversation_id=conversation_id, idx=idx, question=bounded(turn.question),
                standalone=bounded(turn.standalone), answer=bounded(turn.answer), result=bounded_result(turn.result)))
            if position == 0:
                conn.execute(update(conversations).where(conversations.c.id == conversation_id)
                             .values(title=new_title(turn)))

    @staticmethod
    def _remove(conn: Connection, conversation_ids: list[str]) -> None:
        for at in range(0, len(conversation_ids), 500):
            part = conversation_ids[at : at + 500]
            conn.execute(delete(turns).where(turns.c.conversation_id.in_(part)))
            conn.execute(delete(conversations).where(conversations.c.id.in_(part)))

    def sweep(self) -> int:
        """Delete the conversations idle for longer than `limits.retention_days` (last turn older); returns how
        many. Runs at start-up and at most once per SWEEP_EVERY on writes."""
        self._next_sweep = time.monotonic() + SWEEP_EVERY
        days = self.limits.retention_days
        if not days:
            return 0
        idle_turns = select(turns.c.conversation_id).group_by(turns.c.conversation_id) \
            .having(self.db.days_ago(days, func.max(turns.c.created)))
        never_answered = select(conversations.c.id).where(
            self.db.days_ago(days, conversations.c.created),
            ~exists().where(turns.c.conversation_id == conversations.c.id))
        with self.db.write() as conn:
            idle = list(conn.execute(union(idle_turns, never_answered)).scalars())
            self._remove(conn, idle)
        return len(idle)

    def _enforce_quotas(self, conn: Connection, conversation_id: str, client: str, new: bool) -> None:
        """Make room, least recently used first (never the conversation being written): a client's new
        conversation beyond `per_client` removes its oldest; the total beyond `total_turns` removes others'."""
        turn_order = self.db.insertion_order(turns)
        if new and self.limits.per_client:
            rows = conn.execute(
                select(conversations.c.id)
                .join_from(conversations, turns, turns.c.conversation_id == conversations.c.id, isouter=True)
                .where(conversations.c.client == client, conversations.c.id != conversation_id)
                .group_by(conversations.c.id)
                .order_by(func.max(turns.c.created), func.max(turn_order),
                          func.max(self.db.insertion_order(conversations)))).scalars().all()
            excess = len(rows) + 1 - self.limits.per_client
            if excess > 0:
                self._remove(conn, list(rows[:excess]))
        kept = conn.execute(select(func.count()).select_from(turns)).scalar_one()
        if to_free(kept, self.limits.total_turns):
            rows = conn.execute(select(turns.c.conversation_id, func.count())
                                .where(turns.c.conversation_id != conversation_id)
                                .group_by(turns.c.conversation_id)
                                .order_by(func.max(turns.c.created), func.max(turn_order))).all()
            self._remove(conn, least_recent([(r[0], r[1]) for r in rows], to_free(kept, self.limits.total_turns)))

    def add(self, conversation_id: str, turn: Turn, client: str = LOCAL_CLIENT) -> None:
        """Append a turn; the first turn of a new id records its owner and its title (the first question). Two
        processes adding to one conversation take turns. The quotas are kept in the same transaction."""
        if time.monotonic() >= self._next_sweep:
            self.sweep()
        last = select(func.max(turns.c.idx)).where(turns.c.conversation_id == conversation_id).scalar_subquery()
        with self.db.write() as conn:
            self.db.lock_key(conn, conversation_id)
            new = conn.execute(self.db.insert(conversations).values(
                id=conversation_id, client=client, title=new_title(turn)).on_conflict_do_nothing()
            ).rowcount == 1
            conn.execute(turns.insert().values(
                conversation_id=conversation_id, idx=func.coalesce(last, -1) + 1, question=bounded(turn.question),
                standalone=bounded(turn.standalone), answer=bounded(turn.answer), result=bounded_result(turn.result)))
            conn.execute(delete(turns).where(turns.c.conversation_id == conversation_id,
                                             turns.c.idx <= last - self.kept_turns))
            self._enforce_quotas(conn, conversation_id, client, new)
