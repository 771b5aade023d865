"""The background fill (QA_SENTENCE_VECTORS=background): an ingest stores sentence spans without vectors, so it
embeds nothing but the chunks; then one worker thread of the serving process embeds the spans still without a
vector, a small batch at a time, and stores them (DocumentStore.fill_span_vectors: only where the span row is
still there, unchanged and without a vector). Until a span is filled the answerer embeds it on first read
(the lazy cache), rounded the same way, so answers do not depend on which path made a vector.

The worker wakes after each ingest of this process, at start-up (what a killed process left is resumed) and
every `poll` seconds (an ingest by another process or replica). One process at a time fills a store (a file
lock on SQLite, an advisory lock on PostgreSQL); the others find it held and wait for the next round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from qa.store import DocumentStore

log = logging.getLogger("qa.fill")

FILL_BATCH = 32  # spans per embedding call: ~1,000 tokens, one batch on one core, so asks keep the other
FILL_POLL = 30.0  # seconds between looks for spans another process stored


class SpanFill:
    """Embeds the stored spans of `kinds` that have no vector yet, on a thread of its own."""

    def __init__(self, docs: DocumentStore, embed: Callable[[list[str]], np.ndarray], kinds: list[str],
                 batch: int = FILL_BATCH, poll: float = FILL_POLL) -> None:
        self.docs = docs
        self.embed = embed
        self.kinds = kinds
        self.batch = batch
        self.poll = poll
        self.waiting: int | None = None  # spans without a vector at the last count (None: not counted yet)
        self.filled = 0  # spans this process has filled
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker (the HTTP server's start-up); its first round resumes whatever is left."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="span-fill", daemon=True)
            self._wake.set()
            self._thread.start()

    def kick(self) -> None:
        """An ingest committed: fill its spans now rather than at the next poll."""
        self._wake.set()

    def close(self) -> None:
        """Stop the worker after its current batch (what is left is filled at the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def run(self) -> int:
        """Fill until nothing is waiting (or another process holds the fill, or close() was called); returns
        how many spans were stored."""
        stored = 0
        try:
            self.waiting = sum(self.docs.spans_waiting(kind) for kind in self.kinds)
            for kind in self.kinds:
                while not self._stop.is_set():
                    done = self.docs.fill_span_vectors(kind, self.embed, self.batch)
                    if not done:  # 0: nothing left that could be stored; None: another process is filling
                        break
                    stored += done
                    self.filled += done
                    self.waiting = max(0, (self.waiting or 0) - done)
            self.waiting = sum(self.docs.spans_waiting(kind) for kind in self.kinds)
        finally:
            self.docs.close_thread()
        return stored

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                stored = self.run()
                if stored:
                    log.info("background fill: %d span vectors stored, %s waiting", stored, self.waiting)
            except Exception as exc:  # a store outage: tried again at the next round
                log.warning("background fill failed (tried again in %.0f s): %s", self.poll, exc)
