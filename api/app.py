"""FastAPI app: create_app() builds the service once (lifespan), wires the middleware and error handlers, and
includes one router per resource (api/routers/). Every body it returns is a model of qa.contract, declared as
the route's response model."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from api.clients import ClientToken, ClientTokens, WriteKey
from api.errors import install_handlers, unauthorized
from api.middleware import BodyLimit, SecurityHeaders
from api.routers import ROUTERS
from api.routers.page import STATIC
from qa.config import Settings, load_settings
from qa.errors import QAError
from qa.service import build_service

log = logging.getLogger("qa.api")


def _lifespan(settings: Settings, tokens: ClientTokens) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Build the service and load the client-token key before the first request; close the service at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await run_in_threadpool(build_service, settings, True)
        tokens.key = await run_in_threadpool(service.client_key)  # before the first request is served
        try:
            await run_in_threadpool(service.startup)
        except QAError as exc:  # e.g. Chroma server not up yet: serve, report it on /health, recover later
            log.warning("start-up check failed: %s", exc)
        service.start_background()
        app.state.service = service
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app; settings default to the environment (QA_*), read when the app is created."""
    settings = settings or load_settings()
    tokens = ClientTokens()
    # /docs and /redoc are served with Swagger UI and ReDoc assets from the fastapi-offline package: no CDN.
    app = FastAPIOffline(title="News QA", version="0.1.0", lifespan=_lifespan(settings, tokens))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes * 4 + 65_536)
    # Added last, so they run first: a write without the key is refused before its body is read (the one place
    # the API key is checked), and the conversation routes know their client before the body is parsed.
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    app.add_middleware(WriteKey, key=api_key, unauthorized=unauthorized)
    app.add_middleware(ClientToken, tokens=tokens)
    app.add_middleware(SecurityHeaders)
    install_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app
