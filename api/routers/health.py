"""GET /health: index size, store and LLM status."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServiceDep
from api.errors import errors
from qa.contract import HealthOut, dump

router = APIRouter()


@router.get("/health", summary="Index size, store and LLM status (503 while the vector store is unreachable)",
            response_model=HealthOut, responses={**errors(), 503: {"model": HealthOut, "description": "Degraded"}})
def health(service: ServiceDep) -> JSONResponse:
    report = service.health()
    return JSONResponse(dump(report), status_code=200 if report.status == "ok" else 503)
