"""FastAPI app: create_app() builds the service once (lifespan) and routes reach it through a dependency.
Every body it returns is a model of qa.contract, declared as the route's response model."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.clients import ClientToken, ClientTokens, WriteKey
from api.models import AskIn, FeedbackIn, IngestPathsIn, IngestUrlsIn, RenameIn
from qa.config import Settings, load_settings
from qa.contract import (
    AnswerOut,
    ConversationList,
    ConversationOut,
    ConversationSummary,
    DeletedOut,
    DocumentList,
    DocumentOut,
    DocumentSummary,
    ErrorOut,
    FeedbackOut,
    HealthOut,
    IngestReportOut,
    JobOut,
    dump,
)
from qa.conversations.feedback import Feedback
from qa.errors import DATA_FOLDER_FULL, QAError, is_disk_full
from qa.service import Service, build_service

STATIC = Path(__file__).parent / "static"
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
log = logging.getLogger("qa.api")

ERROR_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing or invalid API key",
    403: "Server-side path outside QA_INGEST_ROOT, path ingest disabled, or a URL that may not be fetched "
         "(not http(s), or a loopback/private/reserved host)",
    404: "Unknown document, or a conversation that does not exist or is not this client's",
    409: "The index was built with another embedding model",
    413: "Request body too large",
    422: "Invalid input (which field, and why)",
    500: "Internal error (details are logged, never returned)",
    503: "A dependency (vector store, LLM, embedding service) is unavailable",
    507: "The data folder is full, or QA_MAX_FEEDBACK ratings are kept (nothing was written)",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for a route's error responses, all with the ErrorOut body (500 on every route)."""
    return {code: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[code]} for code in (*codes, 500, 507)}


def _one_of(*models: type[Any]) -> dict[str, Any]:
    """A JSON response that is one of several contract models (their schemas are registered elsewhere)."""
    refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
    return {"content": {"application/json": {"schema": {"anyOf": refs}}}}


READ_ERRORS = _errors(404, 422, 503)
ASK_ERRORS = _errors(400, 404, 409, 413, 422, 503)
WRITE_ERRORS = _errors(400, 401, 403, 409, 413, 503)
INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    **WRITE_ERRORS,
    200: {"model": IngestReportOut, "description": "Every article was already indexed, unchanged"},
    201: {"model": IngestReportOut,
          "description": "Articles added or replaced (files that could not be used are listed in `failed`)"},
    422: {**_one_of(IngestReportOut, ErrorOut),
          "description": "No file could be used (IngestReportOut: reasons in `failed`, summary in `error`), "
                         "or invalid input (ErrorOut)"},
}


