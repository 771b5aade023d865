"""Conversations kept in SQLite: the turns of each conversation, bounded, shared by workers on one data folder."""

from __future__ import annotations

import re
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from qa.errors import BadRequest

CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Turn:
    """One question, the standalone form it was searched as, and the answer given."""

    question: str
    standalone: str
    answer: str


class ConversationStore:
    """Turns per conversation id in SQLite (survives restarts; shared by workers on one data folder)."""

    def __init__(self, path: Path, max_turns: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_turns = max_turns
        self._local = threading.local()
        self._db().executescript(
            "CREATE TABLE IF NOT EXISTS turns (conversation_id TEXT NOT NULL, idx INTEGER NOT NULL,"
            " question TEXT NOT NULL, standalone TEXT NOT NULL, answer TEXT NOT NULL,"
            " created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (conversation_id, idx))"
        )

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across crashes, no fsync per turn
            self._local.conn = conn
        return conn

    @staticmethod
    def resolve_id(conversation_id: str | None) -> str:
        """The given id if well-formed, a new one if none was given."""
        if conversation_id is None:
            return uuid.uuid4().hex
        if not CONVERSATION_ID.match(conversation_id):
            raise BadRequest("conversation_id must be 1-64 characters of letters, digits, '-' or '_'")
        return conversation_id

    def history(self, conversation_id: str) -> list[Turn]:
        rows = self._db().execute(
            "SELECT question, standalone, answer FROM turns WHERE conversation_id=? ORDER BY idx DESC LIMIT ?",
            (conversation_id, self.max_turns),
        ).fetchall()
        return [Turn(*row) for row in reversed(rows)]

    def add(self, conversation_id: str, turn: Turn) -> None:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO turns (conversation_id, idx, question, standalone, answer) VALUES (?,"
                " (SELECT COALESCE(MAX(idx), -1) + 1 FROM turns WHERE conversation_id=?), ?, ?, ?)",
                (conversation_id, conversation_id, turn.question, turn.standalone, turn.answer),
            )
            db.execute(
                "DELETE FROM turns WHERE conversation_id=? AND idx <= (SELECT MAX(idx) FROM turns"
                " WHERE conversation_id=?) - ?",
                (conversation_id, conversation_id, self.max_turns),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
