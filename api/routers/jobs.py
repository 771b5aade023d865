"""GET /jobs/{job_id}: an ingest job's progress and report."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServiceDep
from api.errors import READ_ERRORS
from qa.contract import JobOut

router = APIRouter()


@router.get("/jobs/{job_id}", summary="Progress and report of an ingest job", response_model=JobOut,
            responses=READ_ERRORS)
def get_job(job_id: str, service: ServiceDep) -> JobOut:
    return service.job(job_id)
