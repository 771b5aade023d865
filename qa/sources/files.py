"""Articles from files and folders on disk: the CLI's `qa ingest PATH` and the server's path ingest."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from qa.errors import BadDocument, BadRequest, PathNotAllowed
from qa.sources.article import Article
from qa.sources.cleaning import SUPPORTED_SUFFIXES, parse_article, safe_doc_id

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


def discover(paths: Iterable[Path]) -> dict[Path, str]:
    """Expand folders into their supported article files (sorted, without duplicates), each with the name its
    doc id comes from: its path inside the folder given, so business/001.txt and sport/001.txt stay apart."""
    found: dict[Path, str] = {}
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in SUPPORTED_SUFFIXES:
                    found.setdefault(child.resolve(), "-".join(child.relative_to(path).parts))
        else:
            found.setdefault(path.resolve(), path.name)
    return found


def load_articles(
    paths: Iterable[Path], max_bytes: int | None = None
) -> Iterator[Article | BadDocument]:
    """Yield an Article or the BadDocument error for each file, so one bad file never stops a batch."""
    manifests: dict[Path, dict[str, dict]] = {}
    for path, name in discover(paths).items():
        try:
            if not path.exists():
                raise BadDocument(str(path), "no such file")
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise BadDocument(str(path), f"unsupported type (use {', '.join(SUPPORTED_SUFFIXES)})")
            if max_bytes is not None and path.stat().st_size > max_bytes:
                raise BadDocument(str(path), f"larger than the {max_bytes}-byte limit")
            if path.parent not in manifests:
                manifests[path.parent] = _manifest_for(path.parent)
            entry = manifests[path.parent].get(path.name)
            meta = entry if isinstance(entry, dict) else {}
            yield parse_article(str(path), path.read_bytes(), meta, doc_id=meta.get("id") or safe_doc_id(name))
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
class FileSource:
    """Files and folders (a folder's `manifest.json` gives titles, outlets and dates)."""

    paths: list[Path]
    max_bytes: int | None = None
    name: str = "files"

    def count(self) -> int:
        """How many inputs articles() will yield (for a progress bar)."""
        return len(discover(self.paths))

    def articles(self) -> Iterator[Article | BadDocument]:
        return load_articles(self.paths, self.max_bytes)
