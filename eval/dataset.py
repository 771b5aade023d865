"""Load the hand-written eval items (questions and multi-turn dialogs) and reject malformed lines clearly."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS_DIR = "corpus"  # an eval set with articles of its own keeps them here (with a manifest.json)
CORPUS_LIST = "corpus.txt"  # or lists files of an installed package here (eval/bbc: see eval/corpus.py)
QUESTIONS_FILE = "questions.jsonl"
DIALOGS_FILE = "dialogs.jsonl"


EXPECTATIONS = frozenset({"starts_with", "contains_all", "earlier", "disagreement"})


class DatasetError(ValueError):
    """A data file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Item:
    """One question with its gold answers and the verbatim evidence quotes that make a passage relevant."""

    id: str
    question: str
    answers: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    answerable: bool = True
    kind: str = "fact"
    dialog: str | None = None  # the dialog id for a turn of a conversation
    turn: int = 0  # 0 for the first (or only) turn; follow-ups are 1, 2, ...
    # How the answer must read beyond holding a gold answer (eval/news): starts_with, contains_all, earlier,
    # disagreement. Scored as the `behaviour_ok` metric.
    expect: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Dialog:
    """Turns asked in order within one conversation."""

    id: str
    turns: tuple[Item, ...]


@dataclass
class Dataset:
    """Everything to ask: standalone questions and dialogs, with the files they came from."""

    questions: list[Item] = field(default_factory=list)
    dialogs: list[Dialog] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def items(self) -> list[Item]:
        """Every item, dialog turns included, in asking order."""
        return self.questions + [turn for dialog in self.dialogs for turn in dialog.turns]


def _strings(value: Any, where: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise DatasetError(f"{where}: '{name}' must be a list of non-empty strings")
    return tuple(value)


def parse_item(data: Any, where: str, *, item_id: str | None = None, dialog: str | None = None,
               turn: int = 0) -> Item:
    """One question object -> Item (ids of dialog turns are given by the caller)."""
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: expected a JSON object")
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DatasetError(f"{where}: missing or empty 'question'")
    item_id = item_id or data.get("id")
    if not isinstance(item_id, str) or not item_id.strip():
        raise DatasetError(f"{where}: missing 'id'")
    answers = _strings(data.get("answers"), where, "answers")
    evidence = _strings(data.get("evidence"), where, "evidence")
    answerable = data.get("answerable", bool(answers or evidence))
    if not isinstance(answerable, bool):
        raise DatasetError(f"{where}: 'answerable' must be true or false")
    if answerable and not evidence:
        raise DatasetError(f"{where}: an answerable item needs at least one 'evidence' quote")
    if not answerable and (answers or evidence):
        raise DatasetError(f"{where}: an unanswerable item must have no answers or evidence")
    expect = data.get("expect") or {}
    if not isinstance(expect, dict) or not set(expect) <= EXPECTATIONS:
        raise DatasetError(f"{where}: 'expect' must be an object with keys among {', '.join(sorted(EXPECTATIONS))}")
    default_kind = ("dialog-followup" if turn else "dialog-first") if dialog else "fact"
    kind = data.get("kind") or (default_kind if answerable else "unanswerable")
    return Item(item_id, question.strip(), answers, evidence, _strings(data.get("doc_ids"), where, "doc_ids"),
                answerable, str(kind), dialog, turn, expect)


def _lines(path: Path) -> Iterable[tuple[str, Any]]:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise DatasetError(f"no such data file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: invalid JSON ({exc.msg})") from None


def _data_files(folder: Path) -> list[Path]:
    return [folder / name for name in (QUESTIONS_FILE, DIALOGS_FILE) if (folder / name).is_file()]


def expand(paths: Iterable[Path]) -> list[Path]:
    """Folders become their questions/dialogs files (or, when they hold none, those of their subfolders, e.g.
    eval/news/tune and eval/news/check); files are kept as given."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            files = _data_files(path) or [f for sub in sorted(path.iterdir()) if sub.is_dir()
                                          for f in _data_files(sub)]
            if not files:
                raise DatasetError(f"{path} holds neither {QUESTIONS_FILE} nor {DIALOGS_FILE}")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise DatasetError(f"no such data file or folder: {path}")
    return found


def corpus_for(paths: Iterable[Path]) -> list[Path]:
    """The articles an eval set brings: a `corpus` folder, or a `corpus.txt` list of package files (eval/bbc),
    beside its data files or one level up (eval/news/corpus serves eval/news, eval/news/tune and
    eval/news/check; eval/bbc/corpus.txt serves eval/bbc/tune). Empty when none has one."""
    found: list[Path] = []
    for path in paths:
        folder = path if path.is_dir() else path.parent
        for candidate in (folder / CORPUS_DIR, folder / CORPUS_LIST, folder.parent / CORPUS_DIR,
                          folder.parent / CORPUS_LIST):
            if candidate.is_dir() if candidate.name == CORPUS_DIR else candidate.is_file():
                if candidate not in found:
                    found.append(candidate)
                break
    return found


def load_dataset(paths: Iterable[Path]) -> Dataset:
    """Read jsonl files; a line with 'turns' is a dialog, any other line a question."""
    dataset = Dataset()
    seen: set[str] = set()
    for path in expand(paths):
        dataset.files.append(str(path))
        for where, data in _lines(path):
            if isinstance(data, dict) and "turns" in data:
                dialog = _parse_dialog(data, where)
                ids = [dialog.id] + [t.id for t in dialog.turns]
                dataset.dialogs.append(dialog)
            else:
                item = parse_item(data, where)
                ids = [item.id]
                dataset.questions.append(item)
            for item_id in ids:
                if item_id in seen:
                    raise DatasetError(f"{where}: duplicate id '{item_id}'")
                seen.add(item_id)
    if not dataset.questions and not dataset.dialogs:
        raise DatasetError(f"no eval items in {', '.join(dataset.files) or 'the given paths'}")
    return dataset


def _parse_dialog(data: dict, where: str) -> Dialog:
    dialog_id = data.get("id")
    turns = data.get("turns")
    if not isinstance(dialog_id, str) or not dialog_id.strip():
        raise DatasetError(f"{where}: dialog without 'id'")
    if not isinstance(turns, list) or not turns:
        raise DatasetError(f"{where}: 'turns' must be a non-empty list")
    items = tuple(
        parse_item(turn, f"{where} turn {i + 1}", item_id=f"{dialog_id}.{i + 1}", dialog=dialog_id, turn=i)
        for i, turn in enumerate(turns)
    )
    return Dialog(dialog_id, items)
