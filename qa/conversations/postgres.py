"""Conversations kept in PostgreSQL (QA_DATABASE_URL): the same turns table as the SQLite store, so a
conversation continues on any API replica. The table is created by the database's migrations
(qa.store.postgres.MIGRATIONS), which run before this store is used."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from qa.conversations.store import ConversationStore, Turn


class Connections(Protocol):
    """Where the store gets a connection whose block is one transaction (qa.store.postgres.PostgresDatabase)."""

    def connection(self) -> AbstractContextManager[Any]: ...


class PostgresConversationStore:
    """Turns per conversation id in PostgreSQL, bounded to the last `max_turns`."""

    def __init__(self, database: Connections, max_turns: int) -> None:
        self.db = database
        self.max_turns = max_turns

    resolve_id = staticmethod(ConversationStore.resolve_id)

    def history(self, conversation_id: str) -> list[Turn]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT question, standalone, answer FROM turns WHERE conversation_id=%s ORDER BY idx DESC LIMIT %s",
                (conversation_id, self.max_turns),
            ).fetchall()
        return [Turn(*row) for row in reversed(rows)]

    def add(self, conversation_id: str, turn: Turn) -> None:
        """Append a turn; two replicas adding to one conversation at once take turns on a lock per conversation."""
        with self.db.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (conversation_id,))
            conn.execute(
                "INSERT INTO turns (conversation_id, idx, question, standalone, answer) VALUES (%s,"
                " (SELECT COALESCE(MAX(idx), -1) + 1 FROM turns WHERE conversation_id=%s), %s, %s, %s)",
                (conversation_id, conversation_id, turn.question, turn.standalone, turn.answer),
            )
            conn.execute(
                "DELETE FROM turns WHERE conversation_id=%s AND idx <= (SELECT MAX(idx) FROM turns"
                " WHERE conversation_id=%s) - %s",
                (conversation_id, conversation_id, self.max_turns),
            )
