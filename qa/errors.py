"""One small exception hierarchy so every layer (CLI, HTTP) maps failures the same way."""


class QAError(Exception):
    """Base class: a failure the user can act on, with a one-line message."""

    status_code = 500


class BadRequest(QAError):
    """The caller asked for something malformed."""

    status_code = 400


class BadDocument(QAError):
    """An article file could not be read or holds no text."""

    status_code = 422

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class DocumentIdTaken(BadDocument):
    """A file whose document id already holds the article of another file name: never replaced silently."""

    status_code = 409


class NotFound(QAError):
    """A document or conversation id that does not exist."""

    status_code = 404


class NotIndexed(QAError):
    """The index is empty or was built by a different embedding model."""

    status_code = 409


class StoreUnavailable(QAError):
    """The vector store (e.g. a Chroma server) cannot be reached."""

    status_code = 503


class AnswererUnavailable(QAError):
    """An answerer that depends on a service cannot answer now; the fallback chain tries the next one."""

    status_code = 503


class LLMUnavailable(AnswererUnavailable):
    """The configured LLM did not answer in time or answered garbage."""


class PathNotAllowed(QAError):
    """A server-side path that resolves outside QA_INGEST_ROOT, or path ingest is disabled."""

    status_code = 403


class EmbedderUnavailable(QAError):
    """A remote embedding service (OpenAI embeddings) did not answer or answered garbage."""

    status_code = 503


DATA_FOLDER_FULL = "data folder is full: free some space (or give it a larger volume), then retry"


class StorageFull(QAError):
    """The data folder (or the database volume) has no space left: nothing more can be written until it has."""

    status_code = 507

    def __init__(self, message: str = DATA_FOLDER_FULL) -> None:
        super().__init__(message)


class QuotaReached(QAError):
    """A configured bound on what anonymous clients may store is reached (e.g. QA_MAX_FEEDBACK): nothing kept."""

    status_code = 507


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether an error (or one it was raised from) says the disk is full: SQLite's SQLITE_FULL, ENOSPC, EDQUOT
    or EFBIG from the OS, or the same said in words by a library that wraps them (Chroma)."""
    import errno
    import sqlite3

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, StorageFull):
            return True
        if isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorcode", None) == 13 or
                                               "database or disk is full" in str(exc)):
            return True
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        if any(words in str(exc) for words in ("No space left on device", "database or disk is full",
                                                "Disk quota exceeded", "File too large")):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False
