"""Editing a conversation: an earlier question asked differently, or an answer regenerated, with the
conversation continuing from there. One route, streamed like POST /chat; the turn it replaces and every later
one are replaced on the server only when the new answer is complete (a stopped or failed edit changes nothing)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from api.models import FiltersIn
from qa.contract import ErrorOut, dump
from qa.errors import QAError
from qa.service import Service

log = logging.getLogger("qa.api")
router = APIRouter()


class EditIn(BaseModel):
    """The new question for a kept turn (none: the same question answered again)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"question": "How many Tomahawk missiles did the US fire?"}, {}]})

    question: str | None = Field(None, max_length=20_000,
                                 description="The question in place of the turn's; omit it to regenerate the answer.")
    k: int | None = Field(None, ge=1, le=50, description="How many passages to retrieve.")
    filters: FiltersIn | None = None

    @field_validator("k", mode="before")
    @classmethod
    def _json_integer(cls, value: object) -> object:
        """A JSON integer, not true or "5" (as AskIn)."""
        if isinstance(value, bool | str):
            raise ValueError("must be an integer")
        return value


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(dump(data), ensure_ascii=False)}\n\n"


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in (*codes, 500, 507)}


def stream_events(events: Iterator[tuple[str, Any]]) -> StreamingResponse:
    """Server-sent events from a service stream whose first event is already known to succeed (as /chat does:
    leaving the stream closes it, so a stopped edit stores nothing)."""
    first = next(events)

    async def body() -> AsyncIterator[str]:
        try:
            yield _sse(*first)
            while (event := await run_in_threadpool(next, events, None)) is not None:
                yield _sse(*event)
        except QAError as exc:
            yield _sse("error", {"error": str(exc), "status": exc.status_code})
        except Exception:
            log.exception("edit stream failed")
            yield _sse("error", {"error": "internal error", "status": 500})
        finally:
            events.close()  # type: ignore[attr-defined]

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post(
    "/conversations/{conversation_id}/turns/{turn}",
    summary="Ask a kept turn again (edited, or the same question regenerated); the conversation goes on from it",
    description="`turn` counts the kept turns of GET /conversations/{conversation_id} from 0. Events as POST /chat "
                "(`sources`, `token`s, then `done` or `error`). When `done` is sent, the server has put the new "
                "turn in place of that one and deleted every later turn; a stream left before `done` changes "
                "nothing. Editing the first turn retitles the conversation.",
    responses={200: {"content": {"text/event-stream": {}}}, **_errors(400, 404, 413, 422, 503)},
)
def edit_turn(
    body: EditIn, request: Request, conversation_id: str, turn: int = Path(..., ge=0, le=100_000),
) -> StreamingResponse:
    service: Service = request.app.state.service
    filters = body.filters.to_filters() if body.filters else None
    return stream_events(service.stream(body.question, k=body.k, filters=filters, conversation_id=conversation_id,
                                        client=request.state.client, replace=turn))
