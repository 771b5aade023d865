"""The one place where the stages are created from Settings and composed: sources -> indexing -> store ->
retrieval -> answering, with conversations around them. The CLI, the HTTP API and `qa eval` all use it."""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from pydantic import ValidationError

from qa.answering import AnswerChain, AnswerContext, build_answerer, chain_names
from qa.config import Settings
from qa.contract import (
    AnswerOut,
    ConversationList,
    ConversationOut,
    ConversationSummary,
    ConversationTurnOut,
    CopyOut,
    DocumentOut,
    FeedbackOut,
    HealthOut,
    IngestReportOut,
    JobOut,
    PassageOut,
    SourcesEvent,
    StreamError,
    TokenEvent,
    UrlOutcomeOut,
)
from qa.conversations import (
    LOCAL_CLIENT,
    Conversations,
    ConversationStore,
    Limits,
    LLMRewriter,
    OfflineRewriter,
    QuestionRewriter,
    Turn,
)
from qa.conversations.feedback import Feedback, Feedbacks, FeedbackStore
from qa.cpu import CpuPool
from qa.db import Database, sqlite_url
from qa.db.schema import CONVERSATIONS, DOCUMENTS, EVERY_GROUP, JOBS, SHARED, VALIDATORS
from qa.embedding import build_embedder
from qa.errors import (
    DATA_FOLDER_FULL,
    AnswererUnavailable,
    BadRequest,
    NotFound,
    QAError,
    StorageFull,
    StoreUnavailable,
    is_disk_full,
)
from qa.indexing.chunking import Chunker
from qa.indexing.fill import SpanFill
from qa.indexing.indexer import Indexer, IngestReport
from qa.indexing.progress import IngestProgress
from qa.jobs import Jobs, JobStore
from qa.retrieval import Filters, Passage, Retrieval, Retriever, build_retriever
from qa.sources import FileSource, Landed, Source, SourceContext, UploadSource, UrlSource
from qa.sources.files import resolve_under_root
from qa.sources.lifecycle import in_process
from qa.sources.web import SqlValidatorCache, ValidatorCache
from qa.store import DocumentStore, VectorIndex, WriterLock
from qa.store.chroma import ChromaIndex
from qa.store.documents import SqlStore
from qa.store.keys import CLIENT_KEY, SharedKeys
from qa.store.layout import DataLayout
from qa.store.locks import AdvisoryLock, FileLock

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
TURN_NOT_KEPT = "This turn was not kept (the data folder is full): a follow-up question cannot refer to it."
FULL_BELOW_BYTES = 1_000_000  # /health says the data folder is full with less free space than this
StreamEvent = tuple[str, SourcesEvent | TokenEvent | AnswerOut | StreamError]


def _unknown_document(doc_id: str) -> NotFound:
    shown = doc_id if len(doc_id) <= 100 else doc_id[:100] + "…"  # an error message, not an echo service
    return NotFound(f"no document with id '{shown}'")


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def clean_question(question: str, max_chars: int) -> str:
    """Strip control characters and whitespace; refuse empty or over-long questions."""
    if not isinstance(question, str):
        raise BadRequest("question must be a string")
    question = unicodedata.normalize("NFC", _CONTROL.sub(" ", question)).strip()  # as article text is stored
    if not question:
        raise BadRequest("question is empty")
    if len(question) > max_chars:
        raise BadRequest(f"question is longer than {max_chars} characters")
    return question


@contextmanager
def _writing() -> Iterator[None]:
    """A write that fails because the disk is full says so (StorageFull, 507), whichever store raised it."""
    try:
        yield
    except StorageFull:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise StorageFull() from exc
        raise


@dataclass
class _Prepared:
    question: str
    standalone: str
    conversation_id: str
    client: str
    retrieval: Retrieval
    timings: dict[str, float]
    started: float
    replace: int | None = None  # the kept turn this answer replaces, with every later one (an edit)


