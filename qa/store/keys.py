"""Secrets every process on one set of stores must share (the key that signs client tokens): a file in the data
folder for the embedded stores; PostgreSQL keeps its own (qa.store.postgres.PostgresDatabase.shared_key)."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

CLIENT_KEY = "client-tokens"  # the name of the client-token key in the database


def file_key(path: Path) -> bytes:
    """A 32-byte random key kept in `path`, made by the first process that asks (the others read it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(50):
        try:
            key = path.read_bytes()
            if len(key) >= 32:
                return key
        except FileNotFoundError:
            pass
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        try:
            os.link(temp, path)  # atomic: the first worker's key wins, the others read it
        except FileExistsError:
            time.sleep(0.01)
        finally:
            temp.unlink(missing_ok=True)
    raise RuntimeError(f"cannot read the key {path}")
