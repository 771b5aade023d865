"""Conversations kept in SQLite: the turns of each conversation, bounded, shared by workers on one data folder."""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from qa.errors import BadRequest, NotFound
from qa.sqlite_local import ThreadLocalSQLite

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
    def list_for(self, client: str) -> list[dict[str, str]]: ...
    def get(self, conversation_id: str, client: str) -> dict[str, object]: ...
    def rename(self, conversation_id: str, client: str, title: str) -> dict[str, str]: ...
    def delete(self, conversation_id: str, client: str) -> None: ...
    def history(self, conversation_id: str, before: int | None = None) -> list[Turn]: ...
    def add(self, conversation_id: str, turn: Turn, client: str = LOCAL_CLIENT) -> None: ...
    def replace(self, conversation_id: str, position: int, turn: Turn, client: str = LOCAL_CLIENT) -> None: ...
    def sweep(self) -> int: ...


def conversation_record(conversation_id: str, created: str, title: str,
                        rows: list[tuple[str, str, str | None, str]]) -> dict[str, object]:
    """A conversation as GET /conversations/{id} shows it, from its turn rows (question, answer text, stored
    answer object as JSON or None, created); an unreadable answer object is shown as missing."""
    turns = []
    for question, answer, result, turn_created in rows:
        try:
            parsed = json.loads(result) if result else None
        except ValueError:
            parsed = None
        turns.append({"question": question, "answer_text": answer, "answer": parsed, "created": turn_created})
    return {"id": conversation_id, "created": created, "title": title, "turns": turns}

