"""Ask every eval item of every configuration (in process on temporary indexes, or over HTTP) and score it."""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from pydantic import ValidationError

from eval import metrics as m
from eval.dataset import Dataset, Item
from qa.config import Settings

if TYPE_CHECKING:  # the service's imports (Chroma, onnxruntime) load only when a run starts
    from qa.service import Service


class EvalError(Exception):
    """A problem that stops the run (bad configuration, unreachable server); shown as one line."""


class ItemFailed(Exception):
    """One question could not be asked (the run goes on; the item is scored as failed)."""


@dataclass(frozen=True)
class RunConfig:
    """The settings an eval run varies; everything else comes from the base Settings."""

    retriever: str
    chunk_size: int
    chunk_overlap: int
    top_k: int
    candidates: int
    dense_weight: float
    bm25_weight: float
    refusal_threshold: float | None
    max_answer_sentences: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RunConfig:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})

    @property
    def index_key(self) -> tuple[int, int]:
        """What needs its own index: configurations sharing it reuse one."""
        return self.chunk_size, self.chunk_overlap

    def label(self, base: RunConfig) -> str:
        """The fields that differ from the base configuration, or 'default'."""
        short = {"top_k": "k", "chunk_size": "chunk", "chunk_overlap": "overlap", "refusal_threshold": "refusal",
                 "max_answer_sentences": "sentences", "dense_weight": "dense_w", "bm25_weight": "bm25_w"}
        changed = [f"{short.get(f.name, f.name)}={getattr(self, f.name)}" for f in fields(self)
                   if getattr(self, f.name) != getattr(base, f.name)]
        return " ".join(changed) or "default"


def build_grid(base: RunConfig, axes: dict[str, list[dict[str, Any]]], product: bool = True) -> list[RunConfig]:
    """Configurations to run: the cartesian product of the axes, or each axis varied alone around base.

    Each axis value is a dict of field overrides (the weights axis sets two fields at once). The base
    configuration comes first whenever it is part of the grid, and runs sharing an index stay together.
    """
    values = [v for v in axes.values() if v]
    if not values:
        combos: list[dict[str, Any]] = [{}]
    elif product:
        combos = [dict(kv for part in combo for kv in part.items()) for combo in itertools.product(*values)]
    else:
        combos = [{}] + [value for axis in values for value in axis]
    configs = list(dict.fromkeys(RunConfig(**{**asdict(base), **combo}) for combo in combos))
    if base in configs:
        configs.remove(base)
        configs.insert(0, base)
    order = list(dict.fromkeys(c.index_key for c in configs))
    return sorted(configs, key=lambda c: order.index(c.index_key))


def settings_for(base: Settings, overrides: dict[str, Any]) -> Settings:
    """Base settings with overrides, validated like the environment would be."""
    try:
        Settings.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:  # name the field and the rule, in one line
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise EvalError(f"invalid configuration: {detail}") from None
    return base.model_copy(update=overrides)


# --- where questions go ----------------------------------------------------------------------------------

class Target(Protocol):
    """Something that answers like POST /ask (the contract's AnswerOut, as data) and shows the cleaned articles."""

    def ask(self, question: str, k: int, conversation_id: str | None) -> dict[str, Any]: ...

    def article(self, doc_id: str) -> str | None: ...


class Progress(Protocol):
    """Told what is happening and when an item is done (the CLI draws a bar)."""

    def stage(self, text: str) -> None: ...

    def step(self) -> None: ...


class NoProgress:
    def stage(self, text: str) -> None:
        pass

    def step(self) -> None:
        pass


class ServiceTarget:
    """The service in this process."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def ask(self, question: str, k: int, conversation_id: str | None) -> dict[str, Any]:
        return self.service.ask(question, k=k, conversation_id=conversation_id).model_dump(mode="json")

    def article(self, doc_id: str) -> str | None:
        document = self.service.docs.get_document(doc_id)
        return document.text if document else None


class HttpTarget:
    """A running server: POST /ask, GET /documents/{id}."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx
        self.client = httpx.Client(base_url=self.url, timeout=timeout)
        self._articles: dict[str, str | None] = {}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self.client.request(method, path, **kwargs)
        except self._http.HTTPError as exc:
            raise EvalError(f"cannot reach {self.url}{path}: {exc.__class__.__name__}: {exc}") from None

    def health(self) -> dict[str, Any]:
        response = self._call("GET", "/health")
        if response.status_code != 200:
            raise EvalError(f"{self.url}/health answered {response.status_code}; is this the QA API?")
        try:
            return response.json()
        except ValueError:
            raise EvalError(f"{self.url}/health did not return JSON; is this the QA API?") from None

    def ask(self, question: str, k: int, conversation_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"question": question, "k": k}
        if conversation_id:
            body["conversation_id"] = conversation_id
        response = self._call("POST", "/ask", json=body)
        if response.status_code != 200:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text[:200]
            raise ItemFailed(f"POST /ask answered {response.status_code}: {message}")
        from pydantic import ValidationError

        from qa.contract import AnswerOut

        try:
            return AnswerOut.model_validate_json(response.content).model_dump(mode="json")
        except ValidationError as exc:
            raise ItemFailed(f"POST /ask answered a body outside the contract: {exc.errors()[0]['msg']}") from None

    def article(self, doc_id: str) -> str | None:
        if doc_id not in self._articles:
            response = self._call("GET", f"/documents/{quote(doc_id, safe='')}")
            self._articles[doc_id] = response.json().get("text") if response.status_code == 200 else None
        return self._articles[doc_id]

    def close(self) -> None:
        self.client.close()


