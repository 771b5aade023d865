"""What routes take as arguments: the service built at start-up and the caller's client id (set by the
ClientToken middleware). Neither adds a parameter to the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from qa.service import Service


def get_service(request: Request) -> Service:
    """The service built at start-up (tests may override this dependency)."""
    return request.app.state.service


def get_client(request: Request) -> str:
    """The caller's client id: conversations and feedback belong to it (api.clients.ClientToken)."""
    return request.state.client


ServiceDep = Annotated[Service, Depends(get_service)]
ClientDep = Annotated[str, Depends(get_client)]
