"""Indexed articles: list, read, upload, ingest server paths or URLs, delete. The writes are guarded by
api.clients.WriteKey (the API key, checked on the request head)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ServiceDep
from api.errors import INGEST_RESPONSES, READ_ERRORS, errors
from api.models import IngestPathsIn, IngestUrlsIn
from qa.contract import DeletedOut, DocumentList, DocumentOut, DocumentSummary, IngestReportOut, JobOut, dump

router = APIRouter()


def report_response(report: IngestReportOut) -> JSONResponse:
    """201 when something was written, 200 when all was already indexed, 422 when every file failed (409 when
    one failed because its document id already holds another file's article)."""
    ok = report.added or report.replaced or report.unchanged or report.duplicate
    clash = any(e.status == 409 for e in report.failed)
    status = 201 if (report.added or report.replaced) else (200 if ok else (409 if clash else 422))
    if not ok:
        report.error = "; ".join(f"{e.file}: {e.error}" for e in report.failed) or "nothing to ingest"
    return JSONResponse(report.model_dump(mode="json", exclude_none=True), status_code=status)


@router.get("/documents", summary="List indexed articles", response_model=DocumentList, responses=errors())
def list_documents(service: ServiceDep) -> DocumentList:
    return DocumentList(documents=[DocumentSummary.model_validate(d, from_attributes=True)
                                   for d in service.docs.list_documents()])


@router.get("/documents/{doc_id}", summary="One cleaned article with its metadata", response_model=DocumentOut,
            responses=READ_ERRORS)
def get_document(doc_id: str, service: ServiceDep) -> DocumentOut:
    return service.get_document(doc_id)


@router.post("/documents", summary="Upload and ingest articles (.txt, .md, .html)", status_code=201,
             response_model=IngestReportOut, responses=INGEST_RESPONSES)
async def upload(service: ServiceDep, files: Annotated[list[UploadFile], File()]) -> JSONResponse:
    limit = service.settings.max_upload_bytes
    payload = [(f.filename or "upload.txt", await f.read(limit + 1)) for f in files]
    return report_response(await run_in_threadpool(service.ingest_files, payload))


@router.post("/documents/ingest-path", summary="Ingest files or folders on the server, under QA_INGEST_ROOT only",
             status_code=201, response_model=IngestReportOut, responses=INGEST_RESPONSES)
async def ingest_path(body: IngestPathsIn, service: ServiceDep) -> JSONResponse:
    return report_response(await run_in_threadpool(service.ingest_under_root, body.paths))


@router.post(
    "/documents/ingest-url", summary="Fetch and ingest feeds, sitemaps and article pages",
    description="Answers 202 with a job (poll GET /jobs/{job_id} for progress and the report), or, with "
                "`\"wait\": true`, the report itself when the ingest is over (like POST /documents). Every URL "
                "is vetted before anything is fetched: text that is not a URL refuses the request with 400; one "
                "that is not http(s) or is on a loopback, private, "
                "link-local, multicast or reserved address refuses the request with 403 (unless "
                "QA_FETCH_ALLOW_PRIVATE=true); redirects are vetted hop by hop.",
    status_code=202, response_model=JobOut,
    responses={**INGEST_RESPONSES, 202: {"model": JobOut, "description": "The ingest runs as this job"}},
)
async def ingest_url(body: IngestUrlsIn, service: ServiceDep) -> JSONResponse:
    if body.wait:
        return report_response(await run_in_threadpool(service.ingest_urls, body.urls))
    job_id = await run_in_threadpool(service.ingest_urls_job, body.urls)
    job = await run_in_threadpool(service.job, job_id)
    return JSONResponse(dump(job), status_code=202, headers={"Location": f"/jobs/{job_id}"})


@router.delete("/documents/{doc_id}", summary="Remove an article from the index", status_code=200,
               response_model=DeletedOut, responses=errors(401, 404, 422, 503))
def delete_document(doc_id: str, service: ServiceDep) -> DeletedOut:
    service.delete(doc_id)
    return DeletedOut(deleted=doc_id)
