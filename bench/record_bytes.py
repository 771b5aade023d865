"""Bytes on disk per stored record, worst case an anonymous client can cause: RECORDS turns with the largest
answer object a /ask can produce (50 passages of a 2,048-token chunk, non-ASCII text) and RECORDS ratings with the
largest /feedback body the API accepts, each into a fresh SQLite file (WAL included).

    python -m bench.record_bytes

Then what the quotas cost a write on a store at QA_MAX_STORED_TURNS' default (50,000 turns of ~5 KB).
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path

from qa.conversations.feedback import Feedback, FeedbackStore
from qa.conversations.store import ConversationStore, Limits, Turn
from qa.db import sqlite_file
from qa.db.schema import CONVERSATIONS

RECORDS = 20


def _size(folder: Path, name: str) -> int:
    """The database file and its -wal/-shm companions."""
    return sum(f.stat().st_size for f in folder.glob(name + "*"))


def main() -> None:
    """Print KB per /ask turn and per /feedback rating."""
    with tempfile.TemporaryDirectory(prefix="record-bytes-") as name:
        measure(Path(name))
    with tempfile.TemporaryDirectory(prefix="quota-cost-") as name:
        quota_cost(Path(name))


def measure(folder: Path) -> None:
    """The two worst cases, each into a fresh file in `folder`."""
    store = ConversationStore(sqlite_file(folder / "turns.sqlite", CONVERSATIONS), 10, 200)
    passage = {"doc_id": "d" * 40, "title": "t" * 200, "source": "s", "published": "2020-01-01",
               "text": "é" * 10_000, "start": 0, "end": 10_000, "score": 0.5, "chunk_id": "c" * 40,
               "ranks": {"dense": 1}}
    result = json.dumps({"question": "q" * 2000, "answer": "a" * 4000,
                         "citations": [dict(passage, n=i) for i in range(5)], "passages": [passage] * 50},
                        ensure_ascii=False)
    for i in range(RECORDS):
        store.add(f"c{i}", Turn("q" * 2000, "q" * 2000, "a" * 20_000, result), client="x")
    ratings = FeedbackStore(sqlite_file(folder / "feedback.sqlite", CONVERSATIONS))
    for i in range(RECORDS):
        ratings.add(Feedback("up", str(i) + "q" * 20_000, "a" * 50_000, note="n" * 2000, client="x",
                             evidence=("é" * 5000,) * 50, doc_ids=("d" * 300,) * 50))
    print(f"per /ask turn: {_size(folder, 'turns.sqlite') / RECORDS / 1000:.0f} KB; "
          f"per /feedback rating: {_size(folder, 'feedback.sqlite') / RECORDS / 1000:.0f} KB")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def quota_cost(folder: Path, turns: int = 50_000) -> None:
    """Print the first write's retention sweep, a write's median and the write that evicts (down to 90%)."""
    limits = Limits(retention_days=30, per_client=100, total_turns=turns)
    store = ConversationStore(sqlite_file(folder / "c.sqlite", CONVERSATIONS), 10, 200, limits)
    with sqlite3.connect(folder / "c.sqlite") as db:
        db.executemany("INSERT INTO turns (conversation_id, idx, question, standalone, answer, result)"
                       " VALUES (?, ?, 'q', 'q', 'a', ?)",
                       [(f"c{i // 5}", i % 5, "r" * 5000) for i in range(turns - 10)])
        db.executemany("INSERT INTO conversations (id, client, title) VALUES (?, 'x', 't')",
                       [(f"c{i}",) for i in range(turns // 5)])
    times = []
    for i in range(40):
        started = time.perf_counter()
        store.add(f"new{i}", Turn("q", "q", "a"), "y")
        times.append(time.perf_counter() - started)
    print(f"{turns} stored turns: first write (with the retention sweep) {_ms(times[0])}, median write "
          f"{_ms(sorted(times)[20])}, the write that evicts {_ms(max(times[1:]))}")


if __name__ == "__main__":
    main()