class ConversationStore:
    """Turns per conversation in SQLite (survives restarts; shared by workers on one data folder).

    Conversation ids are issued here (192 random bits) and each belongs to the client that started it: an id
    that does not exist and one that belongs to another client get the same NotFound, so nothing leaks.
    """

    def __init__(self, path: Path, max_turns: int, kept_turns: int | None = None,
                 limits: Limits | None = None) -> None:
        """`max_turns`: the last turns given as context; `kept_turns` (default `max_turns`): the turns kept for
        reopening a conversation, older ones deleted; `limits`: retention and quotas."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_turns = max_turns
        self.kept_turns = max_turns if kept_turns is None else kept_turns
        self.limits = limits or Limits()
        self._next_sweep = 0.0  # the first write sweeps, if start-up did not
        self._db = ThreadLocalSQLite(path)
        self._db().executescript(
            "CREATE TABLE IF NOT EXISTS turns (conversation_id TEXT NOT NULL, idx INTEGER NOT NULL,"
            " question TEXT NOT NULL, standalone TEXT NOT NULL, answer TEXT NOT NULL,"
            " created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (conversation_id, idx));"
            "CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, client TEXT NOT NULL,"
            " created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), title TEXT NOT NULL);"
            "CREATE INDEX IF NOT EXISTS conversations_client ON conversations(client, created)"
        )
        columns = {row[1] for row in self._db().execute("PRAGMA table_info(turns)")}
        if "result" not in columns:  # a data folder from before turns kept their answer object
            try:
                self._db().execute("ALTER TABLE turns ADD COLUMN result TEXT")
            except sqlite3.OperationalError as exc:  # another worker added it first
                if "duplicate column" not in str(exc):
                    raise

    def resolve_id(self, conversation_id: str | None, client: str = LOCAL_CLIENT) -> str:
        """A new id when none is given; else the given one, if it exists and belongs to `client`."""
        if conversation_id is None:
            return new_id()
        check_id(conversation_id)
        row = self._db().execute("SELECT client FROM conversations WHERE id=?", (conversation_id,)).fetchone()
        if row is None or row[0] != client:
            raise NotFound("no such conversation")
        return conversation_id

    def list_for(self, client: str) -> list[dict[str, str]]:
        """A client's conversations, newest first (id, created, title)."""
        rows = self._db().execute(
            "SELECT id, created, title FROM conversations WHERE client=? ORDER BY created DESC, rowid DESC",
            (client,),
        ).fetchall()
        return [{"id": r[0], "created": r[1], "title": r[2]} for r in rows]

    def _owned(self, conversation_id: str, client: str) -> tuple[str, str]:
        """(created, title) of a conversation of `client`; NotFound for a malformed, unknown or foreign id."""
        row = None
        if CONVERSATION_ID.match(conversation_id):
            row = self._db().execute("SELECT created, title FROM conversations WHERE id=? AND client=?",
                                     (conversation_id, client)).fetchone()
        if row is None:
            raise NotFound("no such conversation")
        return row[0], row[1]

    def get(self, conversation_id: str, client: str) -> dict[str, object]:
        """One of `client`'s conversations with its kept turns, oldest first (each with its answer object when
        it was stored); NotFound for another client's."""
        created, title = self._owned(conversation_id, client)
        rows = self._db().execute(
            "SELECT question, answer, result, created FROM turns WHERE conversation_id=? ORDER BY idx",
            (conversation_id,),
        ).fetchall()
        return conversation_record(conversation_id, created, title, rows)

    def rename(self, conversation_id: str, client: str, title: str) -> dict[str, str]:
        """Give one of `client`'s conversations a new title (whitespace collapsed, at most TITLE_CHARS)."""
        title = " ".join(title.split())[:TITLE_CHARS]
        if not title:
            raise BadRequest("title is empty")
        created, _ = self._owned(conversation_id, client)
        self._db().execute("UPDATE conversations SET title=? WHERE id=? AND client=?", (title, conversation_id, client))
        return {"id": conversation_id, "created": created, "title": title}

    def delete(self, conversation_id: str, client: str) -> None:
        """Remove one of `client`'s conversations and all its turns."""
        self._owned(conversation_id, client)
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM turns WHERE conversation_id=?", (conversation_id,))
            db.execute("DELETE FROM conversations WHERE id=? AND client=?", (conversation_id, client))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def history(self, conversation_id: str, before: int | None = None) -> list[Turn]:
        """The last `max_turns` turns given as context; with `before`, those before the kept turn at that position
        (an edited question continues from there)."""
        rows = self._db().execute(
            "SELECT question, standalone, answer FROM (SELECT idx, question, standalone, answer FROM turns"
            " WHERE conversation_id=? ORDER BY idx LIMIT ?) ORDER BY idx DESC LIMIT ?",
            (conversation_id, -1 if before is None else before, self.max_turns),
        ).fetchall()
        return [Turn(*row) for row in reversed(rows)]

    def replace(self, conversation_id: str, position: int, turn: Turn, client: str = LOCAL_CLIENT) -> None:
        """Put `turn` in place of the kept turn at `position` (0 is the oldest kept) and delete every later turn,
        in one transaction: an edited question (or a regenerated answer) continues the conversation from there.
        Replacing the first turn gives the conversation the new turn's title."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            self._owned(conversation_id, client)
            row = db.execute("SELECT idx FROM turns WHERE conversation_id=? ORDER BY idx LIMIT 1 OFFSET ?",
                             (conversation_id, position)).fetchone() if position >= 0 else None
            if row is None:
                raise no_turn(position)
            db.execute("DELETE FROM turns WHERE conversation_id=? AND idx>=?", (conversation_id, row[0]))
            db.execute(
                "INSERT INTO turns (conversation_id, idx, question, standalone, answer, result)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, row[0], bounded(turn.question), bounded(turn.standalone), bounded(turn.answer),
                 bounded_result(turn.result)),
            )
            if position == 0:
                db.execute("UPDATE conversations SET title=? WHERE id=?", (new_title(turn), conversation_id))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @staticmethod
    def _remove(db: sqlite3.Connection, conversation_ids: list[str]) -> None:
        db.executemany("DELETE FROM turns WHERE conversation_id=?", [(i,) for i in conversation_ids])
        db.executemany("DELETE FROM conversations WHERE id=?", [(i,) for i in conversation_ids])

    def sweep(self) -> int:
        """Delete the conversations idle for longer than `limits.retention_days` (last turn older); returns how
        many. Runs at start-up and at most once per SWEEP_EVERY on writes."""
        self._next_sweep = time.monotonic() + SWEEP_EVERY
        if not self.limits.retention_days:
            return 0
        cutoff = f"-{self.limits.retention_days} days"
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            idle = [r[0] for r in db.execute(
                "SELECT conversation_id FROM turns GROUP BY conversation_id HAVING MAX(created) < datetime('now', ?)"
                " UNION SELECT id FROM conversations c WHERE datetime(created) < datetime('now', ?)"
                " AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.conversation_id = c.id)", (cutoff, cutoff))]
            self._remove(db, idle)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return len(idle)

    def _enforce_quotas(self, db: sqlite3.Connection, conversation_id: str, client: str, new: bool) -> None:
        """Make room, least recently used first (never the conversation being written): a client's new
        conversation beyond `per_client` removes its oldest; the total beyond `total_turns` removes others'."""
        if new and self.limits.per_client:
            rows = db.execute(
                "SELECT c.id FROM conversations c LEFT JOIN turns t ON t.conversation_id = c.id WHERE c.client=?"
                " AND c.id<>? GROUP BY c.id ORDER BY MAX(t.created), MAX(t.rowid), c.rowid", (client, conversation_id),
            ).fetchall()
            excess = len(rows) + 1 - self.limits.per_client
            if excess > 0:
                self._remove(db, [r[0] for r in rows[:excess]])
        turns = to_free(db.execute("SELECT COUNT(*) FROM turns").fetchone()[0], self.limits.total_turns)
        if turns:
            rows = db.execute("SELECT conversation_id, COUNT(*) FROM turns WHERE conversation_id<>?"
                              " GROUP BY conversation_id ORDER BY MAX(created), MAX(rowid)", (conversation_id,))
            self._remove(db, least_recent(rows.fetchall(), turns))

    def add(self, conversation_id: str, turn: Turn, client: str = LOCAL_CLIENT) -> None:
        """Append a turn; the first turn of a new id records its owner and its title (the first question). The
        quotas are kept in the same transaction."""
        if time.monotonic() >= self._next_sweep:
            self.sweep()
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            new = db.execute("INSERT OR IGNORE INTO conversations (id, client, title) VALUES (?, ?, ?)",
                             (conversation_id, client, new_title(turn))).rowcount == 1
            db.execute(
                "INSERT INTO turns (conversation_id, idx, question, standalone, answer, result) VALUES (?,"
                " (SELECT COALESCE(MAX(idx), -1) + 1 FROM turns WHERE conversation_id=?), ?, ?, ?, ?)",
                (conversation_id, conversation_id, bounded(turn.question), bounded(turn.standalone),
                 bounded(turn.answer), bounded_result(turn.result)),
            )
            db.execute(
                "DELETE FROM turns WHERE conversation_id=? AND idx <= (SELECT MAX(idx) FROM turns"
                " WHERE conversation_id=?) - ?",
                (conversation_id, conversation_id, self.kept_turns),
            )
            self._enforce_quotas(db, conversation_id, client, new)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
