"""Bytes on disk per stored record, worst case an anonymous client can cause: RECORDS turns with the largest
answer object a /ask can produce (50 passages of a 2,048-token chunk, non-ASCII text) and RECORDS ratings with the
largest /feedback body the API accepts, each into a fresh SQLite file (WAL included).

    python -m bench.record_bytes
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from qa.conversations.feedback import Feedback, FeedbackStore
from qa.conversations.store import ConversationStore, Turn

RECORDS = 20


def _size(folder: Path, name: str) -> int:
    """The database file and its -wal/-shm companions."""
    return sum(f.stat().st_size for f in folder.glob(name + "*"))


def main() -> None:
    """Print KB per /ask turn and per /feedback rating."""
    folder = Path(tempfile.mkdtemp(prefix="record-bytes-"))
    store = ConversationStore(folder / "turns.sqlite", 10, 200)
    passage = {"doc_id": "d" * 40, "title": "t" * 200, "source": "s", "published": "2020-01-01",
               "text": "é" * 10_000, "start": 0, "end": 10_000, "score": 0.5, "chunk_id": "c" * 40,
               "ranks": {"dense": 1}}
    result = json.dumps({"question": "q" * 2000, "answer": "a" * 4000,
                         "citations": [dict(passage, n=i) for i in range(5)], "passages": [passage] * 50},
                        ensure_ascii=False)
    for i in range(RECORDS):
        store.add(f"c{i}", Turn("q" * 2000, "q" * 2000, "a" * 20_000, result), client="x")
    ratings = FeedbackStore(folder / "feedback.sqlite")
    for i in range(RECORDS):
        ratings.add(Feedback("up", str(i) + "q" * 20_000, "a" * 50_000, note="n" * 2000, client="x",
                             evidence=("é" * 5000,) * 50, doc_ids=("d" * 300,) * 50))
    print(f"per /ask turn: {_size(folder, 'turns.sqlite') / RECORDS / 1000:.0f} KB; "
          f"per /feedback rating: {_size(folder, 'feedback.sqlite') / RECORDS / 1000:.0f} KB")


if __name__ == "__main__":
    main()