# --- asking and scoring ----------------------------------------------------------------------------------

def error_result(message: str) -> dict[str, Any]:
    """What an item that could not be asked is scored as."""
    return {"answer": "", "refused": False, "citations": [], "passages": [], "timings_ms": {}, "error": message}


def run_items(target: Target, dataset: Dataset, k: int, progress: Progress) -> list[dict[str, Any]]:
    """Ask the questions, then each dialog's turns in one conversation; score every answer."""
    from qa.errors import QAError

    records: list[dict[str, Any]] = []

    def ask(item: Item, conversation_id: str | None) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            result = target.ask(item.question, k, conversation_id)
        except (ItemFailed, QAError) as exc:
            result = error_result(str(exc))
        records.append(m.score_item(item, result, k, target.article, time.perf_counter() - started))
        progress.step()
        return result

    for item in dataset.questions:
        ask(item, None)
    for dialog in dataset.dialogs:
        conversation_id = None
        for turn in dialog.turns:
            conversation_id = ask(turn, conversation_id).get("conversation_id") or conversation_id
    return records


# --- runs ------------------------------------------------------------------------------------------------

@dataclass
class ConfigRun:
    """One configuration's records and summary."""

    label: str
    config: dict[str, Any]
    k: int
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    seconds: dict[str, float]


@contextmanager
def _index(base: Settings, config: RunConfig, seeds: Sequence[Path], root: Path, progress: Progress,
           index_dir: Path | None, save_index: Path | None = None) -> Iterator[Path]:
    """A data folder holding the seeds chunked as `config` says (temporary, or kept in `save_index`), or the
    given existing one."""
    if index_dir is not None:
        yield index_dir
        return
    from qa.errors import QAError
    from qa.service import build_service

    data_dir = save_index or root / f"index-{config.chunk_size}-{config.chunk_overlap}"
    progress.stage(f"indexing seeds (chunk {config.chunk_size}/{config.chunk_overlap})")
    settings = settings_for(base, {**asdict(config), "data_dir": data_dir, "chroma_url": None})
    try:
        report = build_service(settings).ingest_paths(seeds)
    except QAError as exc:
        raise EvalError(f"could not index the seeds: {exc}") from None
    if not (report.added or report.unchanged):
        raise EvalError(f"no article could be indexed from {', '.join(map(str, seeds))}")
    yield data_dir


def run_in_process(
    dataset: Dataset, configs: Sequence[RunConfig], base: Settings, seeds: Sequence[Path],
    progress: Progress | None = None, index_dir: Path | None = None, save_index: Path | None = None,
) -> list[ConfigRun]:
    """Each configuration on a temporary index of the seeds (one per chunking; kept in `save_index` when given,
    for later runs with `index_dir`), or on `index_dir` as it is."""
    from qa.service import build_service

    progress = progress or NoProgress()
    default = RunConfig.from_settings(base)
    runs: list[ConfigRun] = []
    with tempfile.TemporaryDirectory(prefix="qa-eval-") as tmp:
        for _key, same_index in itertools.groupby(configs, key=lambda c: c.index_key):
            group = list(same_index)
            started = time.perf_counter()
            with _index(base, group[0], seeds, Path(tmp), progress, index_dir, save_index) as data_dir:
                index_seconds = time.perf_counter() - started
                for config in group:
                    label = config.label(default)
                    progress.stage(label)
                    started = time.perf_counter()
                    settings = settings_for(base, {**asdict(config), "data_dir": data_dir,
                                                   **({} if index_dir else {"chroma_url": None})})
                    service = build_service(settings)
                    service.startup()
                    service.retriever.retrieve("warm-up", config.top_k)  # cold caches are not this config's latency
                    records = run_items(ServiceTarget(service), dataset, config.top_k, progress)
                    seconds = {"index": round(index_seconds, 2), "ask": round(time.perf_counter() - started, 2)}
                    index_seconds = 0.0
                    described = {**asdict(config), "answer_mode": service.answerer.name,
                                 "chunks": service.docs.count()[1]}
                    runs.append(ConfigRun(label, described,
                                          config.top_k, records, m.summarise(records, config.top_k), seconds))
    return runs


def run_http(dataset: Dataset, url: str, k: int, progress: Progress | None = None) -> ConfigRun:
    """Every item against a running server."""
    progress = progress or NoProgress()
    target = HttpTarget(url)
    try:
        health = target.health()
        progress.stage(f"asking {target.url}")
        started = time.perf_counter()
        records = run_items(target, dataset, k, progress)
    finally:
        target.close()
    config = {"url": target.url, "top_k": k, "answer_mode": health.get("answer_mode"),
              "documents": health.get("documents"), "chunks": health.get("chunks")}
    return ConfigRun(f"server k={k}", config, k, records, m.summarise(records, k),
                     {"index": 0.0, "ask": round(time.perf_counter() - started, 2)})