@dataclass
class Service:
    """Everything a request needs, composed from the stages."""

    settings: Settings
    docs: DocumentStore
    vectors: VectorIndex
    indexer: Indexer
    retriever: Retriever
    answerer: AnswerChain
    rewriter: QuestionRewriter
    conversations: Conversations
    feedback: Feedbacks
    layout: DataLayout
    jobs: Jobs
    sources: SourceContext  # what every source is lent: settings, data folder, the store's ids, shared objects
    client_key: Callable[[], bytes]  # the key that signs client tokens, shared by every process on these stores
    cpu: CpuPool | None = None  # the server's worker process for parsing and chunking; None: in-process
    closers: tuple[Callable[[], None], ...] = ()  # what else holds threads or connections (pools), closed last
    fill: SpanFill | None = None  # QA_SENTENCE_VECTORS=background: stores the span vectors an ingest left out

    def close(self) -> None:
        """Stop the background fill, the worker process, the embedder's threads and the database pool (the HTTP
        app's shutdown)."""
        if self.fill:
            self.fill.close()
        if self.cpu:
            self.cpu.close()
        self.sources.close()
        for close in self.closers:
            close()

    # ---- questions ----------------------------------------------------------------------------------------

    def _prepare(
        self, question: str | None, k: int | None, filters: Filters | None, conversation_id: str | None, client: str,
        replace: int | None = None,
    ) -> _Prepared:
        started = time.perf_counter()
        if replace is not None:  # an edit: the turn must be one of the kept ones; no question = ask it again
            if conversation_id is None:
                raise BadRequest("replacing a turn needs its conversation_id")
            kept = self.conversations.get(conversation_id, client).turns
            if not 0 <= replace < len(kept):
                raise NotFound(f"no turn {replace} in this conversation")
            question = kept[replace].question if question is None else question
        question = clean_question(question, self.settings.max_question_chars)  # type: ignore[arg-type]
        k = self.settings.top_k if k is None else k
        if not 1 <= k <= 50:
            raise BadRequest("k must be between 1 and 50")
        conversation_id = self.conversations.resolve_id(conversation_id, client)
        standalone = self.rewriter.standalone(question, self.conversations.history(conversation_id, replace))
        rewritten = time.perf_counter()
        retrieval = self.retriever.retrieve(standalone, k, filters)
        timings = {"rewrite": _ms(rewritten - started), "retrieve": _ms(time.perf_counter() - rewritten)}
        return _Prepared(question, standalone, conversation_id, client, retrieval, timings, started, replace)

    def _answerable(self, question: str, passage: Passage) -> bool:
        """Whether a suggested question finds its source passage: among the keyword index's top 5 (a few ms)."""
        return any(chunk_id == passage.chunk_id for chunk_id, _ in self.docs.keyword_search(question, 5, None))

    def _result(self, prepared: _Prepared, answer: object, answering: float) -> AnswerOut:
        from qa.answering import Answer
        from qa.answering.followups import suggest
        from qa.answering.titles import conversation_title

        assert isinstance(answer, Answer)
        prepared.timings["answer"] = _ms(time.perf_counter() - answering)
        result = self._with_copies(AnswerOut.of(prepared.question, prepared.standalone, prepared.conversation_id,
                                                answer, prepared.retrieval.passages, prepared.timings))
        suggesting = time.perf_counter()
        result.follow_ups = suggest(prepared.question, answer, self._answerable)
        result.timings_ms["follow_ups"] = _ms(time.perf_counter() - suggesting)
        turn = Turn(prepared.question, prepared.standalone, answer.text, result.model_dump_json(),
                    conversation_title(prepared.question, answer))
        try:
            if prepared.replace is not None:
                self.conversations.replace(prepared.conversation_id, prepared.replace, turn, prepared.client)
            else:
                self.conversations.add(prepared.conversation_id, turn, prepared.client)
        except Exception as exc:  # the answer was computed: a full disk costs the history, not the answer
            if not is_disk_full(exc):
                raise
            result.notice = " ".join(filter(None, [result.notice, TURN_NOT_KEPT]))
        result.timings_ms["total"] = _ms(time.perf_counter() - prepared.started)  # the stored copy lacks it
        return result

    def _with_copies(self, result: AnswerOut) -> AnswerOut:
        """Fill each citation's "also reported by" from the store's syndicated copies as they are now."""
        copies = self.docs.copies_of(c.doc_id for c in result.citations)
        for citation in result.citations:
            citation.also_at = [CopyOut.model_validate(c, from_attributes=True)
                                for c in copies.get(citation.doc_id, [])]
        return result

    def ask(
        self, question: str | None, k: int | None = None, filters: Filters | None = None,
        conversation_id: str | None = None, client: str = LOCAL_CLIENT, replace: int | None = None,
    ) -> AnswerOut:
        """Answer one question (a turn of `client`'s conversation when conversation_id is given). With `replace`,
        the answer takes the place of that kept turn and every later one is deleted (an edited question, or
        with no question the same one answered again); until it is complete the conversation is unchanged."""
        prepared = self._prepare(question, k, filters, conversation_id, client, replace)
        answering = time.perf_counter()
        answer = self.answerer.answer(prepared.standalone, prepared.retrieval)
        return self._result(prepared, answer, answering)

    def stream(
        self, question: str | None, k: int | None = None, filters: Filters | None = None,
        conversation_id: str | None = None, client: str = LOCAL_CLIENT, replace: int | None = None,
    ) -> Iterator[StreamEvent]:
        """The same answer as ask(), as events: sources, then tokens, then done (or error). A turn is stored only
        when `done` is produced: a caller that stops reading (closes this generator) leaves no half answer, and
        closing it closes the answerer's stream, so the LLM request is abandoned too. `replace`: as in ask()."""
        prepared = self._prepare(question, k, filters, conversation_id, client, replace)
        yield "sources", SourcesEvent(
            question=prepared.question, standalone_question=prepared.standalone,
            conversation_id=prepared.conversation_id,
            passages=[PassageOut.of(p) for p in prepared.retrieval.passages],
        )
        answering = time.perf_counter()
        try:
            for item in self.answerer.stream(prepared.standalone, prepared.retrieval):
                if isinstance(item, str):
                    yield "token", TokenEvent(text=item)
                    continue
                yield "done", self._result(prepared, item, answering)
        except AnswererUnavailable as error:
            yield "error", StreamError(error=str(error), status=error.status_code)

    # ---- conversations ------------------------------------------------------------------------------------

    def list_conversations(self, client: str) -> ConversationList:
        """The client's conversations, newest first."""
        return ConversationList(conversations=[ConversationSummary.model_validate(c, from_attributes=True)
                                               for c in self.conversations.list_for(client)])

    def get_conversation(self, conversation_id: str, client: str) -> ConversationOut:
        """One of the client's conversations with its turns (NotFound for anyone else's)."""
        stored = self.conversations.get(conversation_id, client)
        turns = []
        for turn in stored.turns:
            try:
                answer = self._with_copies(AnswerOut.model_validate(turn.answer)) if turn.answer else None
            except ValidationError:  # stored by a version with another contract: show the text alone
                answer = None
            turns.append(ConversationTurnOut(question=turn.question, answer_text=turn.answer_text, answer=answer,
                                             created=turn.created))
        return ConversationOut(id=stored.id, created=stored.created, title=stored.title, turns=turns)

    def rename_conversation(self, conversation_id: str, client: str, title: str) -> ConversationSummary:
        return ConversationSummary.model_validate(self.conversations.rename(conversation_id, client, title),
                                                  from_attributes=True)

    def delete_conversation(self, conversation_id: str, client: str) -> None:
        self.conversations.delete(conversation_id, client)

    def add_feedback(self, item: Feedback) -> FeedbackOut:
        """Keep a reader's rating (exported as eval items by `qa feedback export`)."""
        if item.conversation_id is not None:
            self.conversations.get(item.conversation_id, item.client)  # only one's own conversation: else 404
        with _writing():
            return FeedbackOut(id=self.feedback.add(item), rating=item.rating)  # type: ignore[arg-type]

    # ---- documents ----------------------------------------------------------------------------------------

    def bind(self, source: Source) -> Source:
        """Connect a source to what this service lends it (SourceContext); idempotent."""
        source.bind(self.sources)
        return source

    def ingest(self, source: Source, progress: Callable[[str], None] | None = None,
               counted: Callable[[int], None] | None = None, check: bool = False,
               embedded: Callable[[str], None] | None = None) -> IngestReportOut:
        """Ingest what a source yields, through its lifecycle: checked (with `check`), bound, counted (when
        `counted` wants the total), read, indexed, its state kept for what landed, closed. New articles are
        added, changed ones replaced, bad inputs reported. A remote source is read whole before the writer
        lock is taken: no remote site (nor a page that is slow to extract) ever makes another ingest or a
        delete wait; pages are held as cleaned text, at most QA_FETCH_MAX_URLS per feed or sitemap.
        `progress` hears of each input when written, `embedded` of each changed article when embedded."""
        with _writing():
            try:
                if check:
                    source.check()
                self.bind(source)
                if counted:
                    counted(source.count())
                items = source.articles()
                report = self.indexer.ingest(list(items) if source.remote else items, progress, embedded)
                landed = Landed(frozenset([*report.added, *report.replaced, *report.unchanged]),
                                frozenset(report.added), frozenset(report.replaced), dict(report.duplicate),
                                {f.name: f.reason for f in report.failed})
                source.remember(landed)
            finally:
                source.close()
                if self.fill:  # what landed (all of it, or up to a failure) gets its vectors now
                    self.fill.kick()
        out = self._report(report)
        out.urls = [UrlOutcomeOut(url=line.name, status=line.status, doc_id=line.doc_id,  # type: ignore[arg-type]
                                  error=line.error, of=line.of) for line in source.report(landed)]
        return out

    def ingest_urls(self, urls: list[str], progress: Callable[[str], None] | None = None,
                    counted: Callable[[int], None] | None = None) -> IngestReportOut:
        """Ingest feeds, sitemaps and article URLs (HTTP API and `qa ingest URL`). Every URL is vetted first:
        FetchRefused (403) for one that may not be fetched, before anything is."""
        if not urls:
            raise BadRequest("urls is empty")
        return self.ingest(UrlSource(urls, self.settings), progress, counted, check=True)

    def ingest_paths(self, paths: list[Path], progress: Callable[[str], None] | None = None) -> IngestReportOut:
        """Ingest files and folders from disk (the CLI path; a missing one is reported, not refused)."""
        return self.ingest(FileSource(list(paths), self.settings.max_upload_bytes), progress)

    def ingest_under_root(self, paths: list[str]) -> IngestReportOut:
        """Ingest server-side files or folders, all of which must resolve inside QA_INGEST_ROOT (HTTP API)."""
        resolved = resolve_under_root(self.settings.ingest_root, paths)
        return self.ingest(FileSource(resolved, self.settings.max_upload_bytes, single_link=True))

    def ingest_files(self, files: list[tuple[str, bytes]], meta: dict[str, dict] | None = None) -> IngestReportOut:
        """Ingest uploaded files; each file name becomes the document id."""
        return self.ingest(UploadSource(files, self.settings.max_upload_bytes, meta or {}))

    def ingest_urls_job(self, urls: list[str]) -> str:
        """Start ingest_urls on a thread as a job (after vetting every URL); returns its id for GET /jobs."""
        if not urls:
            raise BadRequest("urls is empty")
        source = UrlSource(urls, self.settings)
        try:
            source.check()
        except BaseException:
            source.close()
            raise
        return self.ingest_job(source, "ingest-url")

    def ingest_job(self, source: Source, kind: str) -> str:
        """Ingest a (checked) source on a thread as a job of this kind; returns its id for GET /jobs."""
        job_id = self.jobs.create(kind)
        done = 0

        def work(update: Callable[[int, int | None], None]) -> dict:
            def advanced(_name: str) -> None:
                nonlocal done
                done += 1
                update(done, None)

            return self.ingest(source, advanced, lambda total: update(0, total)).model_dump(mode="json")

        self.jobs.run(job_id, work, lambda exc: DATA_FOLDER_FULL if is_disk_full(exc) else
                      str(exc) if isinstance(exc, QAError) else "internal error")
        return job_id

    def job(self, job_id: str) -> JobOut:
        found = self.jobs.get(job_id)
        if found is None:
            raise NotFound(f"no job with id '{job_id[:100]}'")
        return JobOut.model_validate(found, from_attributes=True)

    @staticmethod
    def _report(report: IngestReport) -> IngestReportOut:
        return IngestReportOut.model_validate(report.as_dict())

    def delete(self, doc_id: str) -> None:
        with _writing():
            deleted = self.indexer.delete(doc_id)
        if not deleted:
            raise _unknown_document(doc_id)

    def get_document(self, doc_id: str) -> DocumentOut:
        document = self.docs.get_document(doc_id)
        if document is None:
            raise _unknown_document(doc_id)
        return DocumentOut.model_validate(document, from_attributes=True)

    # ---- operations ---------------------------------------------------------------------------------------

    def startup(self) -> None:
        """Repair a crashed ingest and delete idle conversations before serving."""
        if self.docs.pending():
            self.indexer.recover()
        self.docs.keyword_catch_up()  # replay what the keyword index has not applied (rebuild it when missing)
        self.conversations.sweep()  # QA_CONVERSATION_RETENTION_DAYS; writes sweep again at most hourly

    def start_background(self) -> None:
        """The serving process's background work (after startup()): the fill of span vectors, which resumes
        whatever an earlier process left. CLI commands do not start it (`qa ingest` leaves the fill to the
        server, so its own CPU stays the chunks' alone; `qa ask` embeds what it reads, as `lazy`)."""
        if self.fill:
            self.fill.start()

    def health(self) -> HealthOut:
        """Counts and configuration; status "degraded" (with the error) while a store is unreachable."""
        status, error = "ok", None
        docs: int | None
        chunks: int | None
        ingest = None
        try:
            docs, chunks = self.docs.count()
            ingest = self.indexer.progress.read()
        except StoreUnavailable as exc:
            docs = chunks = None
            status, error = "degraded", str(exc)
        try:
            vectors: int | None = self.vectors.check()
        except StoreUnavailable as exc:
            vectors, status, error = None, "degraded", error or str(exc)
        if vectors is not None and chunks is not None and vectors != chunks and ingest is None:
            status, error = "degraded", error or (f"the vector store holds {vectors} vectors for {chunks} chunks; "
                                                  "restart the server to repair the index")
        if self.layout.free_bytes() < FULL_BELOW_BYTES:
            status, error = "degraded", error or DATA_FOLDER_FULL
        return HealthOut(
            status=status, error=error, documents=docs, chunks=chunks, vectors=vectors,
            store="server" if self.vectors.is_server else "embedded", embed_model=self.vectors.embed_model,
            llm_configured=self.settings.llm_configured, answer_mode=self.answerer.name,
            max_question_chars=self.settings.max_question_chars, ingest=ingest,
            spans_waiting=self.fill.waiting if self.fill else None,
        )


