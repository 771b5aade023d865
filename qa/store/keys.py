"""Secrets every process on one set of stores must share (the key that signs client tokens): a row of the SQL
layer's `shared_keys` table (the data folder's documents file, or PostgreSQL), made by the first process that
asks. A data folder of a release that kept the key in `client.key` has it copied into the table when it is
upgraded (so tokens issued before stay valid)."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from qa.db import Database
from qa.db.schema import shared_keys

CLIENT_KEY = "client-tokens"  # the name of the client-token key


class SharedKeys:
    """32-byte random keys by name, the same for every process on the database."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def get(self, name: str) -> bytes:
        """The key called `name` (the first process to ask makes it; the others read it)."""
        with self.db.write() as conn:
            conn.execute(self.db.insert(shared_keys).values(name=name, value=secrets.token_bytes(32))
                         .on_conflict_do_nothing())
            return bytes(conn.execute(select(shared_keys.c.value).where(shared_keys.c.name == name)).scalar_one())
