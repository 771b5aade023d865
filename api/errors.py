"""How errors leave the API: one JSON body (`ErrorOut`), the OpenAPI entries every route declares, and the
exception handlers create_app installs."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from qa.contract import ErrorOut, IngestReportOut
from qa.errors import DATA_FOLDER_FULL, QAError, is_disk_full

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


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for a route's error responses, all with the ErrorOut body (500 on every route)."""
    return {code: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[code]} for code in (*codes, 500, 507)}


def one_of(*models: type[Any]) -> dict[str, Any]:
    """A JSON response that is one of several contract models (their schemas are registered elsewhere)."""
    refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
    return {"content": {"application/json": {"schema": {"anyOf": refs}}}}


READ_ERRORS = errors(404, 422, 503)
ASK_ERRORS = errors(400, 404, 409, 413, 422, 503)
WRITE_ERRORS = errors(400, 401, 403, 409, 413, 503)
INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    **WRITE_ERRORS,
    200: {"model": IngestReportOut, "description": "Every article was already indexed, unchanged"},
    201: {"model": IngestReportOut,
          "description": "Articles added or replaced (files that could not be used are listed in `failed`)"},
    422: {**one_of(IngestReportOut, ErrorOut),
          "description": "No file could be used (IngestReportOut: reasons in `failed`, summary in `error`), "
                         "or invalid input (ErrorOut)"},
}


class Unauthorized(QAError):
    """A write without the API key (QA_API_KEY)."""

    status_code = 401

    def __init__(self) -> None:
        super().__init__("missing or invalid API key")


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """The one error body: {"error": message}, with the Bearer challenge on a 401."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def unauthorized() -> JSONResponse:
    return error(401, Unauthorized().args[0])


async def qa_error(request: Request, exc: Exception) -> JSONResponse:
    """A QAError's own status and message; a store error raised from a full disk is a 507."""
    assert isinstance(exc, QAError)
    if exc.status_code >= 500 and is_disk_full(exc):
        return error(507, DATA_FOLDER_FULL)
    message = str(exc)
    if exc.status_code == 404 and "conversation" in message and getattr(request.state, "client_issued", False):
        message += (": this request carried no client token, and conversations belong to the client that "
                    "started them; send the X-QA-Client header (or qa_client cookie) from that first reply")
    return error(exc.status_code, message)


async def invalid(_request: Request, exc: Exception) -> JSONResponse:
    """A 422 naming the first field at fault (all of them in `details`)."""
    assert isinstance(exc, RequestValidationError)
    found = list(exc.errors())
    if found and found[0].get("type") == "json_invalid":  # loc is (body, position): say what it means
        return error(422, "body: not valid JSON", details=[{"loc": ["body"], "msg": "not valid JSON"}])
    details = [{"loc": [str(part) for part in e.get("loc", ())], "msg": e.get("msg", "")} for e in found]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    return error(422, f"{'.'.join(first['loc'][1:]) or 'body'}: {first['msg']}", details=details)


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, those of included routers too (newer FastAPI releases keep an included router as one route
    that holds the original router; older releases copy its routes into the app's)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from api_routes(included.routes)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (404, 405, 413) in the same body; a 405 lists every method the path allows."""
    assert isinstance(exc, StarletteHTTPException)
    response = error(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:  # Starlette names only the first route matching the path; list them all
        allowed = {m for r in api_routes(request.app.router.routes)
                   if r.matches(request.scope)[0] != Match.NONE for m in r.methods}
        response.headers["Allow"] = ", ".join(sorted(allowed))
    return response


async def crash(_request: Request, exc: Exception) -> JSONResponse:
    """Anything else: a 507 when the disk is full, else a 500 whose details go to the log only."""
    if is_disk_full(exc):
        log.error("data folder is full: %s", exc)
        return error(507, DATA_FOLDER_FULL)
    log.exception("unhandled error")
    return error(500, "internal error")


def install_handlers(app: FastAPI) -> None:
    """Every error the app returns goes through one of these."""
    app.add_exception_handler(QAError, qa_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, crash)
