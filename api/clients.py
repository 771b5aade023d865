"""Who is asking, decided before a route runs: an opaque client token for conversations, and the API key for
writes (checked on the request head, before a byte of the body is read).

Hand-written ASGI middleware because the point is *when* the check happens: FastAPI dependencies run only
after the multipart body has been received and spooled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from http.cookies import SimpleCookie
from typing import Any

COOKIE = "qa_client"
HEADER = "x-qa-client"
# Routes that read or write conversations; only they get (and need) a client token.
CONVERSATION_PATHS = ("/ask", "/chat", "/conversations", "/feedback")
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
WRITE_PATHS = ("/documents",)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ClientTokens:
    """Issues and checks client tokens: 128 random bits plus an HMAC under a key every process serving the same
    stores shares (Service.client_key: a row of the SQL layer's shared_keys table), so every worker and
    every replica accepts every other's tokens, and a made-up token is refused."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key  # None until the app's start-up sets it from the service

    def _sign(self, nonce: str) -> str:
        if self.key is None:
            raise RuntimeError("client-token key not loaded (the app's start-up sets it)")
        return _b64(hmac.new(self.key, nonce.encode(), hashlib.sha256).digest()[:16])

    def issue(self) -> str:
        nonce = _b64(secrets.token_bytes(16))
        return f"{nonce}.{self._sign(nonce)}"

    def valid(self, token: str | None) -> bool:
        if not token or len(token) > 100 or token.count(".") != 1 or not token.isascii():
            return False  # a non-ASCII token is no token (compare_digest refuses non-ASCII str)
        nonce, signature = token.split(".")
        return hmac.compare_digest(signature, self._sign(nonce))

    @staticmethod
    def client_id(token: str) -> str:
        """What the conversation store keeps: a hash, so the store never holds a usable token."""
        return hashlib.sha256(token.encode()).hexdigest()[:32]


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class ClientToken:
    """Puts the caller's client id in `scope["state"]["client"]` for conversation routes; issues a token (cookie
    `qa_client`, HttpOnly, SameSite=Strict, and the `X-QA-Client` response header for API clients) when the
    request carries no valid one."""

    def __init__(self, app: Any, tokens: ClientTokens) -> None:
        self.app = app
        self.tokens = tokens

    def _presented(self, scope: dict[str, Any]) -> str | None:
        token = _header(scope, HEADER.encode())
        if self.tokens.valid(token):
            return token
        cookie_header = _header(scope, b"cookie")
        if cookie_header:
            try:
                cookie = SimpleCookie(cookie_header)
            except Exception:  # a malformed Cookie header is no token
                return None
            if COOKIE in cookie and self.tokens.valid(cookie[COOKIE].value):
                return cookie[COOKIE].value
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(CONVERSATION_PATHS):
            await self.app(scope, receive, send)
            return
        token = self._presented(scope)
        issued = token is None
        if token is None:
            token = self.tokens.issue()
        scope.setdefault("state", {})["client"] = self.tokens.client_id(token)
        scope["state"]["client_issued"] = issued  # no token came with the request: a 404 then says so

        async def send_with_token(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and issued:
                cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000"
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode()),
                                                  (HEADER.encode(), token.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_token)


class WriteKey:
    """With QA_API_KEY set, a write without `Authorization: Bearer <key>` gets its 401 from the request head:
    the body (up to the upload limit) is never received, spooled or parsed."""

    def __init__(self, app: Any, key: str | None, unauthorized: Any) -> None:
        self.app = app
        self.key = key.encode() if key else None
        self.unauthorized = unauthorized

    def allowed(self, scope: dict[str, Any]) -> bool:
        assert self.key is not None
        header = _header(scope, b"authorization") or ""
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.encode("latin-1"), self.key)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (self.key is not None and scope["type"] == "http" and scope["method"] in WRITE_METHODS
                and scope["path"].startswith(WRITE_PATHS) and not self.allowed(scope)):
            await self.unauthorized()(scope, receive, send)
            return
        await self.app(scope, receive, send)
