"""Conversations kept in PostgreSQL (QA_DATABASE_URL): the same tables and owner model as the SQLite store
(server-issued ids, each bound to the client that started it), so a conversation continues on any API
replica. The tables are created by the database's migrations (qa.store.postgres.MIGRATIONS), which run
before this store is used."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any, Protocol

from qa.conversations.store import (
    CONVERSATION_ID,
    LOCAL_CLIENT,
    SWEEP_EVERY,
    TITLE_CHARS,
    Limits,
    Turn,
    bounded,
    bounded_result,
    check_id,
    conversation_record,
    least_recent,
    new_id,
    new_title,
    no_turn,
    to_free,
)
from qa.errors import BadRequest, NotFound

_CREATED = "to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"  # as SQLite's strftime


class Connections(Protocol):
    """Where the store gets a connection whose block is one transaction (qa.store.postgres.PostgresDatabase)."""

    def connection(self) -> AbstractContextManager[Any]: ...


class PostgresConversationStore:
    """Turns per conversation in PostgreSQL, bounded to the last `max_turns`; an id that does not exist and
    one that belongs to another client get the same NotFound."""

    def __init__(self, database: Connections, max_turns: int, kept_turns: int | None = None,
                 limits: Limits | None = None) -> None:
        """`max_turns`: the last turns given as context; `kept_turns` (default `max_turns`): the turns kept for
        reopening a conversation, older ones deleted; `limits`: retention and quotas."""
        self.db = database
        self.max_turns = max_turns
        self.kept_turns = max_turns if kept_turns is None else kept_turns
        self.limits = limits or Limits()
        self._next_sweep = 0.0  # the first write sweeps, if start-up did not

    @staticmethod
    def _remove(conn: Any, conversation_ids: list[str]) -> None:
        if conversation_ids:
            conn.execute("DELETE FROM turns WHERE conversation_id = ANY(%s)", (conversation_ids,))
            conn.execute("DELETE FROM conversations WHERE id = ANY(%s)", (conversation_ids,))

    def sweep(self) -> int:
        """As ConversationStore.sweep: delete the conversations idle for longer than the retention."""
        self._next_sweep = time.monotonic() + SWEEP_EVERY
        if not self.limits.retention_days:
            return 0
        with self.db.connection() as conn:
            idle = [r[0] for r in conn.execute(
                "SELECT conversation_id FROM turns GROUP BY conversation_id"
                " HAVING MAX(created) < now() - make_interval(days => %s)"
                " UNION SELECT id FROM conversations c WHERE created < now() - make_interval(days => %s)"
                " AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.conversation_id = c.id)",
                (self.limits.retention_days, self.limits.retention_days)).fetchall()]
            self._remove(conn, idle)
        return len(idle)

    def _enforce_quotas(self, conn: Any, conversation_id: str, client: str, new: bool) -> None:
        """As ConversationStore._enforce_quotas: least recently used first, never the conversation written."""
        if new and self.limits.per_client:
            rows = conn.execute(
                "SELECT c.id FROM conversations c LEFT JOIN turns t ON t.conversation_id = c.id WHERE c.client=%s"
                " AND c.id<>%s GROUP BY c.id ORDER BY MAX(t.created), MAX(c.seq)", (client, conversation_id),
            ).fetchall()
            excess = len(rows) + 1 - self.limits.per_client
            if excess > 0:
                self._remove(conn, [r[0] for r in rows[:excess]])
        turns = to_free(conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0], self.limits.total_turns)
        if turns:
            rows = conn.execute("SELECT conversation_id, COUNT(*) FROM turns WHERE conversation_id<>%s"
                                " GROUP BY conversation_id ORDER BY MAX(created)", (conversation_id,))
            self._remove(conn, least_recent(rows.fetchall(), turns))

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
                f"SELECT id, {_CREATED}, title FROM conversations WHERE client=%s ORDER BY created DESC, seq DESC",
                (client,),
            ).fetchall()
        return [{"id": r[0], "created": r[1], "title": r[2]} for r in rows]

    def _owned(self, conn: Any, conversation_id: str, client: str) -> tuple[str, str]:
        """(created, title) of a conversation of `client`; NotFound for a malformed, unknown or foreign id."""
        row = None
        if CONVERSATION_ID.match(conversation_id):
            row = conn.execute(f"SELECT {_CREATED}, title FROM conversations WHERE id=%s AND client=%s",
                               (conversation_id, client)).fetchone()
        if row is None:
            raise NotFound("no such conversation")
        return row[0], row[1]

    def get(self, conversation_id: str, client: str) -> dict[str, object]:
        """One of `client`'s conversations with its kept turns, oldest first; NotFound for another client's."""
        with self.db.connection() as conn:
            created, title = self._owned(conn, conversation_id, client)
            rows = conn.execute(
                "SELECT question, answer, result, to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
                " FROM turns WHERE conversation_id=%s ORDER BY idx", (conversation_id,),
            ).fetchall()
        return conversation_record(conversation_id, created, title, rows)

    def rename(self, conversation_id: str, client: str, title: str) -> dict[str, str]:
        """Give one of `client`'s conversations a new title (whitespace collapsed, at most TITLE_CHARS)."""
        title = " ".join(title.split())[:TITLE_CHARS]
        if not title:
            raise BadRequest("title is empty")
        with self.db.connection() as conn:
            created, _ = self._owned(conn, conversation_id, client)
            conn.execute("UPDATE conversations SET title=%s WHERE id=%s AND client=%s",
                         (title, conversation_id, client))
        return {"id": conversation_id, "created": created, "title": title}

    def delete(self, conversation_id: str, client: str) -> None:
        """Remove one of `client`'s conversations and all its turns (one transaction)."""
        with self.db.connection() as conn:
            self._owned(conn, conversation_id, client)
            conn.execute("DELETE FROM turns WHERE conversation_id=%s", (conversation_id,))
            conn.execute("DELETE FROM conversations WHERE id=%s AND client=%s", (conversation_id, client))

    def history(self, conversation_id: str, before: int | None = None) -> list[Turn]:
        """As ConversationStore.history: the last `max_turns` turns, or those before the kept turn `before`."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT question, standalone, answer FROM (SELECT idx, question, standalone, answer FROM turns"
                " WHERE conversation_id=%s ORDER BY idx LIMIT %s) AS kept ORDER BY idx DESC LIMIT %s",
                (conversation_id, before, self.max_turns),
            ).fetchall()
        return [Turn(*row) for row in reversed(rows)]

    def replace(self, conversation_id: str, position: int, turn: Turn, client: str = LOCAL_CLIENT) -> None:
        """As ConversationStore.replace: `turn` in place of the kept turn at `position`, later turns deleted, one
        transaction under the conversation's lock."""
        with self.db.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (conversation_id,))
            self._owned(conn, conversation_id, client)
            row = conn.execute("SELECT idx FROM turns WHERE conversation_id=%s ORDER BY idx LIMIT 1 OFFSET %s",
                               (conversation_id, position)).fetchone() if position >= 0 else None
            if row is None:
                raise no_turn(position)
            conn.execute("DELETE FROM turns WHERE conversation_id=%s AND idx>=%s", (conversation_id, row[0]))
            conn.execute(
                "INSERT INTO turns (conversation_id, idx, question, standalone, answer, result)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (conversation_id, row[0], bounded(turn.question), bounded(turn.standalone), bounded(turn.answer),
                 bounded_result(turn.result)),
            )
            if position == 0:
                conn.execute("UPDATE conversations SET title=%s WHERE id=%s", (new_title(turn), conversation_id))

    def add(self, conversation_id: str, turn: Turn, client: str = LOCAL_CLIENT) -> None:
        """Append a turn; the first turn of a new id records its owner and title. Two replicas adding to one
        conversation at once take turns on a lock per conversation. The quotas are kept in the same
        transaction."""
        if time.monotonic() >= self._next_sweep:
            self.sweep()
        with self.db.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (conversation_id,))
            new = conn.execute(
                "INSERT INTO conversations (id, client, title) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (conversation_id, client, new_title(turn))).rowcount == 1
            conn.execute(
                "INSERT INTO turns (conversation_id, idx, question, standalone, answer, result) VALUES (%s,"
                " (SELECT COALESCE(MAX(idx), -1) + 1 FROM turns WHERE conversation_id=%s), %s, %s, %s, %s)",
                (conversation_id, conversation_id, bounded(turn.question), bounded(turn.standalone),
                 bounded(turn.answer), bounded_result(turn.result)),
            )
            conn.execute(
                "DELETE FROM turns WHERE conversation_id=%s AND idx <= (SELECT MAX(idx) FROM turns"
                " WHERE conversation_id=%s) - %s",
                (conversation_id, conversation_id, self.kept_turns),
            )
            self._enforce_quotas(conn, conversation_id, client, new)
