"""Editing a conversation: an earlier question asked differently, or an answer regenerated, with the
conversation continuing from there. One route, streamed like POST /chat; the turn it replaces and every later
one are replaced on the server only when the new answer is complete (a stopped or failed edit changes nothing)."""

from __future__ import annotations

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse

from api.deps import ClientDep, ServiceDep
from api.errors import errors
from api.models import EditIn
from api.routers.ask import stream_events

router = APIRouter()


@router.post(
    "/conversations/{conversation_id}/turns/{turn}",
    summary="Ask a kept turn again (edited, or the same question regenerated); the conversation goes on from it",
    description="`turn` counts the kept turns of GET /conversations/{conversation_id} from 0. Events as POST /chat "
                "(`sources`, `token`s, then `done` or `error`). When `done` is sent, the server has put the new "
                "turn in place of that one and deleted every later turn; a stream left before `done` changes "
                "nothing. Editing the first turn retitles the conversation.",
    responses={200: {"content": {"text/event-stream": {}}}, **errors(400, 404, 413, 422, 503)},
)
def edit_turn(
    body: EditIn, service: ServiceDep, client: ClientDep, conversation_id: str,
    turn: int = Path(..., ge=0, le=100_000),
) -> StreamingResponse:
    filters = body.filters.to_filters() if body.filters else None
    return stream_events(service.stream(body.question, k=body.k, filters=filters, conversation_id=conversation_id,
                                        client=client, replace=turn))
