"""Plain ASGI middleware around every route: the request body limit and the security headers. (Who is asking,
the client token and the API key, is in clients.py.)"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException

from api.errors import error

CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


class BodyLimit:
    """Refuse request bodies over `limit` bytes with a 413, whether or not they declare a Content-Length
    (a chunked upload is counted as it arrives, so it cannot fill the disk through the multipart parser)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body larger than {self.limit} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await error(413, message)(scope, receive, send)
            return
        received = 0

        async def counted() -> dict[str, Any]:
            nonlocal received
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > self.limit:
                    raise StarletteHTTPException(413, message)
            return event

        await self.app(scope, counted, send)


class SecurityHeaders:
    """nosniff everywhere and the page's CSP outside the API docs. Plain ASGI, not `@app.middleware("http")`:
    Starlette's BaseHTTPMiddleware sits between a streamed response and the client, so a client that leaves
    a /chat stream was never seen by the stream (it ran to the end, LLM request included)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = not scope["path"].startswith(("/docs", "/redoc", "/openapi", "/static-offline-docs"))

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if csp and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
