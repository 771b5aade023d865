"""POST /ask (one answer) and POST /chat (the same answer streamed as server-sent events)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ClientDep, ServiceDep
from api.errors import ASK_ERRORS
from api.models import AskIn
from qa.contract import AnswerOut, dump
from qa.errors import QAError

log = logging.getLogger("qa.api")
router = APIRouter()


def sse(event: str, data: Any) -> str:
    """One server-sent event whose data is a contract model as JSON."""
    return f"event: {event}\ndata: {json.dumps(dump(data), ensure_ascii=False)}\n\n"


@router.post("/ask", summary="Answer a question with cited passages", response_model=AnswerOut,
             responses=ASK_ERRORS)
def ask(body: AskIn, service: ServiceDep, client: ClientDep) -> AnswerOut:
    filters = body.filters.to_filters() if body.filters else None
    return service.ask(body.question, k=body.k, filters=filters, conversation_id=body.conversation_id, client=client)


@router.post(
    "/chat", summary="The same answer as /ask, streamed as server-sent events",
    description="Events: `sources` (SourcesEvent), then `token` (TokenEvent) many times, then `done` (the "
                "AnswerOut of /ask) or `error` (StreamError).",
    responses={200: {"content": {"text/event-stream": {}}}, **ASK_ERRORS},
)
def chat(body: AskIn, service: ServiceDep, client: ClientDep) -> StreamingResponse:
    filters = body.filters.to_filters() if body.filters else None
    events = service.stream(body.question, k=body.k, filters=filters, conversation_id=body.conversation_id,
                            client=client)
    return stream_events(events)


def stream_events(events: Iterator[tuple[str, Any]]) -> StreamingResponse:
    """A service stream as server-sent events (POST /chat, an edited turn). The first event is taken here, in the
    route: validation and retrieval happen then, so their errors get a proper status instead of a stream."""
    first = next(events)

    async def body_stream() -> AsyncIterator[str]:
        """Each event is produced in a worker thread. When the client goes away, Starlette cancels this
        generator between events: `finally` then closes the service's stream, which closes the LLM request;
        a turn is stored only with the `done` event, so a stopped answer leaves no half answer behind."""
        try:
            yield sse(*first)
            while (event := await run_in_threadpool(next, events, None)) is not None:
                yield sse(*event)
        except QAError as exc:
            yield sse("error", {"error": str(exc), "status": exc.status_code})
        except Exception:
            log.exception("stream failed")
            yield sse("error", {"error": "internal error", "status": 500})
        finally:
            events.close()  # type: ignore[attr-defined]  # the thread has returned, so this cannot race

    return StreamingResponse(
        body_stream(), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
