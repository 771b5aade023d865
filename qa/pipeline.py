"""build_pipeline(settings): the one place where the parts are created and wired together."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.answer import Answer, Answerer, ExtractiveAnswerer
from qa.chat import ConversationStore, Turn, llm_messages, offline_standalone
from qa.config import Settings
from qa.docstore import DocStore
from qa.documents import BadDocument, discover, load_articles, parse_article, safe_doc_id
from qa.embeddings import build_embedder
from qa.entities import Gazetteer
from qa.errors import BadRequest, LLMUnavailable, NotFound, QAError, StoreUnavailable
from qa.index import Chunker, Indexer, IngestReport
from qa.keyword import KeywordIndex
from qa.llm import LLMAnswerer, make_client
from qa.retrieve import Filters, Retrieval, Retriever
from qa.vectors import VectorStore

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class PathNotAllowed(QAError):
    """A server-side path that resolves outside QA_INGEST_ROOT, or path ingest is disabled."""

    status_code = 403


def _unknown_document(doc_id: str) -> NotFound:
    shown = doc_id if len(doc_id) <= 100 else doc_id[:100] + "…"  # an error message, not an echo service
    return NotFound(f"no document with id '{shown}'")


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


@dataclass
class Pipeline:
    """Everything a request needs: retrieval, answering, conversations, ingestion."""

    settings: Settings
    docs: DocStore
    indexer: Indexer
    retriever: Retriever
    extractive: ExtractiveAnswerer
    llm: LLMAnswerer | None
    conversations: ConversationStore

    @property
    def answerer(self) -> Answerer:
        return self.llm if (self.llm and self.settings.use_llm) else self.extractive

    def clean_question(self, question: str) -> str:
        """Strip control characters and whitespace; refuse empty or over-long questions."""
        if not isinstance(question, str):
            raise BadRequest("question must be a string")
        question = _CONTROL.sub(" ", question).strip()
        if not question:
            raise BadRequest("question is empty")
        if len(question) > self.settings.max_question_chars:
            raise BadRequest(f"question is longer than {self.settings.max_question_chars} characters")
        return question

    def _check_k(self, k: int | None) -> int:
        k = self.settings.top_k if k is None else k
        if not 1 <= k <= 50:
            raise BadRequest("k must be between 1 and 50")
        return k

    def standalone(self, question: str, history: list[Turn]) -> str:
        """The question made self-contained using the conversation so far."""
        if not history:
            return question
        if self.llm and self.settings.use_llm:
            try:
                rewritten = self.llm.complete(llm_messages(question, history), max_tokens=100).strip()
                if rewritten and len(rewritten) <= 4 * len(question) + 400:
                    return rewritten
            except LLMUnavailable:
                pass  # the offline rule below is the fallback
        return offline_standalone(question, history)

    def _prepare(
        self, question: str, k: int | None, filters: Filters | None, conversation_id: str | None
    ) -> tuple[str, str, str, int, Retrieval, dict[str, float]]:
        started = time.perf_counter()
        question = self.clean_question(question)
        k = self._check_k(k)
        conversation_id = self.conversations.resolve_id(conversation_id)
        history = self.conversations.history(conversation_id)
        standalone = self.standalone(question, history)
        rewritten = time.perf_counter()
        retrieval = self.retriever.retrieve(standalone, k, filters)
        timings = {"rewrite": _ms(rewritten - started), "retrieve": _ms(time.perf_counter() - rewritten)}
        return question, standalone, conversation_id, k, retrieval, timings

    def _fallback(self, question: str, retrieval: Retrieval, error: LLMUnavailable) -> Answer:
        if not self.settings.llm_fallback:
            raise error
        answer = self.extractive.answer(question, retrieval)
        answer.notice = f"{error} — showing an extractive answer from the articles instead."
        return answer

    def _result(
        self, question: str, standalone: str, conversation_id: str, retrieval: Retrieval, answer: Answer,
        timings: dict[str, float], started: float, mode: str,
    ) -> dict[str, Any]:
        self.conversations.add(conversation_id, Turn(question, standalone, answer.text))
        timings["total"] = _ms(time.perf_counter() - started)
        return {
            "question": question,
            "standalone_question": standalone,
            "answer": answer.text,
            "refused": answer.refused,
            "citations": answer.public_citations(),
            "passages": [p.public() for p in retrieval.passages],
            "conversation_id": conversation_id,
            "mode": mode,
            "notice": answer.notice,
            "timings_ms": timings,
        }

    def ask(
        self, question: str, k: int | None = None, filters: Filters | None = None,
        conversation_id: str | None = None,
    ) -> dict[str, Any]:
        """Answer one question (a turn of a conversation when conversation_id is given)."""
        started = time.perf_counter()
        question, standalone, conversation_id, k, retrieval, timings = self._prepare(
            question, k, filters, conversation_id
        )
        answering = time.perf_counter()
        answerer = self.answerer
        try:
            answer = answerer.answer(standalone, retrieval)
            mode = answerer.name
        except LLMUnavailable as error:
            answer, mode = self._fallback(standalone, retrieval, error), "extractive"
        timings["answer"] = _ms(time.perf_counter() - answering)
        return self._result(question, standalone, conversation_id, retrieval, answer, timings, started, mode)

    def stream(
        self, question: str, k: int | None = None, filters: Filters | None = None,
        conversation_id: str | None = None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The same answer as ask(), as events: sources, then tokens, then done (or error)."""
        started = time.perf_counter()
        question, standalone, conversation_id, k, retrieval, timings = self._prepare(
            question, k, filters, conversation_id
        )
        yield "sources", {
            "question": question, "standalone_question": standalone, "conversation_id": conversation_id,
            "passages": [p.public() for p in retrieval.passages],
        }
        answering = time.perf_counter()
        answerer = self.answerer
        answer: Answer | None = None
        mode = answerer.name
        sent_tokens = False
        try:
            for item in answerer.stream(standalone, retrieval):
                if isinstance(item, Answer):
                    answer = item
                else:
                    sent_tokens = True
                    yield "token", {"text": item}
        except LLMUnavailable as error:
            if sent_tokens or not self.settings.llm_fallback:
                yield "error", {"error": str(error), "status": error.status_code}
                return
            answer, mode = self._fallback(standalone, retrieval, error), "extractive"
            for token in re.findall(r"\S+\s*|\s+", answer.text):
                yield "token", {"text": token}
        assert answer is not None
        timings["answer"] = _ms(time.perf_counter() - answering)
        yield "done", self._result(question, standalone, conversation_id, retrieval, answer, timings, started, mode)

    def ingest_paths(self, paths: Iterable[Path], progress: Callable[[str], None] | None = None) -> IngestReport:
        """Ingest files and folders from disk (the CLI path)."""
        return self.indexer.ingest(load_articles(paths, self.settings.max_upload_bytes), progress)

    def resolve_under_root(self, paths: list[str]) -> list[Path]:
        """Resolve server-side paths (symlinks followed), refusing any that lead outside QA_INGEST_ROOT."""
        if self.settings.ingest_root is None:
            raise PathNotAllowed("path ingest is disabled on this server (QA_INGEST_ROOT is not set)")
        root = self.settings.ingest_root.resolve()
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

    def ingest_under_root(self, paths: list[str]) -> IngestReport:
        """Ingest server-side files or folders, all of which must resolve inside QA_INGEST_ROOT (HTTP API)."""
        return self.ingest_paths(self.resolve_under_root(paths))

    def ingest_files(self, files: list[tuple[str, bytes]], meta: dict[str, dict] | None = None) -> IngestReport:
        """Ingest uploaded files; each file name becomes the document id."""
        items: list[Any] = []
        for name, data in files:
            try:
                if len(data) > self.settings.max_upload_bytes:
                    raise BadDocument(name, f"larger than the {self.settings.max_upload_bytes}-byte limit")
                doc_id = safe_doc_id(name)
                items.append(parse_article(name, data, (meta or {}).get(name) or (meta or {}).get(doc_id)))
            except BadDocument as exc:
                items.append(exc)
        return self.indexer.ingest(items)

    def delete(self, doc_id: str) -> None:
        if not self.indexer.delete(doc_id):
            raise _unknown_document(doc_id)

    def get_document(self, doc_id: str) -> dict[str, Any]:
        document = self.docs.get_document(doc_id)
        if document is None:
            raise _unknown_document(doc_id)
        return document

    def startup(self) -> None:
        """Repair a crashed ingest and bring the keyword index up to date before serving."""
        if self.docs.pending() or self.indexer.keyword.saved_generation() != self.docs.generation():
            self.indexer.recover()

    def health(self) -> dict[str, Any]:
        """Counts and configuration; status "degraded" (with the error) while the vector store is unreachable."""
        docs, chunks = self.docs.count()
        status: dict[str, Any] = {"status": "ok"}
        try:
            vectors: int | None = self.indexer.store.check()
        except StoreUnavailable as exc:
            vectors, status = None, {"status": "degraded", "error": str(exc)}
        return {
            **status, "documents": docs, "chunks": chunks, "vectors": vectors,
            "store": "server" if self.indexer.store.is_server else "embedded",
            "embed_model": self.indexer.embed_model, "llm_configured": self.settings.llm_configured,
            "answer_mode": self.answerer.name, "max_question_chars": self.settings.max_question_chars,
        }


def build_pipeline(settings: Settings) -> Pipeline:
    """Create every part from settings; nothing here reads globals or downloads anything."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    embedder = build_embedder(settings)
    store = VectorStore(embedder.model_name, settings.collection, data_dir, settings.chroma_url)
    docs = DocStore(data_dir / "docstore.sqlite")
    keyword = KeywordIndex(data_dir / "bm25")
    indexer = Indexer(store, docs, keyword, embedder, Chunker(settings.chunk_size, settings.chunk_overlap),
                      data_dir / "ingest.lock")
    retriever = Retriever(
        store, docs, keyword, embedder, mode=settings.retriever, candidates=settings.candidates,
        rrf_k=settings.rrf_k, dense_weight=settings.dense_weight, bm25_weight=settings.bm25_weight,
    )
    extractive = ExtractiveAnswerer(
        docs, embedder.embed, settings.refusal_threshold, Gazetteer(), settings.max_answer_sentences
    )
    llm = LLMAnswerer(make_client(settings), settings.llm_model) if settings.llm_configured else None
    conversations = ConversationStore(data_dir / "conversations.sqlite", settings.history_turns)
    return Pipeline(settings, docs, indexer, retriever, extractive, llm, conversations)
