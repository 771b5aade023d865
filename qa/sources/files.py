"""Articles from files and folders on disk: the CLI's `qa ingest PATH` and the server's path ingest."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.config import Settings
from qa.errors import BadDocument, BadRequest, PathNotAllowed
from qa.sources.article import Article
from qa.sources.cleaning import SUPPORTED_SUFFIXES, checked_meta, parse_article, refuse_unsupported, safe_doc_id
from qa.sources.lifecycle import LocalSource, in_process

MANIFEST_NAME = "manifest.json"


def _manifest_for(folder: Path) -> dict[str, dict]:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise BadDocument(str(path), f"unreadable manifest ({exc})") from None
    return data if isinstance(data, dict) else {}


def _resolved(path: Path) -> Path:
    """The path with symlinks followed; a symlink loop stays as given (reading it then reports the loop)."""
    try:
        return path.resolve()
    except RuntimeError:  # Python < 3.13 raises this for a loop
        return path.absolute()


def discover(paths: Iterable[Path]) -> dict[Path, str]:
    """Expand folders into their supported article files (sorted, without duplicates), each with the name its
    doc id comes from: its path inside the folder given, so business/001.txt and sport/001.txt stay apart.
    Anything with a supported suffix that is not a folder is listed, FIFOs and loops too, so that reading it
    reports why it was not ingested instead of it being skipped without a word."""
    found: dict[Path, str] = {}
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if not child.is_dir() and child.suffix.lower() in SUPPORTED_SUFFIXES:
                    found.setdefault(_resolved(child), "-".join(child.relative_to(path).parts))
        else:
            found.setdefault(_resolved(path), path.name)
    return found


def read_regular_file(path: Path, max_bytes: int | None, single_link: bool) -> bytes:
    """The bytes of a regular file, opened without blocking (a FIFO would otherwise block open() forever);
    anything else, a file over the limit, or (with `single_link`) a file with other hard links is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            raise BadDocument(str(path), "symbolic link loop") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise BadDocument(str(path), "not a regular file (a FIFO, device or socket is never read)")
        if single_link and info.st_nlink > 1:
            raise BadDocument(str(path), f"has {info.st_nlink} hard links; a hard link may lead outside the "
                                         "ingest root, so such files are not read (copy the file instead)")
        if max_bytes is not None and info.st_size > max_bytes:
            raise BadDocument(str(path), f"larger than the {max_bytes}-byte limit")
        data = handle.read(max_bytes + 1 if max_bytes is not None else -1)
    if max_bytes is not None and len(data) > max_bytes:
        raise BadDocument(str(path), f"larger than the {max_bytes}-byte limit")
    return data


def parse_file(name: str, data: bytes, meta: dict, doc_id: str) -> Article | tuple[str, str]:
    """One file parsed, or the (name, reason) it cannot be used for (plain values: it may run in a worker)."""
    try:
        return parse_article(name, data, meta, doc_id=doc_id)
    except BadDocument as exc:
        return exc.name, exc.reason


def load_articles(
    paths: Iterable[Path], max_bytes: int | None = None, single_link: bool = False,
    run: Callable[..., Any] = in_process,
) -> Iterator[Article | BadDocument]:
    """Yield an Article or the BadDocument error for each file, so one bad file never stops a batch."""
    manifests: dict[Path, dict[str, dict]] = {}
    for path, name in discover(paths).items():
        try:
            if not path.exists() and not path.is_symlink():
                raise BadDocument(str(path), "no such file")
            refuse_unsupported(str(path))
            data = read_regular_file(path, max_bytes, single_link)
            if path.parent not in manifests:
                manifests[path.parent] = _manifest_for(path.parent)
            meta = checked_meta(str(path), manifests[path.parent].get(path.name))
            parsed = run(parse_file, str(path), data, meta, meta.get("id") or safe_doc_id(name))
            yield BadDocument(*parsed) if isinstance(parsed, tuple) else parsed
        except BadDocument as exc:
            yield exc
        except OSError as exc:
            yield BadDocument(str(path), exc.strerror or str(exc))


def resolve_under_root(root: Path | None, paths: Sequence[str]) -> list[Path]:
    """Resolve server-side paths (symlinks followed), refusing any that lead outside the ingest root."""
    if root is None:
        raise PathNotAllowed("path ingest is disabled on this server (QA_INGEST_ROOT is not set)")
    root = root.resolve()
    if not paths:
        raise BadRequest("paths is empty")
    resolved: list[Path] = []
    for raw in paths:
        shown = raw[:200]
        if not raw.strip() or "\x00" in raw:
            raise BadRequest(f"invalid path '{shown.replace(chr(0), '?')}'")
        try:
            target = (root / raw).resolve()  # an absolute path replaces the root, then must lie inside it
            inside = target.is_relative_to(root)
            exists = inside and target.exists()
        except RuntimeError:  # Python < 3.13: a symlink loop
            raise BadRequest(f"'{shown}': symbolic link loop") from None
        except (OSError, ValueError):
            raise BadRequest(f"invalid path '{shown}'") from None
        if not inside:
            raise PathNotAllowed(f"'{shown}' is outside the ingest root")
        if not exists:
            raise BadRequest(f"'{shown}': no such file or folder in the ingest root")
        resolved.append(target)
    try:
        found = discover(resolved)
    except OSError as exc:
        raise BadRequest(f"cannot list the given folders ({exc.strerror or type(exc).__name__})") from None
    for path in found:  # a symlink inside a folder may not lead out either
        if not path.is_relative_to(root):
            raise PathNotAllowed("a file in the given folders links outside the ingest root")
    return resolved


@dataclass
class FileSource(LocalSource):
    """Files and folders (a folder's `manifest.json` gives titles, outlets and dates)."""

    paths: list[Path]
    max_bytes: int | None = None
    single_link: bool = False  # the server's path ingest: files with other hard links are refused
    name: str = "files"
    run: Callable[..., Any] = in_process  # where parsing runs (bind() gives the server's CPU worker process)

    def check(self) -> None:
        """Every file or folder named must exist (one missing refuses the batch: a typo, not a bad article)."""
        missing = [str(p) for p in self.paths if not p.exists()]
        if missing:
            raise BadRequest(f"no such file or folder: {', '.join(missing)}")

    def count(self) -> int:
        """How many inputs articles() will yield (for a progress bar)."""
        return len(discover(self.paths))

    def articles(self) -> Iterator[Article | BadDocument]:
        return load_articles(self.paths, self.max_bytes, self.single_link, self.run)


def open_files(targets: Sequence[str], settings: Settings) -> FileSource:
    """Command-line targets as one FileSource (QA_MAX_UPLOAD_BYTES caps each file)."""
    return FileSource([Path(t) for t in targets], settings.max_upload_bytes)