def get_service(request: Request) -> Service:
    """The service built at start-up (tests may override this dependency)."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def require_api_key(request: Request, service: ServiceDep) -> None:
    """Write endpoints need `Authorization: Bearer <QA_API_KEY>` when a key is configured."""
    expected = service.settings.api_key
    if expected is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        raise _Unauthorized()


class _Unauthorized(QAError):
    status_code = 401

    def __init__(self) -> None:
        super().__init__("missing or invalid API key")


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(dump(data), ensure_ascii=False)}\n\n"


def _report_response(report: IngestReportOut) -> JSONResponse:
    """201 when something was written, 200 when all was already indexed, 422 when every file failed (409 when
    one failed because its document id already holds another file's article)."""
    ok = report.added or report.replaced or report.unchanged or report.duplicate
    clash = any(e.status == 409 for e in report.failed)
    status = 201 if (report.added or report.replaced) else (200 if ok else (409 if clash else 422))
    if not ok:
        report.error = "; ".join(f"{e.file}: {e.error}" for e in report.failed) or "nothing to ingest"
    return JSONResponse(report.model_dump(mode="json", exclude_none=True), status_code=status)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with a 413, whether or not they declare a Content-Length
    (a chunked upload is counted as it arrives, so it cannot fill the disk through the multipart parser)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body larger than {self.limit} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _error(413, message)(scope, receive, send)
            return
        received = 0

        async def counted() -> dict[str, Any]:
            nonlocal received
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > self.limit:
                    raise StarletteHTTPException(413, message)
            return event

        await self.app(scope, counted, send)


class SecurityHeaders:
    """nosniff everywhere and the page's CSP outside the API docs. Plain ASGI, not `@app.middleware("http")`:
    Starlette's BaseHTTPMiddleware sits between a streamed response and the client, so a client that leaves
    a /chat stream was never seen by the stream (it ran to the end, LLM request included)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = not scope["path"].startswith(("/docs", "/redoc", "/openapi", "/static-offline-docs"))

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if csp and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app; settings default to the environment (QA_*), read when the app is created."""
    settings = settings or load_settings()

    tokens = ClientTokens()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await run_in_threadpool(build_service, settings, True)
        tokens.key = await run_in_threadpool(service.client_key)  # before the first request is served
        try:
            await run_in_threadpool(service.startup)
        except QAError as exc:  # e.g. Chroma server not up yet: serve, report it on /health, recover later
            log.warning("start-up check failed: %s", exc)
        service.start_background()
        app.state.service = service
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    # /docs and /redoc are served with Swagger UI and ReDoc assets from the fastapi-offline package: no CDN.
    app = FastAPIOffline(title="News QA", version="0.1.0", lifespan=lifespan)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])

    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes * 4 + 65_536)
    # Added last, so they run first: a write without the key is refused before its body is read, and the
    # conversation routes know their client before the request body is parsed.
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    app.add_middleware(WriteKey, key=api_key, unauthorized=lambda: _error(401, _Unauthorized().args[0]))
    app.add_middleware(ClientToken, tokens=tokens)

    app.add_middleware(SecurityHeaders)

    @app.exception_handler(QAError)
    async def qa_error(request: Request, exc: QAError) -> JSONResponse:
        if exc.status_code >= 500 and is_disk_full(exc):  # e.g. a store error raised from a full disk
            return _error(507, DATA_FOLDER_FULL)
        message = str(exc)
        if exc.status_code == 404 and "conversation" in message and getattr(request.state, "client_issued", False):
            message += (": this request carried no client token, and conversations belong to the client that "
                        "started them; send the X-QA-Client header (or qa_client cookie) from that first reply")
        return _error(exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if errors and errors[0].get("type") == "json_invalid":  # loc is (body, position): say what it means
            return _error(422, "body: not valid JSON", details=[{"loc": ["body"], "msg": "not valid JSON"}])
        details = [
            {"loc": [str(part) for part in e.get("loc", ())], "msg": e.get("msg", "")} for e in errors
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        return _error(422, f"{'.'.join(first['loc'][1:]) or 'body'}: {first['msg']}", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route matching the path; list them all
            allowed = {m for r in request.app.router.routes if isinstance(r, APIRoute)
                       and r.matches(request.scope)[0] != Match.NONE for m in r.methods}
            response.headers["Allow"] = ", ".join(sorted(allowed))
        return response

    @app.exception_handler(Exception)
    async def crash(_request: Request, exc: Exception) -> JSONResponse:
        if is_disk_full(exc):
            log.error("data folder is full: %s", exc)
            return _error(507, DATA_FOLDER_FULL)
        log.exception("unhandled error")
        return _error(500, "internal error")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", summary="Index size, store and LLM status (503 while the vector store is unreachable)",
             response_model=HealthOut, responses={**_errors(), 503: {"model": HealthOut, "description": "Degraded"}})
    def health(service: ServiceDep) -> JSONResponse:
        report = service.health()
        return JSONResponse(dump(report), status_code=200 if report.status == "ok" else 503)

    @app.post("/ask", summary="Answer a question with cited passages", response_model=AnswerOut, responses=ASK_ERRORS)
    def ask(body: AskIn, service: ServiceDep, request: Request) -> AnswerOut:
        filters = body.filters.to_filters() if body.filters else None
        return service.ask(body.question, k=body.k, filters=filters, conversation_id=body.conversation_id,
                           client=request.state.client)

    @app.post(
        "/chat", summary="The same answer as /ask, streamed as server-sent events",
        description="Events: `sources` (SourcesEvent), then `token` (TokenEvent) many times, then `done` (the "
                    "AnswerOut of /ask) or `error` (StreamError).",
        responses={200: {"content": {"text/event-stream": {}}}, **ASK_ERRORS},
    )
    def chat(body: AskIn, service: ServiceDep, request: Request) -> StreamingResponse:
        filters = body.filters.to_filters() if body.filters else None
        events = service.stream(body.question, k=body.k, filters=filters, conversation_id=body.conversation_id,
                                client=request.state.client)
        first = next(events)  # validation and retrieval happen here, so their errors get a proper status

        async def body_stream() -> AsyncIterator[str]:
            """Each event is produced in a worker thread. When the client goes away, Starlette cancels this
            generator between events: `finally` then closes the service's stream, which closes the LLM request;
            a turn is stored only with the `done` event, so a stopped answer leaves no half answer behind."""
            try:
                yield _sse(*first)
                while (event := await run_in_threadpool(next, events, None)) is not None:
                    yield _sse(*event)
            except QAError as exc:
                yield _sse("error", {"error": str(exc), "status": exc.status_code})
            except Exception:
                log.exception("stream failed")
                yield _sse("error", {"error": "internal error", "status": 500})
            finally:
                events.close()  # the thread has returned (cancellation waits for it), so this cannot race

        return StreamingResponse(
            body_stream(), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/conversations", summary="The caller's conversations, newest first", response_model=ConversationList,
             responses=_errors())
    def list_conversations(service: ServiceDep, request: Request) -> ConversationList:
        return service.list_conversations(request.state.client)

    @app.get("/conversations/{conversation_id}", summary="One of the caller's conversations with its turns",
             response_model=ConversationOut, responses=_errors(404, 422))
    def get_conversation(conversation_id: str, service: ServiceDep, request: Request) -> ConversationOut:
        return service.get_conversation(conversation_id, request.state.client)

    @app.patch("/conversations/{conversation_id}", summary="Rename one of the caller's conversations",
               response_model=ConversationSummary, responses=_errors(400, 404, 413, 422))
    def rename_conversation(conversation_id: str, body: RenameIn, service: ServiceDep,
                            request: Request) -> ConversationSummary:
        return service.rename_conversation(conversation_id, request.state.client, body.title)

    @app.delete("/conversations/{conversation_id}", summary="Delete one of the caller's conversations",
                response_model=DeletedOut, responses=_errors(404, 422))
    def delete_conversation(conversation_id: str, service: ServiceDep, request: Request) -> DeletedOut:
        service.delete_conversation(conversation_id, request.state.client)
        return DeletedOut(deleted=conversation_id)

    @app.post("/feedback", summary="Rate an answer (thumbs up or down, optional note)", status_code=201,
              response_model=FeedbackOut, responses=_errors(400, 404, 413, 422))
    def feedback(body: FeedbackIn, service: ServiceDep, request: Request) -> FeedbackOut:
        return service.add_feedback(Feedback(
            rating=body.rating, question=body.question, answer=body.answer, refused=body.refused, note=body.note,
            conversation_id=body.conversation_id, client=request.state.client, evidence=tuple(body.evidence),
            doc_ids=tuple(body.doc_ids)))

    @app.get("/documents", summary="List indexed articles", response_model=DocumentList, responses=_errors())
    def list_documents(service: ServiceDep) -> DocumentList:
        return DocumentList(documents=[DocumentSummary.model_validate(d) for d in service.docs.list_documents()])

    @app.get("/documents/{doc_id}", summary="One cleaned article with its metadata", response_model=DocumentOut,
             responses=READ_ERRORS)
    def get_document(doc_id: str, service: ServiceDep) -> DocumentOut:
        return service.get_document(doc_id)

    @app.post(
        "/documents", summary="Upload and ingest articles (.txt, .md, .html)", status_code=201,
        response_model=IngestReportOut, dependencies=[Depends(require_api_key)], responses=INGEST_RESPONSES,
    )
    async def upload(service: ServiceDep, files: Annotated[list[UploadFile], File()]) -> JSONResponse:
        payload: list[tuple[str, bytes]] = []
        for upload_file in files:
            data = await upload_file.read(settings.max_upload_bytes + 1)
            payload.append((upload_file.filename or "upload.txt", data))
        return _report_response(await run_in_threadpool(service.ingest_files, payload))

    @app.post(
        "/documents/ingest-path", summary="Ingest files or folders on the server, under QA_INGEST_ROOT only",
        status_code=201, response_model=IngestReportOut, dependencies=[Depends(require_api_key)],
        responses=INGEST_RESPONSES,
    )
    async def ingest_path(body: IngestPathsIn, service: ServiceDep) -> JSONResponse:
        return _report_response(await run_in_threadpool(service.ingest_under_root, body.paths))

    @app.post(
        "/documents/ingest-url", summary="Fetch and ingest feeds, sitemaps and article pages",
        description="Answers 202 with a job (poll GET /jobs/{job_id} for progress and the report), or, with "
                    "`\"wait\": true`, the report itself when the ingest is over (like POST /documents). Every URL "
                    "is vetted before anything is fetched: text that is not a URL refuses the request with 400; one "
                    "that is not http(s) or is on a loopback, private, "
                    "link-local, multicast or reserved address refuses the request with 403 (unless "
                    "QA_FETCH_ALLOW_PRIVATE=true); redirects are vetted hop by hop.",
        status_code=202, response_model=JobOut, dependencies=[Depends(require_api_key)],
        responses={**INGEST_RESPONSES, 202: {"model": JobOut, "description": "The ingest runs as this job"}},
    )
    async def ingest_url(body: IngestUrlsIn, service: ServiceDep) -> JSONResponse:
        if body.wait:
            return _report_response(await run_in_threadpool(service.ingest_urls, body.urls))
        job_id = await run_in_threadpool(service.ingest_urls_job, body.urls)
        job = await run_in_threadpool(service.job, job_id)
        return JSONResponse(dump(job), status_code=202, headers={"Location": f"/jobs/{job_id}"})

    @app.get("/jobs/{job_id}", summary="Progress and report of an ingest job", response_model=JobOut,
             responses=READ_ERRORS)
    def get_job(job_id: str, service: ServiceDep) -> JobOut:
        return service.job(job_id)

    @app.delete(
        "/documents/{doc_id}", summary="Remove an article from the index", status_code=200,
        response_model=DeletedOut, dependencies=[Depends(require_api_key)],
        responses=_errors(401, 404, 422, 503),
    )
    def delete_document(doc_id: str, service: ServiceDep) -> DeletedOut:
        service.delete(doc_id)
        return DeletedOut(deleted=doc_id)

    return app