@dataclass
class _SqlSide:
    """What lives in the SQL layer: documents, conversations, feedback, jobs, the running ingest's progress, the
    client-token key and the web validators; with the writer lock, the one part that differs by database."""

    docs: DocumentStore
    conversations: Conversations
    feedback: Feedbacks
    jobs: Jobs
    lock: WriterLock
    progress: IngestProgress
    client_key: Callable[[], bytes]
    validators: Callable[[], ValidatorCache]
    close: Callable[[], None]


def _limits(settings: Settings) -> Limits:
    """Retention and quotas of the conversation store (QA_CONVERSATION_RETENTION_DAYS, QA_MAX_*)."""
    return Limits(settings.conversation_retention_days, settings.max_conversations_per_client,
                  settings.max_stored_turns)


def databases(settings: Settings, layout: DataLayout, upgrade: bool = True) -> dict[str, Database]:
    """The SQL layer's databases, by the group of tables each holds: SQLite files in the data folder (the
    default; a file per group, so a chat never waits for an ingest's write: docstore.sqlite also holds the
    ingest progress and the shared keys), or one PostgreSQL database (QA_DATABASE_URL) holding every group.
    Each is brought up to this release's schema as it opens (`upgrade`). The SQLite validators file is opened
    only when it exists (web sources open it on first use)."""
    if settings.database_url is not None:
        database = Database(settings.database_url.get_secret_value(), EVERY_GROUP, upgrade=upgrade)
        return dict.fromkeys(sorted(EVERY_GROUP), database)
    documents = Database(sqlite_url(layout.documents), frozenset({DOCUMENTS, SHARED}), upgrade=upgrade)
    found = {DOCUMENTS: documents, SHARED: documents,
             CONVERSATIONS: Database(sqlite_url(layout.conversations), frozenset({CONVERSATIONS}), upgrade=upgrade),
             JOBS: Database(sqlite_url(layout.jobs), frozenset({JOBS}), upgrade=upgrade)}
    if layout.web_cache.exists():
        found[VALIDATORS] = _validators_file(layout, upgrade)
    return found


