"""Conversations kept in SQLite: the turns of each conversation, bounded, shared by workers on one data folder."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from qa.errors import BadRequest, NotFound
from qa.sqlite_local import ThreadLocalSQLite

CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LOCAL_CLIENT = "local"  # the owner of conversations started in-process (CLI, `qa eval` without --url)
TITLE_CHARS = 200
STORED_CHARS = 4000  # each of a turn's question, standalone question and answer is kept to this many characters


def _bounded(text: str) -> str:
    return text if len(text) <= STORED_CHARS else text[: STORED_CHARS - 1] + "…"


@dataclass(frozen=True)
class Turn:
    """One question, the standalone form it was searched as, and the answer given."""

    question: str
    standalone: str
    answer: str


class ConversationStore:
    """Turns per conversation in SQLite (survives restarts; shared by workers on one data folder).

    Conversation ids are issued here (192 random bits) and each belongs to the client that started it: an id
    that does not exist and one that belongs to another client get the same NotFound, so nothing leaks.
    """

    def __init__(self, path: Path, max_turns: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_turns = max_turns
        self._db = ThreadLocalSQLite(path)
        self._db().executescript(
            "CREATE TABLE IF NOT EXISTS turns (conversation_id TEXT NOT NULL, idx INTEGER NOT NULL,"
            " question TEXT NOT NULL, standalone TEXT NOT NULL, answer TEXT NOT NULL,"
            " created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (conversation_id, idx));"
            "CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, client TEXT NOT NULL,"
            " created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), title TEXT NOT NULL);"
            "CREATE INDEX IF NOT EXISTS conversations_client ON conversations(client, created)"
        )

    def resolve_id(self, conversation_id: str | None, client: str = LOCAL_CLIENT) -> str:
        """A new id when none is given; else the given one, if it exists and belongs to `client`."""
        if conversation_id is None:
            return secrets.token_urlsafe(24)
        if not CONVERSATION_ID.match(conversation_id):
            raise BadRequest("conversation_id must be 1-64 characters of letters, digits, '-' or '_'")
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

    def history(self, conversation_id: str) -> list[Turn]:
        rows = self._db().execute(
            "SELECT question, standalone, answer FROM turns WHERE conversation_id=? ORDER BY idx DESC LIMIT ?",
            (conversation_id, self.max_turns),
        ).fetchall()
        return [Turn(*row) for row in reversed(rows)]

    def add(self, conversation_id: str, turn: Turn, client: str = LOCAL_CLIENT) -> None:
        """Append a turn; the first turn of a new id records its owner and its title (the first question)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT OR IGNORE INTO conversations (id, client, title) VALUES (?, ?, ?)",
                       (conversation_id, client, " ".join(turn.question.split())[:TITLE_CHARS]))
            db.execute(
                "INSERT INTO turns (conversation_id, idx, question, standalone, answer) VALUES (?,"
                " (SELECT COALESCE(MAX(idx), -1) + 1 FROM turns WHERE conversation_id=?), ?, ?, ?)",
                (conversation_id, conversation_id, _bounded(turn.question), _bounded(turn.standalone),
                 _bounded(turn.answer)),
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
