"""The lifecycle every source follows, whatever its type: the service and the CLI drive a Source only through
these methods, never by asking which type it is.

    check()      refuse the whole batch (a QAError 4xx) before anything is read; needs only the settings
    bind(ctx)    connect to what the service lends (SourceContext); idempotent
    count()      how many inputs articles() will yield (a progress bar's total)
    articles()   each input as an Article, a BadDocument (why it cannot be used) or an Unchanged
    remember(l)  after the ingest: keep state for what landed (a web page's validators)
    report(l)    one line per input asked for, when the type reports per input (URLs); else none
    close()      release what bind() or the source itself opened

`remote` says the inputs are read over the network: the service then reads them all before the index's
writer lock is taken, so no remote site ever makes another ingest or a delete wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from qa.config import Settings
from qa.errors import BadDocument
from qa.sources.article import Article, Unchanged

T = TypeVar("T")


def in_process(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a parse step here (the server passes its CPU worker process instead)."""
    return fn(*args)


@dataclass
class SourceContext:
    """What the service lends every source it ingests: the settings, a folder for a source type's own files
    (the data folder), whether a document id is indexed, where parsing runs, the web's validator cache (a table of
    the SQL layer: a file in the data folder, or PostgreSQL; without it a file in `state_dir`), and objects a
    source type keeps for the whole process (the web's Fetcher, so QA_FETCH_PER_HOST holds across ingests),
    closed with the service."""

    settings: Settings
    state_dir: Path
    known: Callable[[str], bool] = lambda _doc_id: False
    run: Callable[..., Any] = in_process
    validators: Callable[[], Any] | None = None  # the web's validator cache on the service's SQL layer
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def shared(self, key: str, make: Callable[[], T]) -> T:
        """The process-wide object under `key`, made on first use."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = make()
            return self._shared[key]  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close every shared object that can be closed (the service's shutdown)."""
        with self._lock:
            shared, self._shared = list(self._shared.values()), {}
        for item in shared:
            if hasattr(item, "close"):
                item.close()


@dataclass(frozen=True)
class Landed:
    """What the ingest made of a source's articles, by document id."""

    indexed: frozenset[str] = frozenset()  # added, replaced or unchanged: safely in the index now
    added: frozenset[str] = frozenset()
    replaced: frozenset[str] = frozenset()
    copies: dict[str, str] = field(default_factory=dict)  # a syndicated copy's id -> the kept article's id
    failed: dict[str, str] = field(default_factory=dict)  # input name -> why it was not indexed


@dataclass(frozen=True)
class InputLine:
    """One line of a per-input report: what became of one input asked for."""

    name: str
    status: str  # added, replaced, unchanged, duplicate, failed
    doc_id: str | None = None
    error: str | None = None
    of: str | None = None  # for a duplicate: the article it copies


class Source(Protocol):
    """A batch of inputs to ingest, driven through the lifecycle above."""

    name: str
    remote: bool

    def check(self) -> None: ...

    def bind(self, context: SourceContext) -> None: ...

    def count(self) -> int: ...

    def articles(self) -> Iterator[Article | BadDocument | Unchanged]: ...

    def remember(self, landed: Landed) -> None: ...

    def report(self, landed: Landed) -> list[InputLine]: ...

    def close(self) -> None: ...


class LocalSource:
    """Defaults for a source whose inputs are here (files, uploads): nothing to vet, bind, keep or close, and
    no per-input lines (the report's added/failed lists name every input). Parsing runs where bind() says."""

    remote = False
    run: Callable[..., Any] = in_process

    def check(self) -> None:
        return None

    def bind(self, context: SourceContext) -> None:
        self.run = context.run

    def remember(self, landed: Landed) -> None:
        return None

    def report(self, landed: Landed) -> list[InputLine]:
        return []

    def close(self) -> None:
        return None
