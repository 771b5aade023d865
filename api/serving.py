"""How `qa serve` runs uvicorn: idle and slowly-sent request heads cannot hold connections open, and the number
of connections is bounded (QA_HEADER_TIMEOUT, QA_KEEP_ALIVE_TIMEOUT, QA_MAX_CONNECTIONS).

uvicorn only times out a connection that is idle *after* a response (keep-alive); a client that connects and
sends nothing, or a head a byte at a time, is never timed out (slowloris). HeadTimeoutProtocol adds that timer to
uvicorn's h11 protocol: from the connection (or the end of the last response) to the end of the next head.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from qa.config import Settings


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head has not arrived within `head_timeout`."""

    head_timeout = float(os.environ.get("QA_HEADER_TIMEOUT", "10"))  # read in every worker process

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._wait_for_head()

    def _wait_for_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_overdue)

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():  # no complete head yet
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self._head_timer is not None and self.conn.their_state is not h11.IDLE:  # a whole head arrived
            self._head_timer.cancel()
            self._head_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._wait_for_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings `qa serve` uses (behind a proxy, keep its own timeouts below these)."""
    os.environ["QA_HEADER_TIMEOUT"] = str(settings.header_timeout)  # for worker processes started from here
    HeadTimeoutProtocol.head_timeout = settings.header_timeout
    return {"http": HeadTimeoutProtocol, "timeout_keep_alive": settings.keep_alive_timeout,
            "limit_concurrency": settings.max_connections, "h11_max_incomplete_event_size": 64 * 1024}
