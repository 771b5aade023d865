"""Conversations kept in PostgreSQL (QA_DATABASE_URL): the same tables and owner model as the SQLite store
(server-issued ids, each bound to the client that started it), so a conversation continues on any API
replica. The tables are created by the database's migrations (qa.store.postgres.MIGRATIONS), which run
before this store is used."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from qa.conversations.store import LOCAL_CLIENT, Turn, bounded, check_id, new_id, title_of
from qa.errors import NotFound


class Connections(Protocol):
    """Where the store gets a connection whose block is one transaction (qa.store.postgres.PostgresDatabase)."""

    def connection(self) -> AbstractContextManager[Any]: ...


class PostgresConversationStore:
    """Turns per conversation in PostgreSQL, bounded to the last `max_turns`; an id that does not exist and
    one that belongs to another client get the same NotFound."""

    def __init__(self, database: Connections, max_turns: int) -> None:
        self.db = database
        self.max_turns = max_turns

    def resolve_id(self, conversation_id: str | None, client: str = LOCAL_CLIENT) -> str:
        """A new id when none is given; else the given one, if it exists and belongs to `client`."""
        if conversation_id is None:
            return new_id()
        check_id(conversation_id)
        with self.db.connection() as conn:
            row = conn.execute("SELECT client FROM conversations WHERE id=%s", (conversation_id,)).fetchone()
        if row is None or row[0] != client:
            raise NotFound("no such conversation")
        return conversation_id

    def list_for(self, client: str) -> list[dict[str, str]]:
        """A client's conversations, newest first (id, created, title)."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT id, to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), title"
                " FROM conversations WHERE client=%s ORDER BY created DESC, seq DESC", (client,),
            ).fetchall()
        return [{"id": r[0], "created": r[1], "title": r[2]} for r in rows]

    def history(self, conversation_id: str) -> list[Turn]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT question, standalone, answer FROM turns WHERE conversation_id=%s ORDER BY idx DESC LIMIT %s",
                (conversation_id, self.max_turns),
            ).fetchall()
        return [Turn(*row) for row in reversed(rows)]

    def add(self, conversation_id: str, turn: Turn, client: str = LOCAL_CLIENT) -> None:
        """Append a turn; the first turn of a new id records its owner and title. Two replicas adding to one
        conversation at once take turns on a lock per conversation."""
        with self.db.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (conversation_id,))
            conn.execute("INSERT INTO conversations (id, client, title) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                         (conversation_id, client, title_of(turn.question)))
            conn.execute(
                "INSERT INTO turns (conversation_id, idx, question, standalone, answer) VALUES (%s,"
                " (SELECT COALESCE(MAX(idx), -1) + 1 FROM turns WHERE conversation_id=%s), %s, %s, %s)",
                (conversation_id, conversation_id, bounded(turn.question), bounded(turn.standalone),
                 bounded(turn.answer)),
            )
            conn.execute(
                "DELETE FROM turns WHERE conversation_id=%s AND idx <= (SELECT MAX(idx) FROM turns"
                " WHERE conversation_id=%s) - %s",
                (conversation_id, conversation_id, self.max_turns),
            )
