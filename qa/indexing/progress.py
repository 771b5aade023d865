"""How far the running ingest is, in a small file in the data folder, so every worker's /health can show it
(an upload answers only when it is done; a 2 MB article takes minutes)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class IngestProgress:
    """Written by the ingest holding the writer lock (atomic replace), read by anyone; cleared when it ends."""

    def __init__(self, path: Path, min_interval: float = 0.2) -> None:
        self.path = path
        self.min_interval = min_interval
        self._last = 0.0
        self._started = 0.0

    def start(self) -> None:
        self._started = time.time()
        self._last = 0.0

    def update(self, document: str, done: int, total: int, force: bool = False) -> None:
        """Texts embedded so far for the group holding `document`; written at most every `min_interval` s."""
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        state = {"document": document, "done": done, "total": total, "pid": os.getpid(),
                 "started": round(self._started, 3), "updated": round(time.time(), 3)}
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temp.write_text(json.dumps(state))
        os.replace(temp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def read(self) -> dict[str, Any] | None:
        """The running ingest's progress, or None (no ingest, or its process is gone)."""
        try:
            state = json.loads(self.path.read_text())
            os.kill(int(state["pid"]), 0)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return {k: state[k] for k in ("document", "done", "total", "started", "updated") if k in state}
