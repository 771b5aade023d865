"""A database of the SQL layer: the engine, transactions that say whether they write, the expressions that differ
between SQLite and PostgreSQL, and the schema brought up to date by Alembic when it opens.

- SQLite (a file in the data folder): WAL (readers never wait for the writer), synchronous=NORMAL (durable across
  crashes, no fsync per commit), a 30 s busy timeout; a write transaction starts with BEGIN IMMEDIATE, so two
  writers queue at its start instead of failing at commit.
- PostgreSQL (QA_DATABASE_URL): a pool of psycopg 3 connections checked before use, so the pool reconnects by
  itself once a lost server is back; while it is gone every call raises StoreUnavailable (503, /health degraded).
- Migrations: Alembic, with the scripts shipped inside this package (no alembic.ini). Opening a database applies
  what it lacks, in one transaction under a lock (BEGIN IMMEDIATE, or an advisory lock on PostgreSQL), so
  processes starting together migrate once; a database migrated by a newer release is refused.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Table, create_engine, event, func, literal_column, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import QueuePool

from qa.errors import StoreUnavailable

UNAVAILABLE = "document store unavailable: the PostgreSQL server (QA_DATABASE_URL) does not answer"
MIGRATION_LOCK = 7_161_760_001  # advisory lock keys: arbitrary, fixed, used by nothing else
MIGRATIONS = "qa.db:migrations"  # the Alembic script folder, inside the installed package


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def sqlite_file(path: Path, *groups: str) -> Database:
    """A SQLite file holding these table groups, brought up to date (tests, tools, benchmarks)."""
    return Database(sqlite_url(path), frozenset(groups))


@functools.cache
def _scripts() -> Any:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return ScriptDirectory.from_config(config)


def head_revision() -> str:
    """The newest schema revision this release knows."""
    return str(_scripts().get_current_head())


class Database:
    """One database (a SQLite file, or PostgreSQL) holding the table `groups` of qa.db.schema."""

    def __init__(self, url: str, groups: frozenset[str], *, upgrade: bool = True, pool_size: int = 16,
                 timeout: float = 3.0) -> None:
        self.url = url
        self.groups = groups
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            path = Path(parsed.database or "")
            path.parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                parsed, poolclass=QueuePool, pool_size=pool_size, max_overflow=-1,
                connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        elif self.dialect == "postgresql":
            self.engine = create_engine(
                parsed.set(drivername="postgresql+psycopg"), pool_size=4, max_overflow=max(pool_size - 4, 0),
                pool_timeout=timeout, pool_pre_ping=True, connect_args={"connect_timeout": 3})
        else:
            raise ValueError(f"unsupported database URL scheme: {parsed.drivername}")
        self._writer = self.engine.execution_options(qa_write=True)
        if upgrade:
            try:
                self.upgrade()
            except BaseException:
                self.engine.dispose()  # a process that cannot start keeps no connections
                raise

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    # ---- transactions -----------------------------------------------------------------------------------

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """PostgreSQL gone (refused, timed out, dropped mid-call): StoreUnavailable, said once for every store."""
        try:
            yield
        except (sa_exc.OperationalError, sa_exc.TimeoutError, sa_exc.InterfaceError) as exc:
            if not self.is_postgres:
                raise
            raise StoreUnavailable(UNAVAILABLE) from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads (on SQLite a deferred one: it never waits for the writer)."""
        with self._translated(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes: committed on leaving, rolled back on an error. On SQLite it takes the
        file's write lock at its start (BEGIN IMMEDIATE)."""
        with self._translated(), self._writer.begin() as conn:
            yield conn

    def close(self) -> None:
        """Close every pooled connection (the HTTP app's shutdown)."""
        self.engine.dispose()

    # ---- what differs between the dialects --------------------------------------------------------------

    def insert(self, table: Table) -> Any:
        """INSERT with the dialect's ON CONFLICT clauses (both dialects spell them alike)."""
        return (postgresql.insert if self.is_postgres else sqlite.insert)(table)

    def insertion_order(self, table: Table) -> ColumnElement[Any]:
        """What orders a table's rows as they were inserted: SQLite's rowid, PostgreSQL's `seq` column."""
        return literal_column(f"{table.name}.seq" if self.is_postgres else f"{table.name}.rowid")

    def byte_length(self, column: ColumnElement[Any]) -> ColumnElement[int]:
        """A blob's length in bytes (the spelling the partial index `spans_waiting` is declared with)."""
        return func.octet_length(column) if self.is_postgres else func.length(column)

    def binary_order(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """Text ordered by code point on both (SQLite's BINARY collation; PostgreSQL's "C")."""
        return column.collate("C") if self.is_postgres else column

    def iso_time(self, column: ColumnElement[Any], precise: bool = True) -> ColumnElement[Any]:
        """A timestamp column as the API shows it: `2026-12-07T22:05:56.123Z` (precise) or `2026-12-07 22:05:56`.
        SQLite stores the text already; PostgreSQL formats its timestamptz."""
        if not self.is_postgres:
            return column
        shape = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"' if precise else "YYYY-MM-DD HH24:MI:SS"
        return func.to_char(func.timezone("UTC", column), shape)

    def days_ago(self, days: int, column: ColumnElement[Any]) -> ColumnElement[bool]:
        """`column` (a stored timestamp) is more than `days` days old."""
        if self.is_postgres:
            return column < func.now() - func.make_interval(0, 0, 0, days)
        return func.datetime(column) < func.datetime("now", f"-{int(days)} days")

    def lock_key(self, conn: Connection, key: str) -> None:
        """Make writers of one key (a conversation) take turns for the rest of this transaction. SQLite's write
        transactions already do (BEGIN IMMEDIATE); PostgreSQL takes a transaction advisory lock on its hash."""
        if self.is_postgres:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})

    # ---- schema -------------------------------------------------------------------------------------------

    def revision(self) -> str | None:
        """The schema revision this database is at (None: never migrated by Alembic)."""
        from alembic.runtime.migration import MigrationContext

        with self._translated(), self.engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
        return heads[0] if heads else None

    def upgrade(self) -> list[str]:
        """Apply the migrations this database lacks (one transaction, under a lock); returns their revisions,
        oldest first. A database at a revision this release does not know is refused."""
        head = head_revision()
        if self.revision() == head:  # the usual start: one indexed read, no lock
            return []
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext

        with self.write() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            heads = MigrationContext.configure(conn).get_current_heads()
            current = heads[0] if heads else None
            if current == head:
                return []
            scripts = _scripts()
            if current is not None and current not in {s.revision for s in scripts.walk_revisions()}:
                raise StoreUnavailable(f"the database schema is version {current}, newer than this release knows "
                                       f"({head}); upgrade the API processes")
            config = Config()
            config.set_main_option("script_location", MIGRATIONS)
            config.attributes.update(connection=conn, groups=self.groups)
            command.upgrade(config, "head")
        applied = [s.revision for s in scripts.iterate_revisions(head, current or "base")]
        return applied[::-1]


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver opens no transaction by itself: begin() below does
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("qa_write") else "BEGIN")