def _validators_file(layout: DataLayout, upgrade: bool = True) -> Database:
    return Database(sqlite_url(layout.web_cache), frozenset({VALIDATORS}), upgrade=upgrade)


def _sql_side(settings: Settings, layout: DataLayout) -> _SqlSide:
    """One class per role on the databases of `databases()`; the writer lock is a file lock in the data folder,
    or an advisory lock in PostgreSQL."""
    sql = databases(settings, layout)
    if settings.database_url is None:
        lock: FileLock | AdvisoryLock = FileLock(layout.ingest_lock)
        keyword_dir = layout.keyword_index
    else:
        url = settings.database_url.get_secret_value()
        lock, keyword_dir = AdvisoryLock(url), layout.replica_keyword_index(url)

    def validators() -> ValidatorCache:
        if VALIDATORS not in sql:
            sql[VALIDATORS] = _validators_file(layout)
        return SqlValidatorCache(sql[VALIDATORS])

    def close() -> None:
        for database in dict.fromkeys(sql.values()):
            database.close()

    keys = SharedKeys(sql[SHARED])
    return _SqlSide(SqlStore(sql[DOCUMENTS], keyword_dir),
                    ConversationStore(sql[CONVERSATIONS], settings.history_turns, settings.conversation_turns,
                                      _limits(settings)),
                    FeedbackStore(sql[CONVERSATIONS], settings.max_feedback), JobStore(sql[JOBS]), lock,
                    IngestProgress(sql[SHARED], lock), lambda: keys.get(CLIENT_KEY), validators, close)


