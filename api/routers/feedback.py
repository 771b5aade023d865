"""POST /feedback: a reader's rating of one answer."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ClientDep, ServiceDep
from api.errors import errors
from api.models import FeedbackIn
from qa.contract import FeedbackOut
from qa.conversations.feedback import Feedback

router = APIRouter()


@router.post("/feedback", summary="Rate an answer (thumbs up or down, optional note)", status_code=201,
             response_model=FeedbackOut, responses=errors(400, 404, 413, 422))
def feedback(body: FeedbackIn, service: ServiceDep, client: ClientDep) -> FeedbackOut:
    return service.add_feedback(Feedback(
        rating=body.rating, question=body.question, answer=body.answer, refused=body.refused, note=body.note,
        conversation_id=body.conversation_id, client=client, evidence=tuple(body.evidence),
        doc_ids=tuple(body.doc_ids)))
