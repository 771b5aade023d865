"""The caller's conversations: list, read, rename, delete (only the client that started one sees it)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ClientDep, ServiceDep
from api.errors import errors
from api.models import RenameIn
from qa.contract import ConversationList, ConversationOut, ConversationSummary, DeletedOut

router = APIRouter()


@router.get("/conversations", summary="The caller's conversations, newest first", response_model=ConversationList,
            responses=errors())
def list_conversations(service: ServiceDep, client: ClientDep) -> ConversationList:
    return service.list_conversations(client)


@router.get("/conversations/{conversation_id}", summary="One of the caller's conversations with its turns",
            response_model=ConversationOut, responses=errors(404, 422))
def get_conversation(conversation_id: str, service: ServiceDep, client: ClientDep) -> ConversationOut:
    return service.get_conversation(conversation_id, client)


@router.patch("/conversations/{conversation_id}", summary="Rename one of the caller's conversations",
              response_model=ConversationSummary, responses=errors(400, 404, 413, 422))
def rename_conversation(conversation_id: str, body: RenameIn, service: ServiceDep,
                        client: ClientDep) -> ConversationSummary:
    return service.rename_conversation(conversation_id, client, body.title)


@router.delete("/conversations/{conversation_id}", summary="Delete one of the caller's conversations",
               response_model=DeletedOut, responses=errors(404, 422))
def delete_conversation(conversation_id: str, service: ServiceDep, client: ClientDep) -> DeletedOut:
    service.delete_conversation(conversation_id, client)
    return DeletedOut(deleted=conversation_id)
