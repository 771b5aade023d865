"""Conversations: turns kept on disk, and follow-up questions rewritten to stand on their own."""

from __future__ import annotations

import re
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from qa.errors import BadRequest

CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FOLLOW_UP = re.compile(
    r"\b(he|him|his|she|her|hers|it|its|they|them|their|theirs|this|that|these|those|there|then|"
    r"the (meeting|talks|visit|strike|attack|deal|agreement|man|woman|minister|president|article))\b",
    re.I,
)
_SENTENCE_END = re.compile(r"(?<=[?.!])\s+")
_ENTITY = re.compile(r"\b[A-Z][\w’'-]*(?:\s+(?:of\s+)?[A-Z][\w’'-]*)*")
_NOT_ENTITIES = {
    "the", "a", "an", "on", "in", "at", "after", "before", "as", "but", "and", "he", "she", "it", "they", "we",
    "i", "who", "what", "when", "where", "why", "how", "which", "did", "does", "was", "were", "is", "are",
    "while", "since", "however", "later", "earlier", "both", "according", "during", "monday", "tuesday",
    "wednesday", "thursday", "friday", "saturday", "sunday", "this", "that", "there", "these", "those",
}


@dataclass(frozen=True)
class Turn:
    question: str
    standalone: str
    answer: str


def _strip_markers(text: str) -> str:
    return re.sub(r"\[\d+\]", "", text)


def key_entities(text: str, limit: int = 12) -> list[str]:
    """Capitalised names in a text (people, places, organisations), most recent mention kept once."""
    found: list[str] = []
    for match in _ENTITY.finditer(text):
        words = match.group(0).split()
        while words and words[0].lower() in _NOT_ENTITIES:
            words = words[1:]
        name = " ".join(words)
        if name and name.lower() not in _NOT_ENTITIES and name not in found:
            found.append(name)
    return found[:limit]


def is_follow_up(question: str) -> bool:
    """A question that leans on an earlier turn: it uses a pronoun or a bare 'the meeting'-style reference."""
    return bool(_FOLLOW_UP.search(question)) or len(question.split()) <= 3


def offline_standalone(question: str, history: list[Turn]) -> str:
    """The documented offline rule: a follow-up is prefixed with the previous question (itself kept to its
    last two sentences), so "What was he investigating?" after "Who did Trump fire?" is searched and scored
    as "Who did Trump fire? What was he investigating?"."""
    if not history or not is_follow_up(question):
        return question
    previous = _SENTENCE_END.split(history[-1].standalone.strip())[-2:]
    return " ".join([*previous, question])


REWRITE_PROMPT = """Rewrite the user's last question so it can be understood without the conversation.
Replace pronouns with the names they refer to. Reply with the rewritten question only."""


def llm_messages(question: str, history: list[Turn]) -> list[dict[str, str]]:
    """Messages asking an LLM to make a follow-up standalone."""
    lines = [f"Q: {t.standalone}\nA: {_strip_markers(t.answer)[:600]}" for t in history[-3:]]
    user = "Conversation:\n" + "\n".join(lines) + f"\n\nLast question: {question}"
    return [{"role": "system", "content": REWRITE_PROMPT}, {"role": "user", "content": user}]


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