def build_service(settings: Settings, cpu_worker: bool = False) -> Service:
    """Create every stage from settings; nothing here reads globals or downloads anything. With `cpu_worker`
    (the HTTP server) parsing and chunking run in a worker process, off the server's GIL."""
    cpu = CpuPool() if cpu_worker else None
    if cpu:
        cpu.warm(("qa.sources.uploads", "qa.sources.files", "qa.indexing.indexer", "qa.answering.enrichments"))
    layout = DataLayout(settings.data_dir).create()
    embedder = build_embedder(settings)
    vectors = ChromaIndex(embedder.model_name, settings.collection, layout.chroma, settings.chroma_url)
    sql = _sql_side(settings, layout)
    docs = sql.docs
    llm = None
    if settings.llm_configured:
        from qa.answering.llm import ChatModel, make_client

        llm = ChatModel(make_client(settings), settings.llm_model, settings.llm_deadline, settings.llm_max_tokens,
                        settings.llm_max_reply_bytes, settings.llm_max_retries)
    from qa.answering.refusal import RefusalPolicy

    policy = RefusalPolicy.of(settings.refusal_threshold)
    context = AnswerContext(settings, docs, embedder, llm, policy)
    answerer = AnswerChain([build_answerer(name, context) for name in chain_names(settings)], policy)
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    indexer = Indexer(vectors, docs, embedder, chunker, sql.lock, sql.progress, answerer.enrichments,
                      run=cpu.run_if_large if cpu else None)
    kinds = [e.kind for e in answerer.enrichments]
    retriever = build_retriever(settings, vectors, docs, embedder, kinds[0] if kinds else None)
    rewriter: QuestionRewriter = (LLMRewriter(partial(llm.complete, deadline=settings.llm_rewrite_deadline))
                                  if llm and settings.use_llm else OfflineRewriter())
    sources = SourceContext(settings, layout.root, lambda doc_id: docs.content_hash(doc_id) is not None,
                            cpu.run_if_large if cpu else in_process, sql.validators)
    closers = (sql.close, *((embedder.close,) if hasattr(embedder, "close") else ()))
    filled = [e.kind for e in answerer.enrichments if getattr(e, "fill", False)]
    fill = SpanFill(docs, embedder.embed, filled) if filled else None
    return Service(settings, docs, vectors, indexer, retriever, answerer, rewriter, sql.conversations, sql.feedback,
                   layout, sql.jobs, sources, sql.client_key, cpu, closers, fill)


def feedback_store(settings: Settings) -> Feedbacks:
    """Where readers' ratings are kept: beside the conversations (SQLite), or in PostgreSQL."""
    layout = DataLayout(settings.data_dir).create()
    return FeedbackStore(databases(settings, layout)[CONVERSATIONS])


def reset_index(settings: Settings) -> None:
    """Delete the configured collection and every indexed article (conversations are kept)."""
    layout = DataLayout(settings.data_dir).create()
    ChromaIndex("", settings.collection, layout.chroma, settings.chroma_url).reset()
    _sql_side(settings, layout).docs.reset()
